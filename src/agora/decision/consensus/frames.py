"""The framing of the replicas' append-only files: length, CRC-32 of the payload, the payload.

Shared by the log (``storage.py``), the checkpoint file (``checkpoint.py``) and the Byzantine
mode's storage. A crash mid-append leaves a frame whose declared length runs past the end of the
file (or zeros); a CRC that does not match is damage.
"""

from __future__ import annotations

import os
import struct
import zlib

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
