"""``pduclient``: a drop-in for PDUDaemon's client, for LAVA device dictionaries and scripts.

The same flags (``--daemon``, ``--hostname``, ``--port``, ``--command``, ``--delay``, ``-H``),
the same requests on the wire (a TCP line with no newline, or with ``-H`` an HTTP GET, to
port 16421), the same messages and exit codes: 0 the command succeeded, 1 it could not be
sent (or the options are wrong), 127 the daemon refused it or it failed.

Additions: ``--daemon HOST:PORT`` for a listener on another port, and ``--mqtt`` to skip the
listener and talk to the broker directly (``--daemon`` is then the broker, port 1883 unless
given, or ``--broker``), waiting for the command's ack on an MQTT v5 response topic.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import time
from http.client import HTTPConnection, HTTPException
from urllib.parse import urlencode

import voluptuous as vol

from pdumqtt.client import BrokerOptions, NoAnswer, command_topic, send
from pdumqtt.drivers import split_host

LISTENER_PORT = 16421
EXIT_OK, EXIT_NOT_SENT, EXIT_REFUSED = 0, 1, 127
COMMANDS = ("reboot", "on", "off")
ACTIONS = {"reboot": "cycle", "on": "on", "off": "off"}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pduclient", description="PDUDaemon client (pdumqtt)",
        usage="%(prog)s --daemon deamonhostname --hostname pduhostname --port pduportnum --command pducommand")
    parser.add_argument("-H", "--http", dest="use_http", action="store_true", help="Use HTTP protocol")
    parser.add_argument("--daemon", dest="daemon",
                        help="PDUDaemon listener hostname (ex: localhost), HOST:PORT for another port than "
                             f"{LISTENER_PORT}; with --mqtt, the MQTT broker")
    parser.add_argument("--hostname", dest="pdu", help="PDU Hostname (ex: pdu05)")
    parser.add_argument("--port", dest="port", help="PDU Portnumber (ex: 04)")
    parser.add_argument("--command", dest="command", help="PDU command (ex: reboot|on|off)")
    parser.add_argument("--delay", dest="delay", type=int,
                        help="Delay before command runs, or between off/on when rebooting (ex: 5)")
    mqtt = parser.add_argument_group("pdumqtt additions")
    mqtt.add_argument("--token", default=os.environ.get("PDUMQTT_PDUDAEMON_TOKEN"),
                      help="the listener's client token (pdudaemon.auth_file) [env PDUMQTT_PDUDAEMON_TOKEN]")
    mqtt.add_argument("--mqtt", action="store_true", help="talk to the MQTT broker directly, not to the listener")
    mqtt.add_argument("--broker", default=os.environ.get("PDUMQTT_BROKER"),
                      help="with --mqtt: the broker as HOST:PORT [env PDUMQTT_BROKER]")
    mqtt.add_argument("--username", default=os.environ.get("PDUMQTT_USERNAME"), help="[env PDUMQTT_USERNAME]")
    mqtt.add_argument("--password", default=os.environ.get("PDUMQTT_PASSWORD"), help="[env PDUMQTT_PASSWORD]")
    mqtt.add_argument("--base-topic", default=os.environ.get("PDUMQTT_BASE_TOPIC", "pdu"),
                      help="with --mqtt: the daemon's mqtt.base_topic [env PDUMQTT_BASE_TOPIC]")
    mqtt.add_argument("--timeout", type=float, default=600.0,
                      help="seconds to wait for the answer, a reboot's delay added [600]")
    return parser


def _address(text: str, default_port: int) -> tuple[str, int]:
    try:
        return split_host(text, default_port)
    except vol.Invalid as e:
        print(f"Bad address {text!r}: {e.msg}")
        sys.exit(EXIT_NOT_SENT)


def _tcp(args: argparse.Namespace) -> int:
    words = [args.pdu, args.port, args.command] + ([str(args.delay)] if args.delay else [])
    if args.token:
        words.insert(0, f"token={args.token}")
    host, port = _address(args.daemon, LISTENER_PORT)
    try:
        with socket.create_connection((host, port), timeout=args.timeout + (args.delay or 0)) as sock:
            sock.sendall(" ".join(words).encode())
            reply = b""
            while chunk := sock.recv(16384):
                reply += chunk
    except OSError:
        print("Error sending command, wrong daemon hostname?")
        return EXIT_NOT_SENT
    text = reply.decode("utf-8", "replace").strip()
    if text == "ack":
        print("Command sent successfully.")
        return EXIT_OK
    print(f"Error sending command! {args.daemon} replied: {text}")
    return EXIT_REFUSED


def _http(args: argparse.Namespace) -> int:
    host, port = _address(args.daemon, LISTENER_PORT)
    query = {"hostname": args.pdu, "port": args.port}
    if args.delay:
        query["delay"] = str(args.delay)
    try:
        conn = HTTPConnection(host, port, timeout=args.timeout + (args.delay or 0))
        headers = {"Authorization": f"Bearer {args.token}"} if args.token else {}
        conn.request("GET", f"/power/control/{args.command}?{urlencode(query)}", headers=headers)
        response = conn.getresponse()
        body = response.read().decode("utf-8", "replace").strip()
        conn.close()
    except (OSError, HTTPException):
        print("Error sending command, wrong daemon hostname?")
        return EXIT_NOT_SENT
    if response.status < 400:
        print("Command sent successfully.")
        return EXIT_OK
    print(f"Error sending command! {args.daemon} replied: {response.status} {body}")
    return EXIT_REFUSED


def _mqtt(args: argparse.Namespace) -> int:
    host, port = _address(args.broker or args.daemon or "127.0.0.1", 1883)
    options = BrokerOptions(host, port, args.username, args.password, args.base_topic)
    payload: dict[str, object] = {"action": ACTIONS[args.command]}
    if args.delay and args.command == "reboot":
        payload["delay"] = args.delay
    elif args.delay:
        time.sleep(args.delay)  # PDUDaemon's meaning: wait, then switch
    try:
        ack = send(options, command_topic(args.base_topic, args.pdu, args.port, "set"), payload,
                   args.timeout + (args.delay or 0))
    except NoAnswer as e:
        print(f"Error sending command, wrong daemon hostname? ({e})")
        return EXIT_NOT_SENT
    assert ack is not None
    if ack["status"] == "ok":
        print("Command sent successfully.")
        return EXIT_OK
    print(f"Error sending command! pdumqtt replied: {ack['error']}")
    return EXIT_REFUSED


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if not (args.daemon or (args.mqtt and args.broker)) or not args.pdu or not args.port or not args.command:
        print("Missing option, try -h for help")
        return EXIT_NOT_SENT
    if args.command not in COMMANDS:
        print(f"Unknown pdu command: {args.command}")
        return EXIT_NOT_SENT
    if args.mqtt:
        return _mqtt(args)
    return _http(args) if args.use_http else _tcp(args)


def run() -> None:
    """The console script's entry point."""
    sys.exit(main())
