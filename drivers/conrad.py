"""Conrad Components 197720 / 197730 relay cards: serial 19200 8N1, 4-byte XOR frames, chained cards.

Up to 255 cards of 8 relays share one serial port, chained: each passes on what is not
for it, and the last one's output comes back to the computer. A frame is
``[command, card, data, command ^ card ^ data]`` and a card answers
``[255 - command, card, data, xor]``. SETUP (1) sent to card 1 numbers the cards: each
answers 254 and passes the SETUP on with the next address, so the count of 254 answers
before the SETUP frame itself comes back is the number of cards. Then the cards are set
to the default broadcast option (GET/SET OPTION 4/5, value 1), as PDUDaemon does; relays
are switched with SET SINGLE (6) or DEL SINGLE (7), ``data = 1 << relay``, each answered
with the card's new relay byte, and read with GET PORT (2). A card that is not there lets
the frame come back unchanged. PDUDaemon's ``conrad197720`` numbers relays from 0 across
the cards (port 9 is card 2's second relay); our ``conrad_relay`` counts from 1.
"""

from __future__ import annotations

from typing import Any, ClassVar

import voluptuous as vol

from pdumqtt.drivers import DriverError, NoSuchOutlet
from pdumqtt.drivers.serial_relay import SerialDriver, device_path

SETUP, GET_PORT, SET_PORT, GET_OPTION, SET_OPTION, SET_SINGLE, DEL_SINGLE, TOGGLE = range(1, 9)
FIRST_CARD = 1  # the manual: address 0 does not work for the first card
RELAYS_PER_CARD = 8
MAX_CARDS = 255
DEFAULT_OPTION = 1  # broadcasts are passed on, and do not block


def frame(command: int, card: int, data: int) -> bytes:
    return bytes([command, card, data, command ^ card ^ data])


class ConradRelay(SerialDriver):
    model = "Conrad 197720 relay cards"
    protocol = "serial 19200 8N1 (4-byte XOR frames)"
    tested_against = "`conrad197720` simulator (pty pair, chained cards)"
    can_read = True
    baudrate = 19200
    options: ClassVar[dict[Any, Any]] = {vol.Required("device"): device_path}

    _cards: int | None = None

    def _ask(self, command: int, card: int, data: int, what: str) -> int:
        reply = self.link.exchange(frame(command, card, data), reply=4, what=what)
        return self._check(reply, command, card, what)

    def _check(self, reply: bytes, command: int, card: int, what: str) -> int:
        if reply[0] ^ reply[1] ^ reply[2] != reply[3]:
            self.close()  # out of step with the frames: start afresh, with a new SETUP
            raise DriverError(f"{self.link.device} answered {what} with {reply.hex()}: bad checksum")
        if reply == frame(command, card, reply[2]) and command != SETUP:
            raise DriverError(f"no card {card} on {self.link.device}: the frame for {what} came back unanswered")
        if reply[0] != 255 - command or reply[1] != card:
            self.close()
            raise DriverError(f"{self.link.device} answered {what} with {reply.hex()}, expected "
                              f"{255 - command:02x}{card:02x}..")
        return reply[2]

    def cards(self) -> int:
        """How many cards answer on the port: SETUP once per connection, then their options checked."""
        if self._cards is None:
            what = "SETUP (counting the cards)"
            reply = self.link.exchange(frame(SETUP, FIRST_CARD, 0), reply=4, what=what)
            count = 0
            while reply[0] == 255 - SETUP and count < MAX_CARDS:
                self._check(reply, SETUP, FIRST_CARD + count, what)
                count += 1
                reply = self.link.read(4, what=what)
            if reply[0] != SETUP or reply[1] != FIRST_CARD + count:
                self.close()
                raise DriverError(f"{self.link.device} answered {what} with {reply.hex()} after {count} cards, "
                                  f"expected the SETUP frame back ({SETUP:02x}{FIRST_CARD + count:02x}..)")
            if count == 0:
                raise DriverError(f"no Conrad relay card answers on {self.link.device}")
            for card in range(FIRST_CARD, FIRST_CARD + count):
                if self._ask(GET_OPTION, card, 0, f"GET OPTION of card {card}") != DEFAULT_OPTION:
                    self._ask(SET_OPTION, card, DEFAULT_OPTION, f"SET OPTION of card {card}")
            self._cards = count
        return self._cards

    def _relay(self, port: int) -> tuple[int, int]:
        index = port - self.first_port
        card, relay = FIRST_CARD + index // RELAYS_PER_CARD, index % RELAYS_PER_CARD
        cards = self.cards()
        if index < 0 or card >= FIRST_CARD + cards:
            first, last = self.first_port, self.first_port + cards * RELAYS_PER_CARD - 1
            raise NoSuchOutlet(f"port {port} does not exist: {cards} card{'s' if cards > 1 else ''} on "
                              f"{self.link.device} have ports {first} to {last}")
        return card, relay

    def set(self, port: int, on: bool) -> None:
        card, relay = self._relay(port)
        what = f"{'SET' if on else 'DEL'} SINGLE relay {relay + 1} of card {card}"
        state = self._ask(SET_SINGLE if on else DEL_SINGLE, card, 1 << relay, what)
        if bool(state >> relay & 1) != on:
            raise DriverError(f"card {card} on {self.link.device} did not switch relay {relay + 1} "
                              f"{'on' if on else 'off'} (its relays: {state:08b})")

    def get(self, port: int) -> bool:
        card, relay = self._relay(port)
        return bool(self._ask(GET_PORT, card, 0, f"GET PORT of card {card}") >> relay & 1)

    def close(self) -> None:
        self._cards = None
        super().close()


class Conrad197720(ConradRelay):
    """PDUDaemon's ``conrad197720``: ``device`` (default /dev/ttyUSB0), relays numbered from 0."""

    native_driver = "conrad_relay"
    first_port = 0
    options: ClassVar[dict[Any, Any]] = {vol.Optional("device", default="/dev/ttyUSB0"): device_path}

    @classmethod
    def ports_for(cls, options: dict[str, Any]) -> tuple[int, str] | None:
        return RELAYS_PER_CARD, (f"ports 0 to {RELAYS_PER_CARD - 1}, one card's relays (each chained card adds "
                                 f"{RELAYS_PER_CARD}): ports past the last card are refused, and the probe skips them")
