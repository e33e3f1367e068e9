"""Durable FIX session state: next sender/target MsgSeqNum and the sent messages for resends.

Design notes
------------
* ``MemorySeqStore`` is the reference; ``FileSeqStore`` persists the same state in a directory:
  ``seqnums`` (``"<next_sender> <next_target>\\n"``, fixed-width numbers rewritten in place by
  one ``pwrite`` of 42 bytes: a single write within one sector, so it is never torn, and it costs
  one syscall instead of the temp file + rename + directory update it replaced, which dominated
  a venue's profile), and ``messages.log``, an append-only log of sent application messages,
  each record ``"<seq> <length>\\n" + raw bytes + "\\n"``. In memory it keeps where each
  message is in that file (20 bytes each), not the message: a venue's session sends a report
  per order all day, and a resend, which reads them back, is rare.
* Crash safety: a message is appended to the log *before* the sender number is advanced, and on
  load ``next_sender`` is at least the highest logged seq + 1, so a restart never reuses a
  number the peer may have seen. So advancing the sender number just past the message just
  logged writes nothing more (one syscall per sent message, not two). A torn last record is
  truncated on load; damage anywhere else raises ``FixError`` (never silently drops history).
* ``reset`` (ResetSeqNumFlag=Y, or a new FIX day) sets both numbers to 1 and empties the log.
* ``batch()``: inside it, the ``seqnums`` rewrite and the log flush wait for its end (log
  first, so the crash rule above holds), one each instead of one per message: a read of many
  messages, or a run of replies written to the socket together. Its owner lets nothing out
  of the process inside the block (the session only returns its ``Send``s; the gateway
  writes a flush's replies after it), so what a peer or the journal can have seen is on disk
  exactly as without the batch.
* ``hold_target()``: inside it, the *inbound* number on disk stays at its value at the block's
  start (the sender number is written as usual); it reaches the disk at the end. A venue
  holds it over a read until the journal has committed the read's orders: a crash in between
  then makes the client resend them (the duplicates are refused by ClOrdID), instead of the
  venue expecting numbers past orders it never committed (silently lost).
"""

from __future__ import annotations

import os
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from agora.protocols.fix44.codec import FixError

SCAN_CHUNK = 1 << 20  # bytes of messages.log a restart reads at a time to index it


