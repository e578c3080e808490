#!/bin/sh
# Switch an outlet off and wait for the ack.
#   off.sh PDU PORT   or   off.sh ALIAS
exec "$(dirname "$0")/pdu-rr.sh" off "$@"
