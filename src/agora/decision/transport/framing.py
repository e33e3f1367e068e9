"""Datagram framing of the consensus messages (shared by replicas and clients).

Frame kinds (first byte of every datagram):

* ``0`` whole message: the consensus codec's bytes follow;
* ``1`` fragment: ``<IHH`` (message id, fragment index, fragment count) then a slice of the
  message's bytes. The receiver keeps at most ``pending_max`` partial messages per node (oldest
  evicted first); an incomplete message is dropped, like a lost datagram.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections import OrderedDict
from collections.abc import Callable
from typing import Protocol

import msgspec

Address = tuple[str, int]
CHUNK = 60_000  # payload bytes per fragment: under the 65,507-byte IPv4 UDP limit
_WHOLE, _FRAGMENT = b"\x00", 1
_FRAG = struct.Struct("<BIHH")
SOCKET_BUFFER = 4 << 20


def frames(data: bytes, message_id: int) -> list[bytes]:
    """The datagrams that carry ``data`` (one unless it is larger than :data:`CHUNK`)."""
    if len(data) <= CHUNK:
        return [_WHOLE + data]
    count = -(-len(data) // CHUNK)
    if count > 0xFFFF:
        raise ValueError(f"message of {len(data)} bytes is too large to fragment")
    return [_FRAG.pack(_FRAGMENT, message_id & 0xFFFFFFFF, i, count)
            + data[i * CHUNK:(i + 1) * CHUNK] for i in range(count)]


class Datagrams(Protocol):
    """The sending half of a UDP socket, as asyncio's datagram transport spells it."""

    def sendto(self, data: bytes, addr: Address) -> None: ...

    def is_closing(self) -> bool: ...


def send_message(transport: Datagrams, data: bytes, message_id: int,
                 addresses: list[Address]) -> tuple[int, int]:
    """Send ``data`` (fragmented above :data:`CHUNK`) to every address; (datagrams, bytes)."""
    if len(data) <= CHUNK:  # the common case: one whole datagram each
        datagram = _WHOLE + data
        for addr in addresses:
            transport.sendto(datagram, addr)
        return len(addresses), len(addresses) * len(datagram)
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


def decoded(reassembler: Reassembler, data: bytes, addr: Address,
            decode: Callable[[bytes], object]) -> object | None:
    """The message a datagram completes, or None (a fragment waiting for the rest, garbage)."""
    whole = reassembler.feed(data, addr)
    if whole is None:
        return None
    try:
        return decode(whole)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None


def tune(sock: socket.socket) -> None:
    """Larger kernel buffers: a burst of Prepares must not overflow a paused reader at once."""
    for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
        with contextlib.suppress(OSError):  # a kernel limit; the default still works
            sock.setsockopt(socket.SOL_SOCKET, option, SOCKET_BUFFER)


def tune_socket(transport: asyncio.BaseTransport) -> None:
    """:func:`tune` the socket under an asyncio datagram transport."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        tune(sock)
