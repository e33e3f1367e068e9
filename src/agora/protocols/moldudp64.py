"""MoldUDP64 1.00: packet codec and receiver-side gap logic; sender side in ``moldudp64_sender``.

Source: shared/specs/moldudp64.md (transcribed from Nasdaq's *MoldUDP64 Protocol Specification
V 1.00*). Pure logic, no sockets and no clock: the caller moves the bytes and owns the timers.

Wire (all numbers big-endian)::

    downstream  session(10 ANUM) sequence(u64) count(u16) then `count` blocks of len(u16)+data
    request     session(10 ANUM) sequence(u64) requested count(u16)          (exactly 20 bytes)

Count 0 is a Heartbeat and 0xFFFF an End of Session; both carry no blocks and their sequence
number is the *next expected* one. A data packet's message *i* has sequence ``sequence + i``.

Decisions (not in the spec, or left open by it):

* A session is kept as the exact 10 characters on the wire (no padding is stripped: the spec
  does not say how shorter names are padded). It must be printable ASCII (0x20-0x7E);
  anything else is refused as a bad session field. ``encode`` requires exactly 10 characters.
* The codec refuses a data packet whose last sequence number would pass 2**64 - 1.
* A request's count is carried as is (0 included); the ``RetransmissionStore`` gives a count of
  0 its own outcome. ``GapDetector`` never asks for more than ``max_request_count`` (default
  0xFFFE, so no server can mistake it for the End of Session marker).
* ``RetransmissionStore`` answers a valid request with one packet by default, as the spec says
  (only the messages that fit completely; the client asks again for the rest); invalid
  requests get a ``ReplayStatus`` that says why and no packets. The spec leaves invalid requests
  unspecified; a server built on this typically drops them.
* ``GapDetector`` re-requests by itself in one case only: a packet that starts exactly where one
  of its outstanding requests starts but ends before that request's end is taken as a reply
  truncated to fit, and the rest is asked for at once. Lost requests or replies are recovered by
  the caller calling ``retry()`` on its own timer (the detector has no clock).

Invariants: ``GapDetector`` hands each sequence number to the application at most once and
strictly in order; ``PacketBuilder`` never emits a packet longer than ``max_payload`` bytes;
every malformed input raises ``ProtocolError`` (never another exception).

Limitations: ``GapDetector`` buffers out-of-order messages without a bound (memory grows with
what is actually received, not with a claimed gap); at most ``request_window`` sequence numbers
past the next expected one are requested at a time, so a wild sequence number cannot produce a
flood of requests. ``RetransmissionStore`` bounds its memory by message count, not bytes.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Iterable
from typing import NamedTuple

import msgspec

from agora.protocols.errors import ProtocolError

SESSION_LEN = 10
HEADER_LEN = 20
BLOCK_HEADER_LEN = 2
HEARTBEAT_COUNT = 0
END_OF_SESSION_COUNT = 0xFFFF
MAX_MESSAGES_PER_PACKET = 0xFFFE
MAX_MESSAGE_LEN = 0xFFFF
MAX_SEQUENCE = 2**64 - 1
DEFAULT_MAX_PAYLOAD = 1400

_HEADER = struct.Struct(">10sQH")
_U16 = struct.Struct(">H")


# ------------------------------------------------------------------------------- records


class DownstreamPacket(msgspec.Struct, frozen=True):
    """One downstream packet. Heartbeat: no messages; End of Session: ``end_of_session``."""

    session: str
    sequence: int
    messages: tuple[bytes, ...] = ()
    end_of_session: bool = False

    @property
    def count(self) -> int:
        """The Message Count field as sent on the wire (0xFFFF for End of Session)."""
        return END_OF_SESSION_COUNT if self.end_of_session else len(self.messages)

    @property
    def is_heartbeat(self) -> bool:
        return not self.end_of_session and not self.messages

    @property
    def next_sequence(self) -> int:
        """Sequence number that follows this packet (its own for heartbeat / end of session)."""
        return self.sequence + len(self.messages)


class RequestPacket(msgspec.Struct, frozen=True):
    """A retransmission request: ``count`` messages from ``sequence`` on, in ``session``."""

    session: str
    sequence: int
    count: int


class Message(NamedTuple):
    sequence: int
    payload: bytes


def heartbeat(session: str, next_sequence: int) -> DownstreamPacket:
    return DownstreamPacket(session, next_sequence)


def end_of_session(session: str, next_sequence: int) -> DownstreamPacket:
    return DownstreamPacket(session, next_sequence, (), True)


# ------------------------------------------------------------------------------- codec


_CHECKED_SESSIONS: dict[str, bytes] = {}  # a venue has one session a day: checked once


def _check_session(session: object) -> bytes:
    raw = _CHECKED_SESSIONS.get(session) if type(session) is str else None
    if raw is not None:
        return raw
    raw = _checked_session(session)
    if len(_CHECKED_SESSIONS) < 64:
        _CHECKED_SESSIONS[session] = raw  # type: ignore[index]
    return raw


def _checked_session(session: object) -> bytes:
    if not isinstance(session, str):
        raise ProtocolError(f"session must be a str, got {type(session).__name__}")
    if len(session) != SESSION_LEN:
        raise ProtocolError(f"session must be exactly {SESSION_LEN} characters, got {session!r}")
    if not all(" " <= ch <= "~" for ch in session):
        raise ProtocolError(f"session must be printable ASCII, got {session!r}")
    return session.encode("ascii")


def _decode_session(raw: bytes) -> str:
    if not all(0x20 <= b <= 0x7E for b in raw):
        raise ProtocolError(f"bad session field {raw!r}: not printable ASCII")
    return raw.decode("ascii")


def _check_u(value: object, bits: int, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 1 << bits:
        raise ProtocolError(f"{what} must be an int in [0, 2**{bits}), got {value!r}")
    return value


_SEQUENCE_END = MAX_SEQUENCE + 1


def encode_packet(packet: DownstreamPacket) -> bytes:
    """The packet's wire bytes. A packet as ``PacketBuilder`` makes them (a known session, a
    tuple of ``bytes`` messages, numbers in range) is framed directly; anything else goes
    through ``encode_packet_checked``, which frames it the same way or raises its error."""
    session, seq, messages = packet.session, packet.sequence, packet.messages
    raw = _CHECKED_SESSIONS.get(session) if type(session) is str else None
    n = len(messages) if type(messages) is tuple else -1
    if (
        raw is not None
        and type(seq) is int
        and 0 <= n <= MAX_MESSAGES_PER_PACKET
        and seq >= 0
        and seq + (n or 1) <= _SEQUENCE_END
        and not (n and packet.end_of_session)
    ):
        parts = [_HEADER.pack(raw, seq, END_OF_SESSION_COUNT if packet.end_of_session else n)]
        append, pack_len = parts.append, _U16.pack
        for msg in messages:
            if type(msg) is not bytes or len(msg) > MAX_MESSAGE_LEN:
                break
            append(pack_len(len(msg)))
            append(msg)
        else:
            return b"".join(parts)
    return encode_packet_checked(packet)


def encode_packet_checked(packet: DownstreamPacket) -> bytes:
    """``encode_packet`` with every field checked: its reference, and the error path."""
    session = _check_session(packet.session)
    seq = _check_u(packet.sequence, 64, "sequence number")
    messages = packet.messages
    if packet.end_of_session and messages:
        raise ProtocolError("an End of Session packet carries no messages")
    if len(messages) > MAX_MESSAGES_PER_PACKET:
        raise ProtocolError(f"{len(messages)} messages exceed {MAX_MESSAGES_PER_PACKET}/packet")
    if messages and seq + len(messages) - 1 > MAX_SEQUENCE:
        raise ProtocolError("the packet's last sequence number passes 2**64 - 1")
    parts = [_HEADER.pack(session, seq, packet.count)]
    for i, msg in enumerate(messages):
        if not isinstance(msg, bytes | bytearray | memoryview):
            raise ProtocolError(f"message {i} must be bytes, got {type(msg).__name__}")
        if len(msg) > MAX_MESSAGE_LEN:
            raise ProtocolError(f"message {i} is {len(msg)} bytes, over {MAX_MESSAGE_LEN}")
        parts.append(_U16.pack(len(msg)))
        parts.append(bytes(msg))
    return b"".join(parts)


def decode_packet(data: bytes) -> DownstreamPacket:
    data = bytes(data)
    size = len(data)
    if size < HEADER_LEN:
        raise ProtocolError(f"downstream packet truncated: {size} bytes, header needs {HEADER_LEN}")
    raw_session, seq, count = _HEADER.unpack_from(data)
    session = _decode_session(raw_session)
    if count in (HEARTBEAT_COUNT, END_OF_SESSION_COUNT):
        kind = "heartbeat" if count == HEARTBEAT_COUNT else "end of session"
        if size != HEADER_LEN:
            raise ProtocolError(f"{kind} packet has {size - HEADER_LEN} trailing bytes")
        return DownstreamPacket(session, seq, (), count == END_OF_SESSION_COUNT)
    if seq + count - 1 > MAX_SEQUENCE:
        raise ProtocolError(f"sequence {seq} + count {count} passes 2**64 - 1")
    messages = []
    pos = HEADER_LEN
    for i in range(count):
        if pos == size:
            raise ProtocolError(f"message count is {count} but the packet holds only {i} blocks")
        if pos + BLOCK_HEADER_LEN > size:
            raise ProtocolError(f"message block {i} at offset {pos}: length field truncated")
        (length,) = _U16.unpack_from(data, pos)
        pos += BLOCK_HEADER_LEN
        if pos + length > size:
            raise ProtocolError(
                f"message block {i} at offset {pos - 2}: length {length} runs past the end of "
                f"the packet ({size - pos} bytes left)"
            )
        messages.append(data[pos : pos + length])
        pos += length
    if pos != size:
        raise ProtocolError(
            f"{size - pos} trailing bytes after the {count} message blocks the count announces"
        )
    return DownstreamPacket(session, seq, tuple(messages))


def encode_request(request: RequestPacket) -> bytes:
    session = _check_session(request.session)
    seq = _check_u(request.sequence, 64, "sequence number")
    count = _check_u(request.count, 16, "requested message count")
    return _HEADER.pack(session, seq, count)


def decode_request(data: bytes) -> RequestPacket:
    data = bytes(data)
    if len(data) < HEADER_LEN:
        raise ProtocolError(f"request packet truncated: {len(data)} bytes, expected {HEADER_LEN}")
    if len(data) > HEADER_LEN:
        raise ProtocolError(f"request packet has {len(data) - HEADER_LEN} trailing bytes")
    raw_session, seq, count = _HEADER.unpack(data)
    return RequestPacket(_decode_session(raw_session), seq, count)


def packet_size(messages: Iterable[bytes]) -> int:
    """Bytes a data packet holding ``messages`` takes on the wire."""
    return HEADER_LEN + sum(BLOCK_HEADER_LEN + len(m) for m in messages)


# ------------------------------------------------------------------------------- receiver


class Received(NamedTuple):
    """What one packet did: messages now deliverable (in order) and requests to send."""

    messages: list[Message]
    requests: list[RequestPacket]
    foreign_session: str | None = None  # the packet's session differs from ours: ignored
    end_of_session: bool = False  # the packet was an End of Session


class GapDetector:
    """Receiver logic: in-order exactly-once delivery, gap detection, retransmission requests.

    ``session`` None adopts the first packet's session; ``next_sequence`` None adopts the first
    packet's sequence number (join live without recovering history). Packets of any other
    session are ignored and reported in ``Received.foreign_session``; call ``reset`` to follow a
    new session. ``retry()`` re-requests every gap still open (call it on a timer).
    """

    def __init__(
        self,
        session: str | None = None,
        *,
        next_sequence: int | None = 1,
        max_request_count: int = MAX_MESSAGES_PER_PACKET,
        request_window: int = 1_000_000,
    ) -> None:
        if not 1 <= max_request_count <= 0xFFFF:
            raise ValueError("max_request_count must be in [1, 65535]")
        if request_window < 1:
            raise ValueError("request_window must be >= 1")
        self.max_request_count = max_request_count
        self.request_window = request_window
        self.duplicates = 0
        self.reset(session, next_sequence)

    def reset(self, session: str | None, next_sequence: int | None = 1) -> None:
        """Forget everything and start over on ``session`` (e.g. after a session change)."""
        if session is not None:
            _check_session(session)
        self.session = session
        self._next = next_sequence
        self._high = next_sequence or 0  # one past the highest sequence known to exist
        self._requested_upto = self._high
        self._buffer: dict[int, bytes] = {}
        self._outstanding: dict[int, int] = {}  # request start -> end (exclusive)
        self._end: int | None = None  # End of Session's next sequence number, once seen

    @property
    def next_sequence(self) -> int | None:
        return self._next

    @property
    def ended(self) -> bool:
        return self._end is not None

    @property
    def complete(self) -> bool:
        """End of Session seen and every message before it delivered."""
        return self._end is not None and self._next is not None and self._next >= self._end

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def gaps(self) -> list[tuple[int, int]]:
        """Missing ranges ``[start, end)`` below the highest sequence known to exist."""
        if self._next is None:
            return []
        return list(self._missing_runs(self._next, self._high))

    def on_packet(self, packet: DownstreamPacket) -> Received:
        if self.session is None:
            self.session = packet.session
        elif packet.session != self.session:
            return Received([], [], foreign_session=packet.session)
        if self._next is None:
            self._next = self._high = self._requested_upto = packet.sequence
        end = packet.next_sequence
        if packet.end_of_session:
            self._end = max(self._end or 0, packet.sequence)
        self._high = max(self._high, end)
        seq = packet.sequence
        for payload in packet.messages:
            if seq < self._next or seq in self._buffer:
                self.duplicates += 1
            else:
                self._buffer[seq] = payload
            seq += 1
        delivered = []
        while self._next in self._buffer:
            delivered.append(Message(self._next, self._buffer.pop(self._next)))
            self._next += 1

        requests = []
        req_end = self._outstanding.pop(packet.sequence, None) if packet.messages else None
        if req_end is not None and end < req_end:  # a reply cut short to fit: ask for the rest
            requests += self._request(end, req_end)
        lo = max(self._next, self._requested_upto)
        hi = min(self._high, self._next + self.request_window)
        if hi > lo:
            requests += self._request(lo, hi)
            self._requested_upto = hi
        if self._outstanding:
            for start in [s for s, e in self._outstanding.items() if e <= self._next]:
                del self._outstanding[start]
        return Received(delivered, requests, None, packet.end_of_session)

    def retry(self) -> list[RequestPacket]:
        """Requests for every gap still open (within the request window), sent afresh."""
        if self._next is None:
            return []
        self._outstanding.clear()
        hi = min(self._high, self._next + self.request_window)
        self._requested_upto = max(self._requested_upto, hi)
        return self._request(self._next, hi)

    def _missing_runs(self, lo: int, hi: int) -> Iterable[tuple[int, int]]:
        lo = max(lo, self._next or 0)
        if hi <= lo:
            return
        if hi - lo <= 4 * len(self._buffer) + 64:
            present = [s for s in range(lo, hi) if s in self._buffer]
        else:
            present = sorted(s for s in self._buffer if lo <= s < hi)
        start = lo
        for seq in present:
            if seq > start:
                yield start, seq
            start = seq + 1
        if start < hi:
            yield start, hi

    def _request(self, lo: int, hi: int) -> list[RequestPacket]:
        assert self.session is not None
        out = []
        for start, stop in self._missing_runs(lo, hi):
            while start < stop:
                count = min(stop - start, self.max_request_count)
                out.append(RequestPacket(self.session, start, count))
                self._outstanding[start] = start + count
                start += count
        return out


def is_multicast(host: str) -> bool:
    """Whether a feed address is a multicast group (a host name, ``localhost`` say, is not)."""
    try:
        return ipaddress.ip_address(host).is_multicast
    except ValueError:
        return False


_SENDER = frozenset({"PacketBuilder", "Replay", "ReplayStatus", "RetransmissionStore"})


def __getattr__(name: str) -> object:
    """The sender side lives in ``moldudp64_sender`` (imported on first use: it builds on this
    module); its names stay importable from here."""
    if name in _SENDER:
        from agora.protocols import moldudp64_sender

        return getattr(moldudp64_sender, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
