"""ItchSubscriber: an ITCH 5.0 / MoldUDP64 receiver that keeps an order-level (L3) book.

Receive path: UDP datagram -> optional ``drop`` hook (fault injection: return True to lose it)
-> ``decode_packet`` -> ``GapDetector`` (in order, exactly once) -> ``itch50.decode`` -> book.
Gaps are requested from the venue's retransmission port from the same socket the feed arrives
on, so replies come back on the same path; a timer re-requests every open gap each ``retry_ms``
(lost requests and lost replies are both recovered that way). Heartbeats carry the next
sequence number, so a lost tail is noticed at the next heartbeat.

Book: order reference -> [symbol, side, price, shares]; per (symbol, side) a dict price -> an
insertion-ordered dict of references (queue order). 'A' appends, 'E'/'X' reduce (at zero the
order leaves), 'D' removes, 'U' removes and appends the new reference at the back of its new
price. 'P' and 'Q' are prints with no book effect (counted). A message naming an unknown
reference is counted in ``unknown_refs`` and ignored (a receiver that joined without history).
``book_levels()`` returns ``{(symbol, side): [(price, ((ref, shares), ...)), ...]}``, levels
best first, empty sides left out: the form ``agora.exchange.venue.itch_feed.displayed_book``
gives for the engine, so the two compare with ``==``.

Late join: ``bootstrap_from_snapshot`` logs in to the venue's TCP snapshot channel (SoupBinTCP,
GLIMPSE-style). Feed datagrams arriving meanwhile are buffered. The snapshot's 'R'/'H'/'A'
messages rebuild the book; its End of Snapshot ('G' + 20 ASCII digits, the next feed sequence
number; layout unverified, see ``itch_publisher``) resets the gap detector to that number, then
the buffered datagrams are applied: older messages are duplicates and skipped, later ones are
applied, and anything between is requested.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable

from agora.protocols import itch50, soupbintcp
from agora.protocols.errors import ProtocolError
from agora.protocols.moldudp64 import GapDetector, RequestPacket, decode_packet, encode_request

Drop = Callable[[bytes], bool]
BookLevels = dict[tuple[str, str], list[tuple[int, tuple[tuple[int, int], ...]]]]


class SnapshotError(ConnectionError):
    """The snapshot channel refused the login or ended before End of Snapshot."""


class ItchSubscriber(asyncio.DatagramProtocol):
    """``await start()``, optionally ``await bootstrap_from_snapshot(...)``, ``await close()``."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        retransmit: tuple[str, int] | None = None,
        session: str | None = None,
        next_sequence: int | None = 1,
        drop: Drop | None = None,
        retry_ms: int = 50,
        rcvbuf: int = 4 << 20,
    ) -> None:
        self.rcvbuf = rcvbuf
        self.host = host
        self.port = port
        self.retransmit = retransmit
        self.drop = drop
        self.retry_s = retry_ms / 1000
        self.detector = GapDetector(session, next_sequence=next_sequence)
        self.orders: dict[int, list] = {}
        self.queues: dict[tuple[str, str], dict[int, dict[int, None]]] = {}
        self.symbols: dict[int, str] = {}  # stock locate -> symbol
        self.states: dict[str, str] = {}  # symbol -> ITCH trading state code
        self.system_events: list[str] = []
        self.prints = 0  # 'P' and 'Q' messages
        self.messages = 0
        self.received = 0
        self.dropped = 0
        self.requests_sent = 0
        self.unknown_refs = 0
        self.bad_packets = 0
        self._transport: asyncio.DatagramTransport | None = None
        self._retry_task: asyncio.Task | None = None
        self._buffering: list[bytes] | None = None
        self._changed: asyncio.Event | None = None
        self._lost: asyncio.Future | None = None

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._changed = asyncio.Event()
        self._lost = loop.create_future()
        self._transport, _ = await loop.create_datagram_endpoint(
            lambda: self, local_addr=(self.host, self.port)
        )
        self.port = self._transport.get_extra_info("sockname")[1]
        sock = self._transport.get_extra_info("socket")
        with contextlib.suppress(OSError):  # the kernel caps it at net.core.rmem_max
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.rcvbuf)
        self._retry_task = asyncio.create_task(self._retry_loop())

    async def close(self) -> None:
        if self._retry_task is not None:
            self._retry_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._retry_task
            self._retry_task = None
        if self._transport is not None:
            self._transport.close()
            self._transport = None
            await self._lost  # the socket is really closed: its port may be bound again

    def connection_lost(self, exc: Exception | None) -> None:
        if self._lost is not None and not self._lost.done():
            self._lost.set_result(None)

    @property
    def next_sequence(self) -> int | None:
        return self.detector.next_sequence

    async def wait_for_sequence(self, next_sequence: int, timeout: float) -> None:
        """Wait until every message before ``next_sequence`` is applied (TimeoutError if not)."""
        assert self._changed is not None, "start() first"

        async def reached() -> None:
            while (self.detector.next_sequence or 0) < next_sequence:
                self._changed.clear()
                await self._changed.wait()

        await asyncio.wait_for(reached(), timeout)

    # ------------------------------------------------------------ receive

    def datagram_received(self, data: bytes, addr) -> None:  # type: ignore[override]
        self.received += 1
        if self.drop is not None and self.drop(data):
            self.dropped += 1
            return
        if self._buffering is not None:
            self._buffering.append(data)
            return
        self._on_datagram(data)

    def _on_datagram(self, data: bytes) -> None:
        try:
            packet = decode_packet(data)
        except ProtocolError:
            self.bad_packets += 1
            return
        result = self.detector.on_packet(packet)
        for message in result.messages:
            self.apply(message.payload)
        self._send_requests(result.requests)
        if result.messages and self._changed is not None:
            self._changed.set()

    def _send_requests(self, requests: list[RequestPacket]) -> None:
        if not requests or self.retransmit is None or self._transport is None:
            return
        for request in requests:
            self._transport.sendto(encode_request(request), self.retransmit)
            self.requests_sent += 1

    async def _retry_loop(self) -> None:
        while True:
            await asyncio.sleep(self.retry_s)
            if self._buffering is None and self.detector.gaps():
                self._send_requests(self.detector.retry())

    # ------------------------------------------------------------ book

    def apply(self, payload: bytes) -> None:
        """Apply one ITCH message to the book."""
        msg = itch50.decode(payload)
        self.messages += 1
        kind = type(msg)
        if kind is itch50.AddOrder:
            self._add(msg.order_reference_number, msg.stock, msg.buy_sell_indicator,
                      msg.price, msg.shares)
        elif kind is itch50.OrderExecuted or kind is itch50.OrderExecutedWithPrice:
            self._reduce(msg.order_reference_number, msg.executed_shares)
        elif kind is itch50.OrderCancel:
            self._reduce(msg.order_reference_number, msg.cancelled_shares)
        elif kind is itch50.OrderDelete:
            self._remove(msg.order_reference_number)
        elif kind is itch50.OrderReplace:
            old = self._remove(msg.original_order_reference_number)
            if old is not None:
                self._add(msg.new_order_reference_number, old[0], old[1], msg.price, msg.shares)
        elif kind is itch50.Trade or kind is itch50.CrossTrade:
            self.prints += 1
        elif kind is itch50.StockDirectory:
            self.symbols[msg.stock_locate] = msg.stock
        elif kind is itch50.StockTradingAction:
            self.states[msg.stock] = msg.trading_state
        elif kind is itch50.SystemEvent:
            self.system_events.append(msg.event_code)

    def _add(self, ref: int, symbol: str, side: str, price: int, shares: int) -> None:
        if ref in self.orders:
            self._remove(ref)
        self.orders[ref] = [symbol, side, price, shares]
        self.queues.setdefault((symbol, side), {}).setdefault(price, {})[ref] = None

    def _reduce(self, ref: int, shares: int) -> None:
        order = self.orders.get(ref)
        if order is None:
            self.unknown_refs += 1
            return
        order[3] -= shares
        if order[3] <= 0:
            self._remove(ref)

    def _remove(self, ref: int) -> list | None:
        order = self.orders.pop(ref, None)
        if order is None:
            self.unknown_refs += 1
            return None
        levels = self.queues[order[0], order[1]]
        queue = levels[order[2]]
        del queue[ref]
        if not queue:
            del levels[order[2]]
        return order

    def book_levels(self) -> BookLevels:
        out: BookLevels = {}
        orders = self.orders
        for (symbol, side), levels in self.queues.items():
            prices = sorted(levels, reverse=side == "B")
            rows = [(p, tuple((ref, orders[ref][3]) for ref in levels[p])) for p in prices]
            if rows:
                out[symbol, side] = rows
        return out

    def reset_book(self) -> None:
        self.orders.clear()
        self.queues.clear()

    # ------------------------------------------------------------ snapshot (late join)

    async def bootstrap_from_snapshot(
        self, host: str, port: int, username: str, password: str, *, timeout: float = 10.0
    ) -> int:
        """Rebuild the book from the venue's snapshot channel, then follow the feed from the
        snapshot's sequence number. Returns that sequence number. Call after ``start()``."""
        assert self._transport is not None, "start() first"
        self._buffering = []
        try:
            session, next_sequence, messages = await asyncio.wait_for(
                _fetch_snapshot(host, port, username, password), timeout
            )
            self.reset_book()
            for payload in messages:
                self.apply(payload)
            self.detector.reset(session, next_sequence)
        finally:
            pending, self._buffering = self._buffering, None
        for data in pending:
            self._on_datagram(data)
        if self._changed is not None:
            self._changed.set()
        return next_sequence


async def _fetch_snapshot(
    host: str, port: int, username: str, password: str
) -> tuple[str, int, list[bytes]]:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(soupbintcp.encode(soupbintcp.LoginRequest(username, password, "", 1)))
        await writer.drain()
        framer = soupbintcp.SoupFramer(sender="server")
        session = ""
        messages: list[bytes] = []
        next_sequence: int | None = None
        while True:
            data = await reader.read(65536)
            if not data:
                raise SnapshotError("snapshot channel closed before End of Session")
            for packet in framer.feed(data):
                if isinstance(packet, soupbintcp.LoginRejected):
                    raise SnapshotError(f"snapshot login rejected: {packet.reason.name}")
                if isinstance(packet, soupbintcp.LoginAccepted):
                    session = packet.session
                elif isinstance(packet, soupbintcp.SequencedData):
                    message = packet.message
                    if len(message) == 21 and message[:1] == b"G":  # End of Snapshot
                        next_sequence = int(message[1:].strip())
                    else:
                        messages.append(message)
                elif isinstance(packet, soupbintcp.EndOfSession):
                    if next_sequence is None:
                        raise SnapshotError("snapshot ended without End of Snapshot")
                    return session, next_sequence, messages
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
