#!/bin/sh
# Send one command to pdumqtt and wait for its ack, with mosquitto_rr (MQTT v5 request/response).
#   pdu-rr.sh ACTION PDU PORT [DELAY]     ACTION: on, off, cycle, toggle
#   pdu-rr.sh ACTION ALIAS                a configured alias instead of PDU and PORT
# Prints the ack (JSON); exits 0 when the ack says ok, 1 when it says error, 2 on bad
# usage, and mosquitto_rr's status when no ack came (no broker, no daemon, timeout).
# Broker and topics: MQTT_HOST (localhost), MQTT_PORT (1883), MQTT_USER, MQTT_PASSWORD,
# PDU_BASE (pdu, the daemon's mqtt.base_topic), PDU_TIMEOUT (seconds, 30).
set -eu
usage() { echo "usage: $0 on|off|cycle|toggle PDU PORT [DELAY] | $0 on|off|cycle|toggle ALIAS" >&2; exit 2; }
[ $# -ge 2 ] || usage
action=$1; shift
case $action in on|off|cycle|toggle) ;; *) usage ;; esac
case $# in
    1) target="alias/$1"; delay= ;;
    2) target="$1/$2"; delay= ;;
    3) target="$1/$2"; delay=$3 ;;
    *) usage ;;
esac
# a topic level must not carry MQTT wildcards or reach into another level
for level in "$@"; do
    case $level in ''|*/*|*+*|*'#'*) echo "$0: bad name '$level'" >&2; exit 2 ;; esac
done
payload="{\"action\": \"$action\"}"
if [ -n "$delay" ]; then
    case $delay in *[!0-9.]*|'') echo "$0: DELAY must be a number of seconds" >&2; exit 2 ;; esac
    payload="{\"action\": \"$action\", \"delay\": $delay}"
fi
base=${PDU_BASE:-pdu}
set -- -h "${MQTT_HOST:-localhost}" -p "${MQTT_PORT:-1883}" -q 1 -W "${PDU_TIMEOUT:-30}"
[ -n "${MQTT_USER:-}" ] && set -- "$@" -u "$MQTT_USER"
[ -n "${MQTT_PASSWORD:-}" ] && set -- "$@" -P "$MQTT_PASSWORD"
ack=$(mosquitto_rr "$@" -t "$base/$target/set" -e "pdumqtt-rr/$(hostname)-$$/ack" -m "$payload")
echo "$ack"
case $ack in *'"status": "ok"'*) exit 0 ;; *) exit 1 ;; esac
