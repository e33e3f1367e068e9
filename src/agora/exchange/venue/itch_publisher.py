"""ItchPublisher: the venue's market data, ITCH 5.0 over MoldUDP64, with recovery channels.

Three sockets, all asyncio on the venue's loop (the same thread that calls ``VenueCore.submit``):

* **Feed** (UDP, sends to ``itch_address:itch_port``). A VenueCore listener collects each
  committed event batch; the core's flush hook, which runs after the gateways' (``last=True``:
  acknowledgements first, see ``core.py``), maps them with
  :class:`~agora.exchange.venue.itch_feed.ItchMapper`, encodes them and packs everything of that
  flush (one event-loop turn under group commit) with a MoldUDP64 ``PacketBuilder`` and sends
  it: one datagram per turn under load, not one per command, and a command's events never wait
  for a later command. Every packet is kept in a
  ``RetransmissionStore``. When no packet went out for ``heartbeat_ms`` a Heartbeat announces
  the next sequence number, so a receiver that lost the tail of a burst notices the gap.
  ``close()`` sends End of Session (three times).
* **Retransmission** (UDP on ``retransmit_port``): MoldUDP64 requests are answered from the
  store, to the address the request came from. Malformed requests are dropped and counted.
* **Snapshot** (TCP on ``snapshot_port``), GLIMPSE-style, for late joiners: SoupBinTCP Login
  Request, accepted for any configured participant's username/password (Login Rejected 'A'
  otherwise; 'S' when a non-blank session names another session), then Sequenced Data packets:
  an ITCH 'R' and 'H' per symbol (locate order) and an 'A' for every displayed resting order
  (per symbol bids then asks, each in priority order), then End of Snapshot, then End of
  Session. The snapshot is built synchronously between two commands, so it is exactly the
  state after feed message ``next_sequence - 1``.

End of Snapshot (GLIMPSE 5.0 'G'): type byte ``G`` + Sequence Number, 20 ASCII digits
left-justified and space-padded = the next MoldUDP64 sequence number the snapshot is consistent
with (apply feed messages from it on). **(unverified)**: the GLIMPSE specification is not in
shared/specs; the layout follows the public GLIMPSE 5.0 description.

Restart: the publisher subscribes with ``replay=True``; the replayed history (the whole session,
regenerated deterministically from the journal) goes through the same mapper and builder but is
only stored, not sent, so a restarted venue continues the feed with the same sequence numbers and
can retransmit everything published before the restart. Hence 'S' 'C' (end of messages) is only
sent by ``close(end_of_messages=True)``: a restart would not reproduce it.

Multicast: when ``itch_address`` is a multicast group, the feed socket is bound to the wildcard
address (or ``itch_interface``), sends with ``itch_multicast_ttl`` (0 keeps the feed on this
host) and loops its datagrams back to subscribers on this host, so several receivers (the
decision nodes, a recorder) share one feed; each asks for retransmissions from its own unicast
socket. It needs a route to the group (the default route does; a host without one gets
``OSError`` at the first send).

Limitations: VenueCore has no unsubscribe, so after ``close()`` the listener stays registered
and ignores further batches. An ITCH mapping error (a price beyond
Price(4)) propagates out of ``VenueCore.flush`` after the command was committed and acknowledged:
the feed is then wrong and the venue must stop, which is better than silently skipping a
message.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Sequence

from agora.core.enums import Side
from agora.exchange.venue.config import VenueConfig, VenueSection
from agora.exchange.venue.core import VenueCore
from agora.exchange.venue.itch_feed import ItchMapper
from agora.protocols import itch50, soupbintcp
from agora.protocols.errors import ProtocolError
from agora.protocols.moldudp64 import (
    DEFAULT_MAX_PAYLOAD,
    DownstreamPacket,
    decode_request,
    encode_packet,
    is_multicast,
)
from agora.protocols.moldudp64_sender import PacketBuilder, RetransmissionStore

END_OF_SNAPSHOT = b"G"
END_OF_SESSION_REPEATS = 3
LOGIN_TIMEOUT_S = 10.0


def end_of_snapshot(next_sequence: int) -> bytes:
    """GLIMPSE 'G' End of Snapshot (unverified layout, see the module docstring)."""
    return END_OF_SNAPSHOT + str(next_sequence).encode("ascii").ljust(20)


def parse_end_of_snapshot(message: bytes) -> int | None:
    """The sequence number of a 'G' message, or None if ``message`` is not one."""
    if len(message) != 21 or message[:1] != END_OF_SNAPSHOT:
        return None
    return int(message[1:].strip())


def feed_socket(venue: VenueSection) -> socket.socket:
    """The socket the feed leaves from: on ``venue.host`` for a unicast destination; for a
    multicast group, on the wildcard address or ``itch_interface``, with the group options."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        if not is_multicast(venue.itch_address):
            sock.bind((venue.host, 0))
            return sock
        sock.bind((venue.itch_interface, 0))
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, venue.itch_multicast_ttl)
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 1)
        if venue.itch_interface:
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF,
                            socket.inet_aton(venue.itch_interface))
    except BaseException:
        sock.close()
        raise
    return sock


