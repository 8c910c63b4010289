#!/usr/bin/env bash
# Start/stop the real servers connector tests talk to (see ../shared/SERVICES.md).
# Usage: .ci/services.sh start|stop
# This slice has no connector that needs a server; Kafka, MQTT, Kinesis/S3,
# PostgreSQL and Redis are added here with their connectors.
set -euo pipefail
case "${1:-}" in
    start) echo "services: none required" ;;
    stop) ;;
    *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
