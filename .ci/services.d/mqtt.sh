# shellcheck shell=bash
# Mosquitto for the MQTT connector tests (connectors/mqtt). Sourced by
# .ci/services.sh, which provides log, apt_install, CACHE and STATE.
#
#   start_mqtt  installs Debian `mosquitto mosquitto-clients` if missing,
#               generates (once) in $STATE/mqtt a test CA, a server
#               certificate for 127.0.0.1/localhost and a client certificate
#               (CN = device-0001), writes $STATE/mqtt/mosquitto.conf and starts
#               mosquitto as the current user with three listeners:
#                 1883 127.0.0.1  plain, anonymous
#                 8883 127.0.0.1  TLS (server certificate signed by the CA)
#                 8884 127.0.0.1  mutual TLS (require_certificate, the client
#                                 certificate's CN becomes the username)
#               with persistence under $STATE/mqtt/data, no cap on queued or
#               in-flight QoS 1 messages (a job holds its acks until a
#               checkpoint completes). Reuses a broker this script started
#               that is still running.
#   stop_mqtt   stops that broker by its PID.
#
# Tests read (.ci/run exports these after `start`):
#   export IOTFLOW_TEST_MQTT_URL=mqtt://127.0.0.1:1883
#   export IOTFLOW_TEST_MQTT_TLS_URL=mqtts://127.0.0.1:8883
#   export IOTFLOW_TEST_MQTT_MTLS_URL=mqtts://127.0.0.1:8884
#   export IOTFLOW_TEST_MQTT_CA="$HOME/.cache/iotflow-services/mqtt/ca.crt"
#   export IOTFLOW_TEST_MQTT_CLIENT_CERT="$HOME/.cache/iotflow-services/mqtt/client.crt"
#   export IOTFLOW_TEST_MQTT_CLIENT_KEY="$HOME/.cache/iotflow-services/mqtt/client.key"
#   export IOTFLOW_TEST_MOSQUITTO=/usr/sbin/mosquitto

MQTT_HOST=127.0.0.1
MQTT_PORT=1883
MQTT_TLS_PORT=8883
MQTT_MTLS_PORT=8884
MQTT_DIR="${STATE}/mqtt"
MQTT_CERTS="${MQTT_DIR}"
MQTT_CONF="${MQTT_DIR}/mosquitto.conf"
MQTT_PID="${MQTT_DIR}/mosquitto.pid"
MQTT_LOG="${MQTT_DIR}/mosquitto.log"
MQTT_CLIENT_CN=device-0001

mqtt_port_answers() {
    # A TCP connect is enough: mosquitto accepts once its listeners are up.
    (exec 3<>"/dev/tcp/${MQTT_HOST}/$1") 2>/dev/null
}

mqtt_answers() {
    mqtt_port_answers "$MQTT_PORT" && mqtt_port_answers "$MQTT_TLS_PORT" &&
        mqtt_port_answers "$MQTT_MTLS_PORT"
}

# The PID in the PID file, if that process is still our mosquitto.
our_mqtt_pid() {
    [ -f "$MQTT_PID" ] || return 1
    local pid
    pid="$(cat "$MQTT_PID")"
    [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] &&
        tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q "mosquitto -c ${MQTT_CONF}" &&
        echo "$pid"
}

install_mosquitto() {
    if command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ]; then
        if command -v mosquitto_pub >/dev/null; then
            log "mqtt: mosquitto present ($(/usr/sbin/mosquitto -h 2>&1 | head -n 1))"
            return
        fi
    fi
    local t0=$SECONDS
    log "mqtt: installing Debian mosquitto mosquitto-clients"
    apt_install mosquitto mosquitto-clients
    log "mqtt: installed in $((SECONDS - t0)) s"
    # Debian's package may start its own broker on 1883; ours takes the port.
    if [ -x /etc/init.d/mosquitto ] && mqtt_port_answers "$MQTT_PORT"; then
        log "mqtt: stopping Debian's mosquitto service"
        /etc/init.d/mosquitto stop >/dev/null 2>&1 || true
    fi
}

