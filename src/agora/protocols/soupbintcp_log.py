"""A SoupBinTCP server's log of one session's Sequenced Data, for the whole session, in bounded
memory.

Why: a SoupBinTCP client may log in again asking for any sequence number of the session, so a
server must be able to send every message it ever sequenced, all day. Kept as ``bytes`` in a list
they cost a venue ~82 bytes of memory per message for the life of the process. Here only the
most recent ``keep`` to ``2 * keep`` packets stay in memory (the live path and a quick reconnect
read those); older ones are written to a file, in one write per ``keep`` packets, and read back
only for a client that asks for them.

The file is a cache, not a record: the server can rebuild the log (the OUCH gateway does, from the
journal, at every start), so it is an unnamed file in ``directory``: it is created at the first
spill (a short session never touches the disk) and removed when the log is closed or the process
ends, whatever the way. Layout: the packets back to back, exactly as sent (Packet Length, ``S``,
message). Memory per spilled message: where every ``STRIDE``-th packet starts (8 bytes per 64
messages); a read from the file starts at the mark at or before the first message wanted and
walks the length prefixes.

Message ``i`` (0-based) is sequence number ``i + 1``.
"""

from __future__ import annotations

import os
import tempfile
import weakref
from array import array
from pathlib import Path

from agora.protocols.soupbintcp import MAX_PACKET_LENGTH

STRIDE = 64  # a file offset is kept for every STRIDE-th message
_READ_SIZE = 2 * (2 + MAX_PACKET_LENGTH)  # one pread: always holds one whole packet or more


class SessionLog:
    """Sequenced Data packets ``0 .. len - 1``: the recent ones in memory, the rest in a file."""

    def __init__(self, directory: str | os.PathLike[str] | None = None, *,
                 keep: int = 8192) -> None:
        if keep < 1:
            raise ValueError(f"keep must be at least 1, not {keep}")
        self.directory = Path(directory) if directory is not None else None
        self.keep = keep
        self._recent: list[bytes] = []  # packets of messages _spilled .. count - 1
        self._spilled = 0  # messages written to the file: 0 .. _spilled - 1
        self.count = 0  # messages in the log (len), as an attribute: read on every flush
        self._file_size = 0
        self._marks = array("Q")  # file offset of message k * STRIDE, for every spilled k
        self._fd = -1
        self._finalizer: weakref.finalize | None = None

    def __len__(self) -> int:
        return self.count

    @property
    def in_memory(self) -> int:
        """How many of the most recent messages are held in memory."""
        return len(self._recent)

    def extend(self, packets: list[bytes]) -> None:
        """Sequence ``packets``: messages framed once as Sequenced Data by the caller
        (``soupbintcp.sequenced_packets``), kept and sent as they are."""
        if self._fd == -2:
            raise ValueError("the session log is closed")
        recent = self._recent
        recent.extend(packets)
        self.count += len(packets)
        if len(recent) >= 2 * self.keep:
            self._spill(len(recent) - self.keep)

    def take(self, start: int, limit: int) -> tuple[bytes, int]:
        """The packets of messages ``start`` on, at most ``limit`` of them, as one buffer to
        write, and how many that is. From memory when ``start`` is recent; else from the file,
        which stops at the first message in memory and at about 128 KiB (the caller asks again
        for the rest). ``(b"", 0)`` when there is nothing from ``start`` on."""
        end = start + limit
        if end > self.count:
            end = self.count
        if start < 0 or end <= start:
            return b"", 0
        base = self._spilled
        if start >= base:
            return b"".join(self._recent[start - base : end - base]), end - start
        return self._read_spilled(start, min(end, self._spilled))

    def close(self) -> None:
        """Remove the file (if any) and forget the log; further use is an error."""
        if self._finalizer is not None:
            self._finalizer()
        self._fd = -2
        self._recent = []
        self.count = self._spilled

    # ------------------------------------------------------------------ file

    def _spill(self, count: int) -> None:
        """Write the oldest ``count`` packets in memory to the file and drop them from memory."""
        if self._fd < 0:
            self._open()
        packets = self._recent[:count]
        index, offset, marks = self._spilled, self._file_size, self._marks
        for packet in packets:
            if index % STRIDE == 0:
                marks.append(offset)
            offset += len(packet)
            index += 1
        data = memoryview(b"".join(packets))
        written = 0
        while written < len(data):  # a regular file takes it whole unless the disk is full
            written += os.write(self._fd, data[written:])
        self._file_size = offset
        self._spilled = index
        del self._recent[:count]

    def _open(self) -> None:
        fd, path = tempfile.mkstemp(prefix="soupbintcp-", suffix=".log", dir=self.directory)
        os.unlink(path)  # unnamed: gone with the last descriptor, even after a crash
        self._fd = fd
        self._finalizer = weakref.finalize(self, os.close, fd)

    def _read_spilled(self, start: int, end: int) -> tuple[bytes, int]:
        """Packets ``start .. end - 1`` (all spilled), or as many of them as one read holds."""
        index = start - start % STRIDE
        position = self._marks[index // STRIDE]
        while True:
            data = os.pread(self._fd, _READ_SIZE, position)
            offset = first = 0
            while index < end and offset + 2 <= len(data):
                size = 2 + int.from_bytes(data[offset : offset + 2], "big")
                if offset + size > len(data):
                    break
                if index == start:
                    first = offset
                offset += size
                index += 1
            if index > start:
                return data[first:offset], index - start
            if offset == 0:  # the file ends before a packet it must hold: damaged under us
                raise OSError(f"session log file truncated at byte {position} (message {index})")
            position += offset  # still before ``start``: walk on from here
