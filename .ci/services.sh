#!/usr/bin/env bash
# Start/stop the real servers that connector and store tests talk to
# (see ../shared/SERVICES.md). Developers run it by hand too.
#
# Usage: .ci/services.sh start|stop
#
#   start  installs moto (S3, DynamoDB, later Kinesis/Timestream) into a venv under
#          $HOME/.cache/iotflow-venv if missing, starts `moto_server` on
#          127.0.0.1:5000 (or reuses one already answering there), waits until
#          it answers and creates the test bucket `iotflow-test`.
#          Installs PostgreSQL (Debian `postgresql`) if missing, creates a
#          cluster under $HOME/.cache/iotflow-services/pg (trust auth, user
#          `postgres`) and starts it on 127.0.0.1:5432 (or reuses one already
#          answering there).
#   stop   stops the moto server and the PostgreSQL cluster this script
#          started, by PID / pg_ctl.
#
# Tests find the servers through environment variables that .ci/run exports
# after `start`:
#   IOTFLOW_TEST_S3_URL=s3://iotflow-test/ci AWS_ENDPOINT_URL=http://127.0.0.1:5000
#   AWS_ALLOW_HTTP=true AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1
#   IOTFLOW_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/postgres
#   IOTFLOW_TEST_DYNAMODB_URL=http://127.0.0.1:5000   (moto's DynamoDB)
set -euo pipefail

CACHE="${HOME}/.cache"
VENV="${CACHE}/iotflow-venv"
STATE="${CACHE}/iotflow-services"
MOTO_VERSION="5.2.5"
MOTO_HOST=127.0.0.1
MOTO_PORT=5000
MOTO_URL="http://${MOTO_HOST}:${MOTO_PORT}"
MOTO_PID="${STATE}/moto.pid"
MOTO_LOG="${STATE}/moto.log"
S3_BUCKET=iotflow-test
PG_HOST=127.0.0.1
PG_PORT=5432
PG_DATA="${STATE}/pg/data"
PG_SOCK="${STATE}/pg/sock"
PG_LOG="${STATE}/pg/postgres.log"

log() { echo "services: $*"; }

