#!/bin/sh
# Every outlet's state and every PDU's availability, from pdumqtt's retained topics,
# with mosquitto_sub: status.sh [PDU]. Same environment as pdu-rr.sh; PDU_STATUS_WAIT is how
# long to wait for the retained messages (seconds, 1).
set -eu
pdu=${1:-+}
case $pdu in */*|*'#'*|'') echo "$0: bad PDU name '$pdu'" >&2; exit 2 ;; esac
base=${PDU_BASE:-pdu}
set -- -h "${MQTT_HOST:-localhost}" -p "${MQTT_PORT:-1883}" ${MQTT_USER:+-u "$MQTT_USER"} \
    ${MQTT_PASSWORD:+-P "$MQTT_PASSWORD"} --retained-only -W "${PDU_STATUS_WAIT:-1}" -v \
    -t "$base/bridge/state" -t "$base/$pdu/availability" -t "$base/$pdu/+/state"
# --retained-only stops at the first live message; -W ends the wait when none comes: status 27
# and "Timed out" on stderr, which here only means that every retained message has arrived
err=$(mktemp)
trap 'rm -f "$err"' EXIT
status=0
mosquitto_sub "$@" 2>"$err" || status=$?
[ "$status" -eq 27 ] && exit 0
cat "$err" >&2
exit "$status"