class _RetransmitProtocol(asyncio.DatagramProtocol):
    def __init__(self, publisher: ItchPublisher) -> None:
        self.publisher = publisher
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport) -> None:  # type: ignore[override]
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:  # type: ignore[override]
        self.publisher._serve_request(data, addr)


class ItchPublisher:
    """Publishes VenueCore's market data; ``await start()``, then ``await close()``."""

    def __init__(
        self,
        core: VenueCore,
        config: VenueConfig | None = None,
        *,
        mapper: ItchMapper | None = None,
        max_payload: int = DEFAULT_MAX_PAYLOAD,
        store_capacity: int = 1_000_000,
    ) -> None:
        self.core = core
        self.config = config or core.config
        venue = self.config.venue
        self.session = venue.session
        self.destination = (venue.itch_address, venue.itch_port)
        self.heartbeat_s = venue.heartbeat_ms / 1000
        self.mapper = mapper or ItchMapper()
        self.builder = PacketBuilder(self.session, max_payload=max_payload)
        self.store = RetransmissionStore(
            self.session, capacity=store_capacity, max_payload=max_payload
        )
        self.messages_published = 0
        self.packets_sent = 0
        self.requests_served = 0
        self.bad_requests = 0
        self.snapshots_served = 0
        self._live = False
        self._closed = False
        self._last_send = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._feed: asyncio.DatagramTransport | None = None
        self._retransmit: asyncio.DatagramTransport | None = None
        self._server: asyncio.Server | None = None
        self._heartbeats: asyncio.Task | None = None
        self._clients: set[asyncio.Task] = set()
        self._batches: list[Sequence[object]] = []  # committed, mapped at the core's flush hook

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        loop = self._loop = asyncio.get_running_loop()
        venue = self.config.venue
        self._feed, _ = await loop.create_datagram_endpoint(
            asyncio.DatagramProtocol, sock=feed_socket(venue)
        )
        self._retransmit, _ = await loop.create_datagram_endpoint(
            lambda: _RetransmitProtocol(self), local_addr=(venue.host, venue.retransmit_port)
        )
        self._server = await asyncio.start_server(
            self._snapshot_client, venue.host, venue.snapshot_port
        )
        self.core.subscribe(self._on_events, replay=True, flushed=self._on_flushed, last=True)
        self._live = True  # the history above was only stored, not sent
        self._send(self.builder.heartbeat())  # tell receivers where the feed stands
        self._heartbeats = asyncio.create_task(self._heartbeat_loop())

    @property
    def next_sequence(self) -> int:
        return self.builder.next_sequence

    @property
    def retransmit_address(self) -> tuple[str, int]:
        assert self._retransmit is not None, "start() first"
        return self._retransmit.get_extra_info("sockname")[:2]

    @property
    def snapshot_address(self) -> tuple[str, int]:
        assert self._server is not None, "start() first"
        return self._server.sockets[0].getsockname()[:2]

    async def close(self, *, end_of_messages: bool = False) -> None:
        """Optionally publish 'S' 'C', then End of Session; stop serving (idempotent)."""
        if self._closed:
            return
        if end_of_messages and self._live:
            self._publish([itch50.encode(self.mapper.end_of_messages())])
        self._closed = True
        if self._heartbeats is not None:
            self._heartbeats.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeats
        if self._live:
            for packet in self.builder.end_session():
                self._send(packet)
            for _ in range(END_OF_SESSION_REPEATS - 1):
                self._send(self.builder.heartbeat())
        if self._server is not None:
            self._server.close()
            for task in list(self._clients):
                task.cancel()
            await asyncio.gather(*self._clients, return_exceptions=True)
            await self._server.wait_closed()
        for transport in (self._retransmit, self._feed):
            if transport is not None:
                transport.close()
        self._live = False

    # ------------------------------------------------------------ feed

    def _on_events(self, seq: int, events: Sequence[object]) -> None:
        if self._closed:
            return
        if self._live:
            self._batches.append(events)
            return
        payloads = self.mapper.encode_events(events)
        if payloads:
            self._publish(payloads)  # replayed history: packed and stored in order, not sent

    def _on_flushed(self) -> None:
        if self._batches and not self._closed:
            batches, self._batches = self._batches, []
            encode_events = self.mapper.encode_events
            payloads: list[bytes] = []
            for events in batches:
                payloads += encode_events(events)
            if payloads:
                self._publish(payloads)

    def _publish(self, payloads: list[bytes]) -> None:
        """Pack encoded messages into packets, keep them for retransmission, send when live."""
        packets = self.builder.pack(payloads)
        self.messages_published += len(payloads)
        for packet in packets:
            self.store.record(packet)
            if self._live:
                self._send(packet)

    def _send(self, packet: DownstreamPacket) -> None:
        assert self._feed is not None and self._loop is not None
        self._feed.sendto(encode_packet(packet), self.destination)
        self.packets_sent += 1
        self._last_send = self._loop.time()

    async def _heartbeat_loop(self) -> None:
        loop = self._loop
        assert loop is not None
        while True:
            wait = self._last_send + self.heartbeat_s - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
                continue
            self._send(self.builder.heartbeat())

    # ------------------------------------------------------------ retransmission

    def _serve_request(self, data: bytes, addr) -> None:
        try:
            request = decode_request(data)
        except ProtocolError:
            self.bad_requests += 1
            return
        replay = self.store.answer(request)
        assert self._retransmit is not None
        for packet in replay.packets:
            self._retransmit.sendto(encode_packet(packet), addr)
        self.requests_served += 1

    # ------------------------------------------------------------ snapshot

    def snapshot_messages(self) -> tuple[list[bytes], int]:
        """ITCH 'R', 'H', 'A' messages of the current state and the sequence they precede."""
        self.core.flush()  # publish grouped commands first: the state must match the feed
        engine = self.core.engine
        mapper = self.mapper
        ts = mapper.last_ts
        out: list[bytes] = []
        encode = itch50.encode
        for symbol in mapper.locates:  # insertion order = locate order
            sym = engine.symbols[symbol]
            out.append(encode(mapper.directory_message(symbol, ts)))
            out.append(encode(mapper.trading_action(symbol, sym.state, ts)))
            for side in (Side.BUY, Side.SELL):
                for level in sym.book(side).levels_in_priority():
                    for o in level.displayed.values():
                        if o.visible > 0:
                            out.append(encode(
                                mapper.add_order(symbol, o.order_id, side, o.visible, o.price, ts)
                            ))
        assert self.builder.pending == 0  # every batch is flushed when published
        return out, self.builder.next_sequence

    def _snapshot_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        task = asyncio.create_task(self._serve_snapshot(reader, writer))
        self._clients.add(task)
        task.add_done_callback(self._clients.discard)

    async def _serve_snapshot(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        framer = soupbintcp.SoupFramer(sender="client")
        try:
            login = await asyncio.wait_for(self._read_login(reader, framer), LOGIN_TIMEOUT_S)
            if login is None:
                return
            reason = self._login_problem(login)
            if reason is not None:
                writer.write(soupbintcp.encode(soupbintcp.LoginRejected(reason)))
                await writer.drain()
                return
            messages, next_sequence = self.snapshot_messages()  # no await: one consistent state
            encode = soupbintcp.encode
            chunks = [encode(soupbintcp.LoginAccepted(self.session, 1))]
            chunks += [encode(soupbintcp.SequencedData(m)) for m in messages]
            chunks.append(encode(soupbintcp.SequencedData(end_of_snapshot(next_sequence))))
            chunks.append(encode(soupbintcp.EndOfSession()))
            writer.write(b"".join(chunks))
            await writer.drain()
            self.snapshots_served += 1
        except (TimeoutError, ConnectionError, ProtocolError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError, asyncio.CancelledError):
                await writer.wait_closed()

    @staticmethod
    async def _read_login(
        reader: asyncio.StreamReader, framer: soupbintcp.SoupFramer
    ) -> soupbintcp.LoginRequest | None:
        while True:
            data = await reader.read(4096)
            if not data:
                return None
            for packet in framer.feed(data):
                if isinstance(packet, soupbintcp.LoginRequest):
                    return packet
                if isinstance(packet, soupbintcp.LogoutRequest):
                    return None

    def _login_problem(self, login: soupbintcp.LoginRequest) -> soupbintcp.RejectReason | None:
        section = self.config.participant_by_username(login.username)
        if section is None or section.password != login.password:
            return soupbintcp.RejectReason.NOT_AUTHORIZED
        if login.session and login.session != self.session:
            return soupbintcp.RejectReason.SESSION_NOT_AVAILABLE
        return None
