#!/bin/sh
# Power-cycle an outlet (off, wait DELAY or the configured cycle_delay, on) and wait for the ack.
#   cycle.sh PDU PORT [DELAY]   or   cycle.sh ALIAS
exec "$(dirname "$0")/pdu-rr.sh" cycle "$@"
