# Sourced by .ci/services.sh: kinesalite, a second Kinesis-compatible server,
# for the Kinesis connector's resharding tests (moto's SplitShard moves the
# parent's records into the children and its closed shards never end).
#
#   start  installs npm kinesalite@3.3.3 under $CACHE/iotflow-kinesalite if
#          missing and starts it on 127.0.0.1:4567 (bound to loopback only,
#          through a two-line node wrapper), or reuses one answering there.
#   stop   stops the kinesalite this script started, by PID.
#
# Tests find it through IOTFLOW_TEST_KINESALITE_URL=http://127.0.0.1:4567.

KINESALITE_VERSION="3.3.3"
KINESALITE_HOST=127.0.0.1
KINESALITE_PORT=4567
KINESALITE_DIR="${CACHE}/iotflow-kinesalite"
KINESALITE_PID="${STATE}/kinesalite.pid"
KINESALITE_LOG="${STATE}/kinesalite.log"

# Any HTTP answer (kinesalite answers 400 to a bare GET) means it is up.
kinesalite_answers() {
    curl -s -o /dev/null --max-time 2 "http://${KINESALITE_HOST}:${KINESALITE_PORT}/"
}

our_kinesalite_pid() {
    [ -f "$KINESALITE_PID" ] || return 1
    local pid
    pid="$(cat "$KINESALITE_PID")"
    [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] &&
        tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q kinesalite &&
        echo "$pid"
}

install_kinesalite() {
    if [ -f "${KINESALITE_DIR}/node_modules/kinesalite/package.json" ] &&
        grep -q "\"version\": \"${KINESALITE_VERSION}\"" \
            "${KINESALITE_DIR}/node_modules/kinesalite/package.json"; then
        log "kinesalite: ${KINESALITE_DIR} present"
        return
    fi
    local t0=$SECONDS
    command -v npm >/dev/null || { log "kinesalite: installing Debian nodejs npm"; apt_install nodejs npm; }
    log "kinesalite: installing kinesalite@${KINESALITE_VERSION} into ${KINESALITE_DIR}"
    mkdir -p "$KINESALITE_DIR"
    npm install --silent --no-audit --no-fund --prefix "$KINESALITE_DIR" \
        "kinesalite@${KINESALITE_VERSION}" >/dev/null
    log "kinesalite: installed in $((SECONDS - t0)) s"
}

start_kinesalite() {
    mkdir -p "$STATE"
    install_kinesalite
    if kinesalite_answers; then
        log "kinesalite: reusing the server already answering on ${KINESALITE_HOST}:${KINESALITE_PORT}"
        return
    fi
    local t0=$SECONDS
    # The kinesalite CLI listens on all interfaces; the module lets us bind
    # to loopback. In-memory, streams become ACTIVE after 50 ms.
    cat >"${KINESALITE_DIR}/run-kinesalite.js" <<JS
require('${KINESALITE_DIR}/node_modules/kinesalite')({ createStreamMs: 50, deleteStreamMs: 50, updateStreamMs: 50, shardLimit: 100 })
  .listen(${KINESALITE_PORT}, '${KINESALITE_HOST}');
JS
    log "kinesalite: starting on ${KINESALITE_HOST}:${KINESALITE_PORT} (log ${KINESALITE_LOG})"
    # setsid: its own session, so a Ctrl-C in the caller's terminal does not
    # reach it; stop ends it by PID.
    setsid node "${KINESALITE_DIR}/run-kinesalite.js" >>"$KINESALITE_LOG" 2>&1 </dev/null &
    echo $! >"$KINESALITE_PID"
    local i
    for i in $(seq 1 60); do
        kinesalite_answers && break
        sleep 0.25
    done
    if ! kinesalite_answers; then
        log "kinesalite: not answering after 15 s; last log lines:"
        tail -n 20 "$KINESALITE_LOG" >&2
        exit 1
    fi
    log "kinesalite: ready on ${KINESALITE_HOST}:${KINESALITE_PORT} (pid $(cat "$KINESALITE_PID")) in $((SECONDS - t0)) s"
}

stop_kinesalite() {
    stop_pid kinesalite "$(our_kinesalite_pid || true)" "${KINESALITE_PID}" 5
}
