"""The UDP pipe under a :class:`~agora.decision.consensus.Replica`: framing, a node, a recorder.

Frame kinds (first byte of every datagram):

* ``0`` whole message: the consensus codec's bytes follow;
* ``1`` fragment: ``<IHH`` (message id, fragment index, fragment count) then a slice of the
  message's bytes. The receiver keeps at most ``pending_max`` partial messages per node (oldest
  evicted first); an incomplete message is dropped, like a lost datagram.

The node is single-threaded on an asyncio (uvloop) loop: decode -> ``replica.on_message(msg,
clock.now_ns())`` -> execute the outbox: backup acknowledgements to clients, committed records
(flushed to the OS), then the leader's replies (one ``ReplyBatch`` datagram per client address
when a step answers several requests), then the sends in outbox order; then the storage writes
the step held back (``drain``). Clients announce their addresses with a ``Hello`` (backups need
them for acknowledgements; the leader also learns them from requests). A timer calls
``on_tick`` every ``tick_ns``. Garbage datagrams are counted and dropped; a replica exception is
a bug and ends the process (the test sees it die).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import struct
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import msgspec

from agora.core.clock import Clock
from agora.decision.consensus.messages import (
    Broadcast,
    Committed,
    Hello,
    Outbox,
    Reply,
    ReplyBatch,
    Request,
    RequestBatch,
    Send,
    ToClient,
    decode,
    encode,
)
from agora.decision.consensus.replica import Replica

Address = tuple[str, int]
CHUNK = 60_000  # payload bytes per fragment: under the 65,507-byte IPv4 UDP limit
_WHOLE, _FRAGMENT = b"\x00", 1
_FRAG = struct.Struct("<BIHH")
SOCKET_BUFFER = 4 << 20
REPLIES_PER_DATAGRAM = 1_024  # a Reply is ~20 bytes: well inside one unfragmented datagram
HELLO_MAX = 65_536  # client ids one Hello may claim (bounds what a stray datagram can add)


def frames(data: bytes, message_id: int) -> list[bytes]:
    """The datagrams that carry ``data`` (one unless it is larger than :data:`CHUNK`)."""
    if len(data) <= CHUNK:
        return [_WHOLE + data]
    count = -(-len(data) // CHUNK)
    if count > 0xFFFF:
        raise ValueError(f"message of {len(data)} bytes is too large to fragment")
    return [_FRAG.pack(_FRAGMENT, message_id & 0xFFFFFFFF, i, count)
            + data[i * CHUNK:(i + 1) * CHUNK] for i in range(count)]


def send_message(transport: asyncio.DatagramTransport, data: bytes, message_id: int,
                 addresses: list[Address]) -> tuple[int, int]:
    """Send ``data`` (fragmented above :data:`CHUNK`) to every address; (datagrams, bytes)."""
    datagrams = sent = 0
    for datagram in frames(data, message_id):
        for addr in addresses:
            transport.sendto(datagram, addr)
            datagrams += 1
            sent += len(datagram)
    return datagrams, sent


class Reassembler:
    """Whole messages out of datagrams; bounded state for partial ones."""

    def __init__(self, pending_max: int = 32) -> None:
        self.pending_max = pending_max
        self.partial: OrderedDict[tuple[Address, int], list[bytes | None]] = OrderedDict()
        self.dropped = 0  # partial messages evicted (a fragment was lost)
        self.malformed = 0  # datagrams that are not our framing at all

    def feed(self, data: bytes, addr: Address) -> bytes | None:
        if data[:1] == b"\x00":
            return data[1:]
        if not data or data[0] != _FRAGMENT or len(data) < _FRAG.size:
            self.malformed += 1
            return None
        _, message_id, index, count = _FRAG.unpack_from(data)
        if index >= count:
            self.malformed += 1
            return None
        key = (addr, message_id)
        parts = self.partial.get(key)
        if parts is None:
            if len(self.partial) >= self.pending_max:
                self.partial.popitem(last=False)
                self.dropped += 1
            parts = self.partial[key] = [None] * count
        if len(parts) != count:
            self.malformed += 1
            return None
        parts[index] = data[_FRAG.size:]
        if any(p is None for p in parts):
            return None
        del self.partial[key]
        return b"".join(p for p in parts if p is not None)


def tune_socket(transport: asyncio.DatagramTransport) -> None:
    """Larger kernel buffers: a burst of Prepares must not overflow a paused reader at once."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        import socket

        for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
            with contextlib.suppress(OSError):  # a kernel limit; the default still works
                sock.setsockopt(socket.SOL_SOCKET, option, SOCKET_BUFFER)


# ---------------------------------------------------------------- committed-log record


