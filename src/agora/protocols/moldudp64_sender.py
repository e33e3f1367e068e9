"""MoldUDP64 1.00 sender side: ``PacketBuilder`` (packing) and ``RetransmissionStore``.

Split from :mod:`agora.protocols.moldudp64` (the codec, the receiver's ``GapDetector`` and the
decisions and invariants of both sides, in its docstring), which re-exports these names. The
publisher's hot paths (``PacketBuilder.pack``, ``RetransmissionStore.record``) handle ``bytes``
payloads that fit inline and hand anything else to the checked ``add`` / ``append``;
tests/protocols/test_moldudp64_fast.py holds them equal.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from enum import StrEnum
from typing import NamedTuple

from agora.protocols.errors import ProtocolError
from agora.protocols.moldudp64 import (
    _SEQUENCE_END,
    BLOCK_HEADER_LEN,
    DEFAULT_MAX_PAYLOAD,
    HEADER_LEN,
    MAX_MESSAGE_LEN,
    MAX_MESSAGES_PER_PACKET,
    MAX_SEQUENCE,
    DownstreamPacket,
    RequestPacket,
    _check_session,
    _check_u,
    end_of_session,
    heartbeat,
)

__all__ = ["PacketBuilder", "Replay", "ReplayStatus", "RetransmissionStore"]


def _check_max_payload(max_payload: int) -> int:
    if max_payload < HEADER_LEN + BLOCK_HEADER_LEN:
        raise ValueError(f"max_payload must be >= {HEADER_LEN + BLOCK_HEADER_LEN}")
    return max_payload


class PacketBuilder:
    """Packs message payloads into downstream packets of at most ``max_payload`` bytes.

    ``add`` returns the packets completed by this message (the pending packet is closed when the
    message does not fit); ``flush`` closes the pending packet. ``next_sequence`` is the number
    the next added message will get. ``heartbeat`` announces the first *unsent* sequence number;
    after ``end_session`` the builder refuses messages and ``heartbeat`` returns End of Session.
    """

    def __init__(
        self, session: str, *, next_sequence: int = 1, max_payload: int = DEFAULT_MAX_PAYLOAD
    ) -> None:
        _check_session(session)
        self.session = session
        self.max_payload = _check_max_payload(max_payload)
        self._sent_next = _check_u(next_sequence, 64, "next sequence number")
        self._pending: list[bytes] = []
        self._pending_size = HEADER_LEN
        self._ended = False

    @property
    def next_sequence(self) -> int:
        return self._sent_next + len(self._pending)

    @property
    def ended(self) -> bool:
        return self._ended

    @property
    def pending(self) -> int:
        return len(self._pending)

    def add(self, payload: bytes) -> list[DownstreamPacket]:
        if not isinstance(payload, bytes | bytearray | memoryview):
            raise ProtocolError(f"a message must be bytes, got {type(payload).__name__}")
        if self._ended:
            raise ProtocolError("session ended: no more messages may be sent")
        need = BLOCK_HEADER_LEN + len(payload)
        if HEADER_LEN + need > self.max_payload or len(payload) > MAX_MESSAGE_LEN:
            raise ProtocolError(
                f"message of {len(payload)} bytes does not fit a packet of {self.max_payload}"
            )
        if self.next_sequence > MAX_SEQUENCE:
            raise ProtocolError("sequence numbers exhausted")
        out = []
        if self._pending_size + need > self.max_payload:
            out.append(self._close())
        self._pending.append(bytes(payload))
        self._pending_size += need
        if len(self._pending) == MAX_MESSAGES_PER_PACKET:
            out.append(self._close())
        return out

    def pack(self, payloads: Iterable[bytes]) -> list[DownstreamPacket]:
        """Add every payload, then flush: the packets for the whole batch.

        A list of ``bytes`` payloads that fit is packed inline (the publisher's hot path):
        the same steps as ``add``, without the checks those payloads pass anyway; any other
        payload goes through ``add`` (the reference: a loop of ``add`` then ``flush``).
        """
        out: list[DownstreamPacket] = []
        inline = (
            type(payloads) is list
            and not self._ended
            and self.next_sequence + len(payloads) <= _SEQUENCE_END  # add refuses none of them
        )
        room = min(self.max_payload - HEADER_LEN - BLOCK_HEADER_LEN, MAX_MESSAGE_LEN)
        for payload in payloads:
            if not inline or type(payload) is not bytes or len(payload) > room:
                out.extend(self.add(payload))  # its checks and errors
                continue
            need = BLOCK_HEADER_LEN + len(payload)
            if self._pending_size + need > self.max_payload:
                out.append(self._close())
            self._pending.append(payload)
            self._pending_size += need
            if len(self._pending) == MAX_MESSAGES_PER_PACKET:
                out.append(self._close())
        last = self.flush()
        if last is not None:
            out.append(last)
        return out

    def flush(self) -> DownstreamPacket | None:
        return self._close() if self._pending else None

    def heartbeat(self) -> DownstreamPacket:
        if self._ended:
            return end_of_session(self.session, self._sent_next)
        return heartbeat(self.session, self._sent_next)

    def end_session(self) -> list[DownstreamPacket]:
        """Flush, then the first End of Session packet (send it a few times, as heartbeats)."""
        out = []
        last = self.flush()
        if last is not None:
            out.append(last)
        self._ended = True
        out.append(end_of_session(self.session, self._sent_next))
        return out

    def _close(self) -> DownstreamPacket:
        packet = DownstreamPacket(self.session, self._sent_next, tuple(self._pending))
        self._sent_next += len(self._pending)
        self._pending = []
        self._pending_size = HEADER_LEN
        return packet


class ReplayStatus(StrEnum):
    SERVED = "served"  # packets from the requested sequence on (maybe fewer than asked)
    WRONG_SESSION = "wrong_session"  # the request names another session: nothing sent
    EMPTY = "empty"  # a requested count of 0: nothing sent
    EXPIRED = "expired"  # the first requested sequence was evicted (or never kept): nothing sent
    NOT_SENT = "not_sent"  # the first requested sequence has not been sent yet: nothing sent


class Replay(NamedTuple):
    """Outcome of a request; ``oldest``/``next_sequence`` give the range the store holds."""

    status: ReplayStatus
    packets: tuple[DownstreamPacket, ...]
    oldest: int
    next_sequence: int


class RetransmissionStore:
    """The last ``capacity`` sent messages by sequence number, answering ``RequestPacket``s.

    A served reply starts at the requested sequence number and holds the messages that fit
    completely in ``max_payload``, clipped to what was sent and to the requested count; with
    ``max_packets_per_request`` > 1 it continues in further packets. A request starting below
    ``oldest`` is EXPIRED as a whole (``oldest`` tells the client where history resumes).
    """

    def __init__(
        self,
        session: str,
        *,
        capacity: int = 1_000_000,
        first_sequence: int = 1,
        max_payload: int = DEFAULT_MAX_PAYLOAD,
        max_packets_per_request: int = 1,
    ) -> None:
        _check_session(session)
        if capacity < 1 or max_packets_per_request < 1:
            raise ValueError("capacity and max_packets_per_request must be >= 1")
        self.session = session
        self.capacity = capacity
        self.max_payload = _check_max_payload(max_payload)
        self.max_packets_per_request = max_packets_per_request
        self._oldest = _check_u(first_sequence, 64, "first sequence number")
        self._messages: deque[bytes] = deque()

    @property
    def oldest(self) -> int:
        return self._oldest

    @property
    def next_sequence(self) -> int:
        return self._oldest + len(self._messages)

    def append(self, payload: bytes) -> int:
        """Keep one sent message; returns its sequence number."""
        size = len(payload)
        if HEADER_LEN + BLOCK_HEADER_LEN + size > self.max_payload or size > MAX_MESSAGE_LEN:
            raise ProtocolError(f"message of {size} bytes could never be replayed")
        seq = self.next_sequence
        self._messages.append(bytes(payload))
        if len(self._messages) > self.capacity:
            self._messages.popleft()
            self._oldest += 1
        return seq

    def record(self, packet: DownstreamPacket) -> None:
        """Keep the messages of a sent packet (heartbeats and End of Session add nothing)."""
        if packet.session != self.session:
            raise ProtocolError(f"packet of session {packet.session!r}, store is {self.session!r}")
        if packet.messages and packet.sequence != self.next_sequence:
            raise ProtocolError(
                f"packet starts at {packet.sequence}, the store expects {self.next_sequence}"
            )
        kept = self._messages
        room = min(self.max_payload - HEADER_LEN - BLOCK_HEADER_LEN, MAX_MESSAGE_LEN)
        for payload in packet.messages:
            if type(payload) is not bytes or len(payload) > room:
                self.append(payload)  # its checks and errors
                continue
            kept.append(payload)  # what append does for a bytes payload that fits
            if len(kept) > self.capacity:
                kept.popleft()
                self._oldest += 1

    def answer(self, request: RequestPacket) -> Replay:
        def outcome(status: ReplayStatus, packets: tuple[DownstreamPacket, ...] = ()) -> Replay:
            return Replay(status, packets, self._oldest, self.next_sequence)

        if request.session != self.session:
            return outcome(ReplayStatus.WRONG_SESSION)
        if request.count == 0:
            return outcome(ReplayStatus.EMPTY)
        if request.sequence < self._oldest:
            return outcome(ReplayStatus.EXPIRED)
        if request.sequence >= self.next_sequence:
            return outcome(ReplayStatus.NOT_SENT)
        seq = request.sequence
        stop = min(request.sequence + request.count, self.next_sequence)
        packets = []
        while seq < stop and len(packets) < self.max_packets_per_request:
            batch: list[bytes] = []
            size = HEADER_LEN
            while seq + len(batch) < stop and len(batch) < MAX_MESSAGES_PER_PACKET:
                payload = self._messages[seq + len(batch) - self._oldest]
                if size + BLOCK_HEADER_LEN + len(payload) > self.max_payload:
                    break
                batch.append(payload)
                size += BLOCK_HEADER_LEN + len(payload)
            packets.append(DownstreamPacket(self.session, seq, tuple(batch)))
            seq += len(batch)
        return outcome(ReplayStatus.SERVED, tuple(packets))
