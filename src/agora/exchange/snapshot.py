"""Snapshot files: opaque engine state as of a journal sequence number, written atomically.

Format (little-endian)::

    magic b"AGORASNP" | version u16 | flags u16 (0) | seq u64 | state_len u64 | crc u32 | state

``crc`` is ``crc32`` of the 28 header bytes before it followed by the state, so a damaged seq or
length is caught as well as damaged state. The state bytes are whatever the caller encodes (see
``agora.exchange.state``). Files in a snapshot directory are named ``snapshot-<seq:020d>.snap``
so names sort by seq. ``write_snapshot`` writes a temporary file in the same directory, fsyncs it,
renames it over the target and fsyncs the directory: a reader sees the old file or the new one,
never a mix, and a failed write leaves the old file untouched.
"""

from __future__ import annotations

import os
import re
import struct
import zlib
from pathlib import Path

from agora.core.errors import SnapshotError
from agora.core.files import replace_durably

MAGIC = b"AGORASNP"
VERSION = 1
_HEADER = struct.Struct("<8sHHQQI")
HEADER_SIZE = _HEADER.size  # 32
_NAME = re.compile(r"snapshot-(\d{20})\.snap")


def snapshot_path(directory: str | os.PathLike[str], seq: int) -> Path:
    """Where the snapshot as of ``seq`` lives in ``directory``."""
    return Path(directory) / f"snapshot-{seq:020d}.snap"


def _encode(seq: int, state: bytes) -> bytes:
    head = _HEADER.pack(MAGIC, VERSION, 0, seq, len(state), 0)[:-4]
    crc = zlib.crc32(state, zlib.crc32(head))
    return head + crc.to_bytes(4, "little") + state


def write_snapshot(path: str | os.PathLike[str], seq: int, state: bytes) -> Path:
    """Atomically write (or replace) the snapshot at ``path``; returns the path."""
    path = Path(path)
    replace_durably(path, _encode(seq, state))
    return path


def read_snapshot(path: str | os.PathLike[str]) -> tuple[int, bytes]:
    """(seq, state) of a snapshot file; SnapshotError says what is wrong with a bad one."""
    data = Path(path).read_bytes()
    if len(data) < HEADER_SIZE:
        raise SnapshotError(f"{path}: truncated header, {len(data)} of {HEADER_SIZE} bytes")
    magic, version, _flags, seq, length, crc = _HEADER.unpack_from(data)
    if magic != MAGIC:
        raise SnapshotError(f"{path}: bad magic {magic!r}, not an agora snapshot")
    if version != VERSION:
        raise SnapshotError(
            f"{path}: snapshot format version {version}, this build reads {VERSION}"
        )
    have = len(data) - HEADER_SIZE
    if have < length:
        raise SnapshotError(f"{path}: truncated state, {have} of {length} bytes")
    if have > length:
        raise SnapshotError(f"{path}: {have - length} unexpected bytes after the state")
    state = data[HEADER_SIZE:]
    if zlib.crc32(state, zlib.crc32(data[: HEADER_SIZE - 4])) != crc:
        raise SnapshotError(f"{path}: checksum mismatch")
    return seq, state


def list_snapshots(directory: str | os.PathLike[str]) -> list[tuple[int, Path]]:
    """Snapshots in ``directory`` as (seq, path), oldest first (by name; none if no dir)."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = [
        (int(m.group(1)), entry)
        for entry in directory.iterdir()
        if (m := _NAME.fullmatch(entry.name)) and entry.is_file()
    ]
    return sorted(found)


def latest_snapshot(directory: str | os.PathLike[str]) -> Path | None:
    """The snapshot with the highest seq in ``directory`` (by name), or None (also if no dir)."""
    found = list_snapshots(directory)
    return found[-1][1] if found else None