class Record(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """One line of a replica's committed log: a start marker (``item`` None) or an output.

    ``applied`` is, for a start marker, the durable point the incarnation starts from;
    ``at_ns`` is the replica's clock when it emitted the record.
    """

    replica: int
    incarnation: int
    at_ns: int
    applied: int
    item: Committed | None


_LEN = struct.Struct("<I")
_record_encoder = msgspec.msgpack.Encoder()
_record_decoder = msgspec.msgpack.Decoder(Record)


def _scan(data: bytes) -> Iterator[tuple[Record, int]]:
    offset = 0
    while offset + _LEN.size <= len(data):
        (length,) = _LEN.unpack_from(data, offset)
        end = offset + _LEN.size + length
        if end > len(data):
            return
        try:
            record = _record_decoder.decode(data[offset + _LEN.size:end])
        except (msgspec.DecodeError, msgspec.ValidationError):
            return
        yield record, end
        offset = end


def read_records(path: Path) -> list[Record]:
    """Every whole record in ``path`` (a torn last frame of a live or killed writer is skipped)."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        return []
    return [record for record, _ in _scan(data)]


class Recorder:
    """Appends records; on open, cuts a torn tail and finds the durable point and incarnation."""

    def __init__(self, path: Path, replica: int) -> None:
        self.path = Path(path)
        self.replica = replica
        self.applied = 0
        self.incarnation = 0
        good = 0
        if self.path.exists():
            for record, end in _scan(self.path.read_bytes()):
                good = end
                self.incarnation = record.incarnation + 1
                self.applied = record.item.index if record.item is not None else record.applied
        self._file = open(self.path, "ab")  # noqa: SIM115 - lives with the recorder
        self._file.truncate(good)

    def start(self, now_ns: int) -> None:
        self._write(Record(self.replica, self.incarnation, now_ns, self.applied, None))
        self.flush()

    def committed(self, item: Committed, now_ns: int) -> None:
        self._write(Record(self.replica, self.incarnation, now_ns, 0, item))
        self.applied = item.index

    def _write(self, record: Record) -> None:
        payload = _record_encoder.encode(record)
        self._file.write(_LEN.pack(len(payload)) + payload)

    def flush(self) -> None:
        """To the OS (survives SIGKILL, not a power cut): the test oracle, not a durable log."""
        self._file.flush()

    def close(self) -> None:
        self._file.close()


# ---------------------------------------------------------------- the replica node


class NodeStats(msgspec.Struct):
    datagrams_sent: int = 0
    datagrams_received: int = 0
    bytes_sent: int = 0
    peer_messages_sent: int = 0  # replica -> replica messages (a broadcast counts n - 1)
    replies_sent: int = 0
    garbage: int = 0  # datagrams that are not our framing, or frame something undecodable
    committed: int = 0
    view: int = 0
    status: int = 0


class ReplicaNode(asyncio.DatagramProtocol):
    """Drives one :class:`Replica` from a UDP socket and a tick timer."""

    def __init__(self, replica: Replica, peers: Sequence[Address], clock: Clock,
                 recorder: Recorder | None = None, *, tick_ns: int = 1_000_000) -> None:
        self.replica = replica
        self.peers = list(peers)
        self.me = replica.config.replica
        # every other replica, starting after this one: a leader's Prepare reaches first the
        # backup that acknowledges to clients (see ``Replica._acks_clients``)
        self.others = [self.peers[(self.me + k) % len(peers)] for k in range(1, len(peers))]
        self.clock = clock
        self.recorder = recorder
        self.tick_s = tick_ns / 1e9
        self.clients: dict[int, Address] = {}
        self.reassembler = Reassembler()
        self.stats = NodeStats()
        self.transport: asyncio.DatagramTransport | None = None
        self._message_id = 0
        self._timer: asyncio.TimerHandle | None = None
        self.failed: BaseException | None = None
        self.stopped = asyncio.get_running_loop().create_future()

    @classmethod
    async def serve(cls, replica: Replica, peers: Sequence[Address], clock: Clock,
                    recorder: Recorder | None = None, *, tick_ns: int = 1_000_000) -> ReplicaNode:
        """Bind this replica's address, start the replica and its timer."""
        loop = asyncio.get_running_loop()
        _, node = await loop.create_datagram_endpoint(
            lambda: cls(replica, peers, clock, recorder, tick_ns=tick_ns),
            local_addr=peers[replica.config.replica])
        return node

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment] - uvloop's is no subclass
        tune_socket(self.transport)
        now = self.clock.now_ns()
        if self.recorder is not None:
            self.recorder.start(now)
        self._run(lambda: self.replica.start(now))
        self._timer = asyncio.get_running_loop().call_later(self.tick_s, self._tick)

    def datagram_received(self, data: bytes, addr: Address) -> None:
        self.stats.datagrams_received += 1
        before = self.reassembler.malformed
        whole = self.reassembler.feed(data, addr)
        if whole is None:
            self.stats.garbage += self.reassembler.malformed - before
            return
        try:
            message = decode(whole)
        except (msgspec.DecodeError, msgspec.ValidationError):
            self.stats.garbage += 1
            return
        if isinstance(message, Reply | ReplyBatch):
            return
        if isinstance(message, Hello):
            if message.cluster == self.replica.config.cluster and 0 < message.count <= HELLO_MAX:
                self.clients.update(dict.fromkeys(
                    range(message.first_id, message.first_id + message.count), addr))
            return
        if isinstance(message, Request):
            self.clients[message.client_id] = addr
        elif isinstance(message, RequestBatch):
            for request in message.requests:
                self.clients[request.client_id] = addr
        self._run(lambda: self.replica.on_message(message, self.clock.now_ns()))

    def _tick(self) -> None:
        self._run(lambda: self.replica.on_tick(self.clock.now_ns()))
        if self.failed is None:
            self._timer = asyncio.get_running_loop().call_later(self.tick_s, self._tick)

    def _run(self, step: Callable[[], list[Outbox]]) -> None:
        if self.failed is not None:
            return
        try:
            out = step()
            self.execute(out)
            self.replica.storage.drain()  # records the step held back, now its sends are out
        except BaseException as exc:  # a replica bug: stop serving, let the owner exit
            self.failed = exc
            if not self.stopped.done():
                self.stopped.set_exception(exc)
            return
        self.stats.view = self.replica.view
        self.stats.status = int(self.replica.status)

    def execute(self, out: list[Outbox]) -> None:
        """Backup acknowledgements, committed records (to the OS), the leader's replies grouped per
        client address, then sends in outbox order.

        A client never hears of a commit the replica's record (the checker's oracle, and the
        embedding application's hook) does not hold yet, even if the replica is killed right
        after replying; replies answer committed entries only, so sending them ahead of the
        step's Prepares and Commits changes no guarantee and takes those sends off their path.
        """
        recorder = self.recorder
        recorded = False
        replies: dict[Address, list[Reply]] = {}
        acks: dict[Address, list[Reply]] = {}
        n = len(self.peers)
        for item in out:
            if isinstance(item, Committed):
                self.stats.committed += 1
                if recorder is not None:
                    recorder.committed(item, self.clock.now_ns())
                    recorded = True
            elif isinstance(item, ToClient):
                addr = self.clients.get(item.client_id)
                if addr is not None:
                    reply: Reply = item.message  # type: ignore[assignment]
                    group = replies if reply.replica == reply.view % n else acks
                    group.setdefault(addr, []).append(reply)
        for addr, group in acks.items():  # about uncommitted entries: no record to wait for
            self._send_replies(group, addr)
        if recorded and recorder is not None:
            recorder.flush()
        for addr, group in replies.items():
            self._send_replies(group, addr)
        for item in out:
            if isinstance(item, Send):
                self._send(encode(item.message), [self.peers[item.to]])
                self.stats.peer_messages_sent += 1
            elif isinstance(item, Broadcast):
                self._send(encode(item.message), self.others)
                self.stats.peer_messages_sent += len(self.others)

    def _send_replies(self, group: list[Reply], addr: Address) -> None:
        """One datagram per :data:`REPLIES_PER_DATAGRAM` replies to one client process."""
        self.stats.replies_sent += len(group)
        if len(group) == 1:
            self._send(encode(group[0]), [addr])
            return
        cluster = self.replica.config.cluster
        for i in range(0, len(group), REPLIES_PER_DATAGRAM):
            batch = ReplyBatch(cluster, self.me, tuple(group[i:i + REPLIES_PER_DATAGRAM]))
            self._send(encode(batch), [addr])

    def _send(self, data: bytes, addresses: list[Address]) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        self._message_id += 1
        datagrams, sent = send_message(transport, data, self._message_id, addresses)
        self.stats.datagrams_sent += datagrams
        self.stats.bytes_sent += sent

    def error_received(self, exc: Exception) -> None:
        """ICMP port unreachable from a dead peer: UDP is lossy anyway, ignore."""

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self.transport is not None:
            self.transport.close()
        if self.recorder is not None:
            self.recorder.close()
        if not self.stopped.done():
            self.stopped.set_result(None)

    def dump_stats(self, path: Path) -> None:
        """Write the counters atomically (a reader never sees half a file)."""
        tmp = Path(f"{path}.tmp")
        tmp.write_bytes(msgspec.json.encode(self.stats))
        os.replace(tmp, path)