apt_updated=0
apt_install() {
    if [ "$apt_updated" = 0 ]; then
        apt-get update -qq
        apt_updated=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# Stops a server this script started: `stop_pid NAME PID PIDFILE SECONDS`
# sends SIGTERM, waits up to SECONDS for it to exit, then SIGKILLs it, and
# removes its PID file. With an empty PID (none of ours running) it only
# removes the PID file.
stop_pid() {
    local name="$1" pid="$2" pidfile="$3" secs="$4"
    if [ -z "$pid" ]; then
        rm -f "$pidfile"
        log "${name}: none started by this script is running"
        return
    fi
    kill "$pid"
    local i
    for i in $(seq 1 $((secs * 4))); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.25
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "${name}: pid ${pid} did not stop in ${secs} s; killing it"
        kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$pidfile"
    log "${name}: stopped (pid ${pid})"
}

moto_answers() { curl -sf -o /dev/null --max-time 2 "${MOTO_URL}/moto-api/"; }

# The PID in the PID file, if that process is still our moto server.
our_moto_pid() {
    [ -f "$MOTO_PID" ] || return 1
    local pid
    pid="$(cat "$MOTO_PID")"
    [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] &&
        tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q moto_server &&
        echo "$pid"
}

install_moto() {
    if [ -x "${VENV}/bin/moto_server" ] &&
        "${VENV}/bin/python" -c 'import moto, flask, flask_cors, boto3, docker, py_partiql_parser' 2>/dev/null; then
        log "moto: venv ${VENV} present"
        return
    fi
    local t0=$SECONDS
    log "moto: installing moto ${MOTO_VERSION} into ${VENV}"
    if ! python3 -m venv "$VENV" 2>/dev/null; then
        log "moto: python3 has no working venv module; installing python3-venv"
        rm -rf "$VENV"
        apt_install python3-venv
        python3 -m venv "$VENV"
    fi
    "${VENV}/bin/python" -m pip install -q --disable-pip-version-check \
        "moto[s3,dynamodb,kinesis]==${MOTO_VERSION}" flask flask-cors boto3
    log "moto: installed in $((SECONDS - t0)) s"
}

create_bucket() {
    "${VENV}/bin/python" - "$MOTO_URL" "$S3_BUCKET" <<'EOF'
import sys
import boto3
from botocore.exceptions import ClientError

url, bucket = sys.argv[1], sys.argv[2]
s3 = boto3.client("s3", endpoint_url=url, region_name="us-east-1",
                  aws_access_key_id="test", aws_secret_access_key="test")
try:
    s3.create_bucket(Bucket=bucket)
    print(f"services: moto: created bucket {bucket}")
except ClientError as e:
    if e.response["Error"]["Code"] not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
        raise
    print(f"services: moto: bucket {bucket} exists")
EOF
}

start_moto() {
    mkdir -p "$STATE"
    command -v curl >/dev/null || { log "installing curl"; apt_install curl; }
    install_moto
    if moto_answers; then
        log "moto: reusing the server already answering on ${MOTO_URL}"
    else
        local t0=$SECONDS
        log "moto: starting ${VENV}/bin/moto_server on ${MOTO_HOST}:${MOTO_PORT} (log ${MOTO_LOG})"
        # setsid: its own session, so a Ctrl-C in the caller's terminal does
        # not reach it; stop ends it by PID.
        setsid "${VENV}/bin/moto_server" -H "$MOTO_HOST" -p "$MOTO_PORT" \
            >>"$MOTO_LOG" 2>&1 </dev/null &
        echo $! >"$MOTO_PID"
        local i
        for i in $(seq 1 60); do
            moto_answers && break
            if ! kill -0 "$(cat "$MOTO_PID")" 2>/dev/null; then
                log "moto: exited during start; last log lines:"
                tail -n 20 "$MOTO_LOG" >&2
                rm -f "$MOTO_PID"
                exit 1
            fi
            sleep 0.5
        done
        if ! moto_answers; then
            log "moto: not answering on ${MOTO_URL} after 30 s; last log lines:"
            tail -n 20 "$MOTO_LOG" >&2
            exit 1
        fi
        log "moto: ready on ${MOTO_URL} (pid $(cat "$MOTO_PID")) in $((SECONDS - t0)) s"
    fi
    create_bucket
}

stop_moto() {
    stop_pid moto "$(our_moto_pid || true)" "${MOTO_PID}" 5
}

# The directory holding initdb/pg_ctl/pg_isready of the newest installed
# PostgreSQL, if any.
pg_bindir() {
    local d
    d="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
    [ -n "$d" ] && [ -x "$d/initdb" ] && echo "$d"
}

pg_answers() {
    local bin
    bin="$(pg_bindir)" || return 1
    "$bin/pg_isready" -q -h "$PG_HOST" -p "$PG_PORT" -U postgres -t 2
}

start_postgres() {
    local bin t0=$SECONDS
    if ! bin="$(pg_bindir)"; then
        log "postgres: installing Debian postgresql"
        apt_install postgresql
        bin="$(pg_bindir)"
        log "postgres: installed in $((SECONDS - t0)) s"
        # Debian may create and start its own cluster (password auth over
        # TCP) on 5432; ours takes the port instead.
        if command -v pg_lsclusters >/dev/null; then
            pg_lsclusters -h | while read -r ver name _ status _; do
                if [ "$status" = online ]; then
                    log "postgres: stopping Debian's cluster ${ver}/${name}"
                    pg_ctlcluster "$ver" "$name" stop || true
                fi
            done
        fi
    fi
    if pg_answers; then
        log "postgres: reusing the server already answering on ${PG_HOST}:${PG_PORT}"
        return
    fi
    mkdir -p "$PG_SOCK" "$(dirname "$PG_DATA")"
    chown -R postgres:postgres "${STATE}/pg"
    # The data directory must sit on a path the postgres user can traverse.
    chmod o+x "$HOME" "$CACHE" "$STATE" 2>/dev/null || true
    if [ ! -f "${PG_DATA}/PG_VERSION" ]; then
        log "postgres: initdb ${PG_DATA}"
        runuser -u postgres -- "$bin/initdb" -D "$PG_DATA" --auth=trust -U postgres >/dev/null
    fi
    log "postgres: starting on ${PG_HOST}:${PG_PORT} (log ${PG_LOG})"
    if ! runuser -u postgres -- "$bin/pg_ctl" -D "$PG_DATA" -l "$PG_LOG" -w -t 60 \
        -o "-c listen_addresses=${PG_HOST} -p ${PG_PORT} -k ${PG_SOCK} -c fsync=off -c max_connections=200" \
        start >/dev/null; then
        log "postgres: failed to start; last log lines:"
        tail -n 20 "$PG_LOG" >&2
        exit 1
    fi
    local i
    for i in $(seq 1 60); do
        pg_answers && break
        sleep 0.5
    done
    pg_answers || { log "postgres: not answering after 30 s"; tail -n 20 "$PG_LOG" >&2; exit 1; }
    log "postgres: ready on ${PG_HOST}:${PG_PORT} in $((SECONDS - t0)) s"
}

stop_postgres() {
    local bin
    if ! bin="$(pg_bindir)" || [ ! -f "${PG_DATA}/postmaster.pid" ]; then
        log "postgres: none started by this script is running"
        return
    fi
    runuser -u postgres -- "$bin/pg_ctl" -D "$PG_DATA" -m fast -w stop >/dev/null &&
        log "postgres: stopped" ||
        log "postgres: pg_ctl stop failed (see ${PG_LOG})"
}

# More servers, one file each: `.ci/services.d/NAME.sh` defines
# `start_NAME` and `stop_NAME` (and may use log, apt_install, CACHE, STATE).
SERVICES=(moto postgres)
for f in "$(dirname "$0")"/services.d/*.sh; do
    [ -e "$f" ] || continue
    # shellcheck source=/dev/null
    . "$f"
    SERVICES+=("$(basename "$f" .sh)")
done

case "${1:-}" in
    start) for s in "${SERVICES[@]}"; do "start_${s}"; done ;;
    stop) for s in "${SERVICES[@]}"; do "stop_${s}" || true; done ;;
    *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
