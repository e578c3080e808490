#!/bin/sh
# Fire and forget with mosquitto_pub: send.sh ON|OFF|CYCLE|TOGGLE PDU PORT. No ack is
# awaited (watch.sh shows it); never publish commands retained: pdumqtt refuses them.
set -eu
[ $# -eq 3 ] || { echo "usage: $0 ON|OFF|CYCLE|TOGGLE PDU PORT" >&2; exit 2; }
for level in "$2" "$3"; do
    case $level in ''|*/*|*+*|*'#'*) echo "$0: bad name '$level'" >&2; exit 2 ;; esac
done
exec mosquitto_pub -h "${MQTT_HOST:-localhost}" -p "${MQTT_PORT:-1883}" ${MQTT_USER:+-u "$MQTT_USER"} \
    ${MQTT_PASSWORD:+-P "$MQTT_PASSWORD"} -q 1 -t "${PDU_BASE:-pdu}/$2/$3/set" -m "$1"