class MemorySeqStore:
    """Session state in memory (tests, or sessions that reset on every logon)."""

    def __init__(self) -> None:
        self.next_sender = 1
        self.next_target = 1
        self._messages: dict[int, bytes] = {}

    def set_next_sender(self, n: int) -> None:
        self.next_sender = n

    def set_next_target(self, n: int) -> None:
        self.next_target = n

    def store_message(self, seq: int, raw: bytes) -> None:
        self._messages[seq] = raw

    def get_messages(self, begin: int, end: int) -> dict[int, bytes]:
        """Stored messages with ``begin <= seq <= end``."""
        return {s: m for s, m in self._messages.items() if begin <= s <= end}

    def reset(self) -> None:
        self.next_sender = self.next_target = 1
        self._messages.clear()

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Writes made inside reach the disk at its end (see the module notes); in memory
        there is nothing to defer."""
        yield

    @contextmanager
    def hold_target(self) -> Iterator[None]:
        """The inbound number reaches the disk at the end (module notes); in memory: nothing."""
        yield

    def close(self) -> None:
        pass


class CounterFile:
    """A few non-negative integers in a small file, rewritten in place (see the module notes)."""

    WIDTH = 20

    def __init__(self, path: str | os.PathLike[str], *, fsync: bool) -> None:
        self.path = Path(path)
        self.fsync = fsync
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)

    def read(self) -> list[int] | None:
        """The stored integers, or None for a new (empty) file; FixError if unreadable."""
        text = os.pread(self._fd, 4096, 0).decode("ascii", "replace")
        if not text:
            return None
        parts = text.split()
        if not parts or not all(p.isdigit() for p in parts):
            raise FixError(f"{self.path}: corrupt counter file {text!r}")
        return [int(p) for p in parts]

    def write(self, *values: int) -> None:
        line = b" ".join(b"%020d" % v for v in values) + b"\n"  # WIDTH digits each
        os.pwrite(self._fd, line, 0)
        if self.fsync:
            os.fsync(self._fd)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class FileSeqStore(MemorySeqStore):
    """``MemorySeqStore`` mirrored to ``directory`` so sequence numbers survive restarts."""

    def __init__(self, directory: str | os.PathLike[str], *, fsync: bool = True) -> None:
        super().__init__()
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.fsync = fsync
        self._seq_path = self.dir / "seqnums"
        self._log_path = self.dir / "messages.log"
        self._seqnums = CounterFile(self._seq_path, fsync=fsync)
        self._logged_next = 0  # 1 + the last stored message's seq (0: none this run)
        self._batching = False
        self._seqnums_due = self._log_due = False  # what the batch's end must write
        self._held_target: int | None = None  # the inbound number on disk (hold_target)
        # where each stored message is in the log, in MsgSeqNum order (the session only stores
        # increasing numbers; a reset empties the log)
        self._seqs = array("Q")
        self._starts = array("Q")
        self._lengths = array("L")
        self._log_size = 0  # bytes in the log, written or still in the buffer
        self._load()
        self._log = open(self._log_path, "a+b")  # noqa: SIM115 - held open: appends, preads

    def _load(self) -> None:
        parts = self._seqnums.read()
        if parts is not None:
            if len(parts) != 2 or min(parts) < 1:
                raise FixError(f"{self._seq_path}: corrupt sequence file {parts!r}")
            self.next_sender, self.next_target = parts
        if not self._log_path.exists():
            return
        with open(self._log_path, "rb") as f:
            good = self._scan(f)
        if good < self._log_path.stat().st_size:
            with open(self._log_path, "r+b") as f:
                f.truncate(good)
        self._log_size = good

    def _scan(self, f: BinaryIO) -> int:
        """Index the log's records, reading it a chunk at a time (a long session's log is not
        held in memory); the offset after the last whole record. A torn last record ends the
        scan; anything else malformed is a FixError."""
        base, data, pos = 0, b"", 0  # the file offset of data[0]; the parse position in data
        while True:
            chunk = f.read(SCAN_CHUNK)
            if pos:
                base, data, pos = base + pos, data[pos:], 0
            data = data + chunk if data else chunk
            while pos < len(data):
                nl = data.find(b"\n", pos)
                head = data[pos:nl].split() if nl >= 0 else []
                ok = len(head) == 2 and all(h.isdigit() for h in head)
                end = nl + 1 + int(head[1]) if ok else -1
                if not ok or end + 1 > len(data) or data[end : end + 1] != b"\n":
                    if nl < 0 or (ok and end + 1 > len(data)):
                        break  # the rest is in the next chunk, or a torn tail at the end
                    raise FixError(f"{self._log_path}: corrupt record at byte {base + pos}")
                seq = int(head[0])
                if self._seqs and seq <= self._seqs[-1]:
                    raise FixError(f"{self._log_path}: record at byte {base + pos} has "
                                   f"MsgSeqNum {seq}, not above the one before it "
                                   f"({self._seqs[-1]})")
                self._index(seq, base + nl + 1, end - nl - 1)
                self.next_sender = max(self.next_sender, seq + 1)
                pos = end + 1
            if not chunk:
                return base + pos

    def _index(self, seq: int, start: int, length: int) -> None:
        self._seqs.append(seq)
        self._starts.append(start)
        self._lengths.append(length)

    def _write_seqnums(self) -> None:
        if self._batching:
            self._seqnums_due = True
        else:
            held = self._held_target
            self._seqnums.write(self.next_sender, self.next_target if held is None else held)

    # The two below run for every message: the base class's assignment is inlined.

    def set_next_sender(self, n: int) -> None:
        self.next_sender = n
        if n != self._logged_next:  # else the message log already says so (``_load``)
            self._write_seqnums()

    def set_next_target(self, n: int) -> None:
        self.next_target = n
        self._write_seqnums()

    def store_message(self, seq: int, raw: bytes) -> None:
        if self._seqs and seq <= self._seqs[-1]:
            raise ValueError(f"MsgSeqNum {seq} stored after {self._seqs[-1]}")
        head = b"%d %d\n" % (seq, len(raw))
        self._log.write(head + raw + b"\n")
        self._index(seq, self._log_size + len(head), len(raw))
        self._log_size += len(head) + len(raw) + 1
        self._logged_next = seq + 1
        if self._batching:
            self._log_due = True
        else:
            self._flush_log()

    @property
    def first_stored(self) -> int:
        """The MsgSeqNum of the first stored message (``next_sender`` when there is none)."""
        return self._seqs[0] if self._seqs else self.next_sender

    def get_messages(self, begin: int, end: int) -> dict[int, bytes]:
        """Stored messages with ``begin <= seq <= end``, read back from the log."""
        seqs = self._seqs
        first, last = bisect_left(seqs, begin), bisect_right(seqs, end)
        if first >= last:
            return {}
        self._log.flush()  # early, never late: the crash rule above still holds
        base = self._starts[first]
        size = self._starts[last - 1] + self._lengths[last - 1] - base
        data = os.pread(self._log.fileno(), size, base)
        if len(data) < size:
            raise FixError(f"{self._log_path}: shorter than this session wrote ({base + size} "
                           f"bytes expected, {base + len(data)} there)")
        starts, lengths = self._starts, self._lengths
        return {seqs[i]: data[starts[i] - base : starts[i] - base + lengths[i]]
                for i in range(first, last)}

    def _flush_log(self) -> None:
        self._log.flush()
        if self.fsync:
            os.fsync(self._log.fileno())

    @contextmanager
    def batch(self) -> Iterator[None]:
        """One log flush, then one ``seqnums`` write, at the end (see the module notes)."""
        if self._batching:  # nested: the outer block writes
            yield
            return
        self._batching = True
        try:
            yield
        finally:
            self._batching = False
            if self._log_due:
                self._log_due = False
                self._flush_log()
            if self._seqnums_due:
                self._seqnums_due = False
                self._write_seqnums()

    @contextmanager
    def hold_target(self) -> Iterator[None]:
        """The inbound number on disk stays as it is until the end (see the module notes)."""
        if self._held_target is not None:  # nested: the outer block writes
            yield
            return
        self._held_target = start = self.next_target
        try:
            yield
        finally:
            self._held_target = None
            if self.next_target != start:
                self._write_seqnums()

    def reset(self) -> None:
        super().reset()
        self._logged_next = 0
        self._log.truncate(0)
        self._log.seek(0)
        for column in (self._seqs, self._starts, self._lengths):
            del column[:]
        self._log_size = 0
        if self._held_target is not None:
            self._held_target = 1  # a reset is the session's, not a read's orders
        self._seqnums.write(1, 1)  # at once, even in a batch: the log is already empty

    def close(self) -> None:
        self._log.close()
        self._seqnums.close()
