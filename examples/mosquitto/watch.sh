#!/bin/sh
# Follow every ack and state change as it happens (Ctrl-C to stop), with mosquitto_sub.
set -eu
base=${PDU_BASE:-pdu}
exec mosquitto_sub -h "${MQTT_HOST:-localhost}" -p "${MQTT_PORT:-1883}" ${MQTT_USER:+-u "$MQTT_USER"} \
    ${MQTT_PASSWORD:+-P "$MQTT_PASSWORD"} -v -t "$base/+/+/ack" -t "$base/+/+/state" -t "$base/+/availability" \
    -t "$base/alias/+/ack"
