"""ItchSubscriber: the live source of the feed handler, ITCH 5.0 over MoldUDP64 into L3 books.

Receive path: UDP datagram -> optional ``drop`` hook (fault injection: return True to lose it)
-> ``decode_packet`` -> ``GapDetector`` (in order, exactly once) -> ``itch50.decode`` -> book.
Gaps are requested from the venue's retransmission port from the same socket the feed arrives
on, so replies come back on the same path; a timer re-requests every open gap each ``retry_ms``
(lost requests and lost replies are both recovered that way). Heartbeats carry the next
sequence number, so a lost tail is noticed at the next heartbeat.

Multicast: when ``host`` is a multicast group, the feed socket joins it (on ``interface``, the
default one unless given) bound to the group and port with ``SO_REUSEPORT``, so every receiver on
the host gets every datagram; requests for retransmission then leave from a second, unicast
socket of this subscriber's own (bound to ``request_host``), since unicast replies to a port that
several sockets share reach only one of them.

Book: a :class:`~agora.feed.handler.FeedHandler` (the same one that reads day files) keeps every
symbol's L3 book and the integrity report; each message's "offset" in that report is its MoldUDP64
sequence number. A detected sequence gap is reported as ``SEQUENCE_GAP`` (and recovered through
retransmission); a message naming an unknown reference is ``UNKNOWN_ORDER`` and ignored (a
receiver that joined without history). ``on_events`` receives the normalized core events.
``book_levels()`` returns ``{(symbol, side): [(price, ((ref, shares), ...)), ...]}``, levels best
first, empty sides left out: the form ``agora.exchange.venue.itch_feed.displayed_book`` gives for
the engine, so the two compare with ``==``. ``stale(ms)`` says whether nothing (not even a
heartbeat) arrived for that long: a silent feed is not a quiet market.

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

from agora.feed.handler import FeedHandler
from agora.feed.integrity import IssueKind
from agora.protocols import itch50, soupbintcp
from agora.protocols.errors import ProtocolError
from agora.protocols.moldudp64 import (
    GapDetector,
    RequestPacket,
    decode_packet,
    encode_request,
    is_multicast,
)

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
        on_events: Callable[[list], None] | None = None,
        interface: str = "0.0.0.0",
        request_host: str = "127.0.0.1",
    ) -> None:
        self.rcvbuf = rcvbuf
        self.host = host
        self.port = port
        self.interface = interface
        self.request_host = request_host
        self.retransmit = retransmit
        self.drop = drop
        self.retry_s = retry_ms / 1000
        self.detector = GapDetector(session, next_sequence=next_sequence)
        self.on_events = on_events
        self.handler = FeedHandler(emit=on_events is not None, check_crossed=False)
        self.states: dict[str, str] = {}  # symbol -> ITCH trading state code
        self.system_events: list[str] = []
        self.prints = 0  # 'P' and 'Q' messages
        self.messages = 0
        self.last_arrival: float | None = None  # loop time of the last datagram
        self.received = 0
        self.dropped = 0
        self.requests_sent = 0
        self.bad_packets = 0
        self._transport: asyncio.DatagramTransport | None = None
        self._requests: asyncio.DatagramTransport | None = None  # multicast: the unicast side
        self._retry_task: asyncio.Task | None = None
        self._buffering: list[bytes] | None = None
        self._changed: asyncio.Event | None = None
        self._lost: asyncio.Future | None = None

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._changed = asyncio.Event()
        self._lost = loop.create_future()
        if is_multicast(self.host):
            self._transport, _ = await loop.create_datagram_endpoint(
                lambda: self, sock=_group_socket(self.host, self.port, self.interface))
            self._requests, _ = await loop.create_datagram_endpoint(
                lambda: _Replies(self), local_addr=(self.request_host, 0))
        else:
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
        if self._requests is not None:
            self._requests.close()
            self._requests = None
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
        self.last_arrival = asyncio.get_running_loop().time()
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
            self.apply(message.payload, message.sequence)
        for request in result.requests:
            self.handler.report.record(
                IssueKind.SEQUENCE_GAP, request.sequence,
                f"MoldUDP64 gap: {request.count} messages from {request.sequence} requested",
            )
        self._send_requests(result.requests)
        if result.messages and self._changed is not None:
            self._changed.set()

    def _send_requests(self, requests: list[RequestPacket]) -> None:
        transport = self._requests or self._transport
        if not requests or self.retransmit is None or transport is None:
            return
        for request in requests:
            transport.sendto(encode_request(request), self.retransmit)
            self.requests_sent += 1

    async def _retry_loop(self) -> None:
        while True:
            await asyncio.sleep(self.retry_s)
            if self._buffering is None and self.detector.gaps():
                self._send_requests(self.detector.retry())

    # ------------------------------------------------------------ book

    def apply(self, payload: bytes, sequence: int = 0) -> None:
        """Apply one ITCH message to the books (``sequence`` locates it in the report)."""
        msg = itch50.decode(payload)
        self.messages += 1
        kind = type(msg)
        if kind is itch50.Trade or kind is itch50.CrossTrade:
            self.prints += 1
        elif kind is itch50.StockTradingAction:
            self.states[msg.stock] = msg.trading_state
        elif kind is itch50.SystemEvent:
            self.system_events.append(msg.event_code)
        events = self.handler.on_message(msg, sequence)
        if events and self.on_events is not None:
            self.on_events(events)

    @property
    def unknown_refs(self) -> int:
        return self.handler.report.counts.get(IssueKind.UNKNOWN_ORDER, 0)

    def stale(self, ms: float) -> bool:
        """True when no datagram (data or heartbeat) arrived in the last ``ms`` milliseconds."""
        if self.last_arrival is None:
            return True
        return asyncio.get_running_loop().time() - self.last_arrival > ms / 1000

    def book_levels(self) -> BookLevels:
        out: BookLevels = {}
        for symbol, book in self.handler.books.items():
            for side, levels in zip(("B", "S"), book.orders_by_level(), strict=True):
                if levels:
                    out[symbol, side] = [
                        (price, tuple((o.order_id, o.qty) for o in orders))
                        for price, orders in levels
                    ]
        return out

    def reset_book(self) -> None:
        self.handler = FeedHandler(emit=self.on_events is not None, check_crossed=False)

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


def _group_socket(group: str, port: int, interface: str) -> socket.socket:
    """A socket that receives ``group``:``port`` beside any other receiver on this host."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((group, port))
        membership = socket.inet_aton(group) + socket.inet_aton(interface)
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, membership)
    except BaseException:
        sock.close()
        raise
    return sock


class _Replies(asyncio.DatagramProtocol):
    """The unicast socket a multicast subscriber asks for retransmissions from: the venue's
    replies arrive here and join the feed."""

    def __init__(self, subscriber: ItchSubscriber) -> None:
        self.subscriber = subscriber

    def datagram_received(self, data: bytes, addr) -> None:  # type: ignore[override]
        self.subscriber.datagram_received(data, addr)


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
