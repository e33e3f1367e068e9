"""The framing of the replicas' append-only files: length, CRC-32 of the payload, the payload.

Shared by the log (``storage.py``), the checkpoint file (``checkpoint.py``) and the Byzantine
mode's storage. A crash mid-append leaves a frame whose declared length runs past the end of the
file (or zeros); a CRC that does not match is damage.
"""

from __future__ import annotations

import os
import struct
import zlib
from array import array
from collections.abc import Callable, Iterator

import msgspec

FRAME = struct.Struct("<II")  # payload length, crc32 of payload


def frame(payload: bytes) -> bytes:
    """One append-only log frame: length, CRC-32 of the payload, the payload."""
    return FRAME.pack(len(payload), zlib.crc32(payload)) + payload


def read_frames(data: bytes, decoder: msgspec.msgpack.Decoder,
                offsets: list[int] | None = None) -> tuple[list, int]:
    """The records of the whole, intact frames at the start of ``data`` and the offset after
    the last one: a torn or corrupt tail (a crash mid-write) ends the scan. ``offsets``, if
    given, gets where each record's frame starts."""
    records = []
    offset = 0
    while offset + FRAME.size <= len(data):
        length, crc = FRAME.unpack_from(data, offset)
        payload = data[offset + FRAME.size : offset + FRAME.size + length]
        if len(payload) < length or zlib.crc32(payload) != crc:
            break
        try:
            records.append(decoder.decode(payload))
        except (msgspec.DecodeError, msgspec.ValidationError):
            break
        if offsets is not None:
            offsets.append(offset)
        offset += FRAME.size + length
    return records, offset


def whole_frame(data: bytes) -> bool:
    """Whether ``data`` starts with a whole frame (one :func:`read_frames` refused, so it
    does not check), rather than the start of one a later read completes."""
    if len(data) < FRAME.size:
        return False
    length, _ = FRAME.unpack_from(data)
    return FRAME.size + length <= len(data)


def torn_tail(data: bytes, offset: int) -> bool:
    """Whether the bytes of ``data`` from ``offset`` (where :func:`read_frames` stopped) are
    what a crash mid-append leaves: a frame whose declared length runs past the end, or only
    zeros; anything else is damage before the end."""
    rest = data[offset:]
    return not rest.strip(b"\0") or not whole_frame(rest)


def read_frame(fd: int, offset: int) -> bytes | None:
    """The payload of the intact frame at ``offset`` of the file ``fd``, or None."""
    head = os.pread(fd, FRAME.size, offset)
    if len(head) == FRAME.size:
        length, crc = FRAME.unpack(head)
        payload = os.pread(fd, length, offset + FRAME.size)
        if len(payload) == length and zlib.crc32(payload) == crc:
            return payload
    return None


def read_places(fd: int, first: int, count: int) -> array | None:
    """Places ``first..first + count - 1`` (from 1) of the index file ``fd``: 8 bytes each,
    where the frame holding that entry or batch starts; None if the file is short of them."""
    data = os.pread(fd, 8 * count, 8 * (first - 1))
    if len(data) != 8 * count:
        return None
    places = array("Q")
    places.frombytes(data)
    return places


def places_of(first: int, count: int, base: int, recent: array,
              read_indexed: Callable[[int, int], array], what: str, holder: object) -> array:
    """Where ``what`` (entries, batches) ``first..first + count - 1`` start, for a storage that
    holds the places of those after ``base`` in memory (``recent``) and of those up to it in an
    index file (``read_indexed(first, count)``); LookupError if ``holder`` does not hold them."""
    end = first + count
    if first < 1 or end - 1 > base + len(recent):
        raise LookupError(f"{what} {first}..{end - 1} asked for, {holder} holds "
                          f"1..{base + len(recent)}")
    places = read_indexed(first, min(end, base + 1) - first) if first <= base else array("Q")
    places.extend(recent[max(first, base + 1) - 1 - base : end - 1 - base])
    return places


def read_frame_file(path: str | os.PathLike[str], decoder: msgspec.msgpack.Decoder
                    ) -> object | None:
    """The record of the small file at ``path`` that holds one frame (replaced whole), or None:
    no file (FileNotFoundError is not raised), or one cut, damaged or holding anything else."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return None
    records, used = read_frames(data, decoder)
    return records[0] if len(records) == 1 and used == len(data) else None


class FrameScan:
    """The intact frames of the file at ``path`` from byte ``start`` (a frame boundary) to
    ``stop`` (or its end), read ``chunk`` bytes at a time and decoded as the caller iterates:
    ``(offset of the frame, record)``. A torn or damaged frame ends the scan (only one chunk's
    records are decoded at a time, so a damaged frame is told from one a later read completes by
    :func:`whole_frame`). Once iterated, ``end`` is where the intact frames end and ``last``
    where the last of them starts (-1: none)."""

    def __init__(self, path: str | os.PathLike[str], decoder: msgspec.msgpack.Decoder, *,
                 chunk: int, start: int = 0, stop: int | None = None) -> None:
        self.path, self.decoder, self.chunk = path, decoder, chunk
        self.start, self.stop = start, stop
        self.end, self.last = start, -1

    def __iter__(self) -> Iterator[tuple[int, object]]:
        start, buf, stop = self.start, b"", self.stop
        with open(self.path, "rb") as f:
            f.seek(start)
            while True:
                size = self.chunk if stop is None else min(self.chunk, stop - start - len(buf))
                chunk = f.read(size) if size > 0 else b""
                buf = buf + chunk if buf else chunk
                offsets: list[int] = []
                records, used = read_frames(buf, self.decoder, offsets)
                for offset, record in zip(offsets, records, strict=True):
                    self.last = start + offset
                    yield start + offset, record
                self.end = start + used
                rest = buf[used:]
                if not chunk or whole_frame(rest):  # the end, or damage before it
                    return
                start, buf = start + used, rest