# Test PKI: CA, server certificate (SAN 127.0.0.1 and localhost), client
# certificate (CN = a device id). EC P-256 keys, PKCS#8 PEM.
mqtt_certs() {
    if [ -f "${MQTT_CERTS}/client.crt" ] && [ -f "${MQTT_CERTS}/server.crt" ] &&
        [ -f "${MQTT_CERTS}/ca.crt" ]; then
        return
    fi
    command -v openssl >/dev/null || { log "mqtt: installing openssl"; apt_install openssl; }
    log "mqtt: generating a test CA and certificates in ${MQTT_CERTS}"
    mkdir -p "$MQTT_CERTS"
    (
        cd "$MQTT_CERTS"
        rm -f ca.key ca.crt ca.srl server.key server.crt client.key client.crt
        local key=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
        openssl req -x509 "${key[@]}" -keyout ca.key -out ca.crt -days 3650 \
            -subj "/CN=iotflow test CA" \
            -addext "basicConstraints=critical,CA:TRUE" \
            -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
        openssl req "${key[@]}" -keyout server.key -out server.csr \
            -subj "/CN=localhost" 2>/dev/null
        printf '%s\n' "basicConstraints=critical,CA:FALSE" \
            "keyUsage=critical,digitalSignature,keyEncipherment" \
            "extendedKeyUsage=serverAuth" \
            "subjectAltName=IP:127.0.0.1,DNS:localhost" >server.ext
        openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial \
            -out server.crt -days 3650 -extfile server.ext 2>/dev/null
        openssl req "${key[@]}" -keyout client.key -out client.csr \
            -subj "/CN=${MQTT_CLIENT_CN}" 2>/dev/null
        printf '%s\n' "basicConstraints=critical,CA:FALSE" \
            "keyUsage=critical,digitalSignature" \
            "extendedKeyUsage=clientAuth" >client.ext
        openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial \
            -out client.crt -days 3650 -extfile client.ext 2>/dev/null
        rm -f server.csr client.csr server.ext client.ext
        chmod 600 ./*.key
    )
}

mqtt_conf() {
    mkdir -p "${MQTT_DIR}/data"
    # mosquitto runs as the current user (`user` only matters when started as
    # root), so the key files and the persistence directory stay private.
    cat >"$MQTT_CONF" <<EOF
# Written by .ci/services.d/mqtt.sh; regenerated on every start.
user $(id -un)
per_listener_settings false
allow_anonymous true
log_dest file ${MQTT_LOG}
log_type error
log_type warning
log_type notice
log_type information
connection_messages true

# Persistent sessions survive a broker restart: saved on shutdown and every
# 10 s while running.
persistence true
persistence_location ${MQTT_DIR}/data/
autosave_interval 10

# A job acknowledges QoS 1 messages only once a checkpoint holding them has
# completed: the broker must neither drop what it queued for an offline or
# slow persistent session (default cap 1000) nor stop at 20 unacknowledged
# in-flight messages (MQTT 3.1.1 clients; v5 clients set Receive Maximum).
max_queued_messages 0
max_queued_bytes 0
max_inflight_messages 0
max_inflight_bytes 0

listener ${MQTT_PORT} ${MQTT_HOST}

listener ${MQTT_TLS_PORT} ${MQTT_HOST}
cafile ${MQTT_CERTS}/ca.crt
certfile ${MQTT_CERTS}/server.crt
keyfile ${MQTT_CERTS}/server.key

listener ${MQTT_MTLS_PORT} ${MQTT_HOST}
cafile ${MQTT_CERTS}/ca.crt
certfile ${MQTT_CERTS}/server.crt
keyfile ${MQTT_CERTS}/server.key
require_certificate true
use_identity_as_username true
EOF
}

start_mqtt() {
    mkdir -p "$MQTT_DIR"
    install_mosquitto
    local pid
    if pid="$(our_mqtt_pid)" && mqtt_answers; then
        log "mqtt: reusing the mosquitto this script started (pid ${pid})"
        return
    fi
    if mqtt_port_answers "$MQTT_PORT"; then
        log "mqtt: another server already listens on ${MQTT_HOST}:${MQTT_PORT}; stop it first"
        exit 1
    fi
    mqtt_certs
    mqtt_conf
    local t0=$SECONDS
    log "mqtt: starting mosquitto on ${MQTT_HOST}:${MQTT_PORT} (TLS ${MQTT_TLS_PORT}, mTLS ${MQTT_MTLS_PORT}; log ${MQTT_LOG})"
    # setsid: its own session, so a Ctrl-C in the caller's terminal does not
    # reach it; stop ends it by PID.
    setsid /usr/sbin/mosquitto -c "$MQTT_CONF" >>"$MQTT_LOG" 2>&1 </dev/null &
    echo $! >"$MQTT_PID"
    local i
    for i in $(seq 1 60); do
        mqtt_answers && break
        if ! kill -0 "$(cat "$MQTT_PID")" 2>/dev/null; then
            log "mqtt: mosquitto exited during start; last log lines:"
            tail -n 20 "$MQTT_LOG" >&2
            rm -f "$MQTT_PID"
            exit 1
        fi
        sleep 0.25
    done
    if ! mqtt_answers; then
        log "mqtt: not answering on ${MQTT_HOST}:${MQTT_PORT}/${MQTT_TLS_PORT}/${MQTT_MTLS_PORT} after 15 s; last log lines:"
        tail -n 20 "$MQTT_LOG" >&2
        exit 1
    fi
    log "mqtt: ready (pid $(cat "$MQTT_PID")) in $((SECONDS - t0)) s"
}

stop_mqtt() {
    # SIGTERM: mosquitto saves its persistence database and exits.
    stop_pid mqtt "$(our_mqtt_pid || true)" "${MQTT_PID}" 10
}
