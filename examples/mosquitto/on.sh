#!/bin/sh
# Switch an outlet on and wait for the ack.
#   on.sh PDU PORT   or   on.sh ALIAS
exec "$(dirname "$0")/pdu-rr.sh" on "$@"
