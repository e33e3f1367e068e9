"""Durable replica state: the log, the commit number, and the view vote.

Two streams with different guarantees:

* The **view record** ``(view, log_view)`` is a vote: once a replica has said "I am in view v" it
  must never act in a lower view, even after a crash. It is always synced before the write
  returns, whatever the fsync policy (view changes are rare, so this costs one fsync each).
* The **log stream** is an ordered sequence of records: "entries from index i on" (which truncates
  anything after ``i - 1``) and "commit number c". Its fsync policy is configurable
  (:class:`FsyncPolicy`): ``always`` syncs each record before returning, ``batch`` every
  ``batch_records`` records, ``none`` leaves it in the process's write buffer (written out when
  the buffer fills, at a sync and at close: no system call per record on the commit path). A
  crash may lose an unsynced *suffix* of the stream, never a record in the middle (the file is
  append-only and framed with a CRC, so a torn tail is detected and cut); with ``none`` even a
  crash of the process alone may, which costs nothing more: a non-durable replica runs VR's
  recovery protocol on every restart and trusts only its stored commit prefix.

Invariants the replica relies on: a commit record is written after the entries it covers, so a
surviving commit number implies surviving entries up to it; the replica never truncates at or
below its commit number. ``durable`` is True only for ``always``: then every acknowledgement the
replica sent is on disk and a restart may trust the stored log; otherwise the replica runs the
recovery protocol (see ``replica.py``).

Every storage also reads entries back (``read_entries``): a replica keeps only the latest entries
in memory (``entry_log.py``) and asks its storage for older committed ones when a lagging replica
needs them. ``FileStorage`` keeps, per entry, where the frame of the record that last wrote it
starts (8 bytes), and reads that frame back. A restart is bounded the same way: ``load(keep)``
returns only the last ``keep`` committed entries and what follows them (``Stored.base`` says
where they start); ``FileStorage`` scans its file a chunk at a time to get there, and the replica
reads the entries before the base back a chunk at a time to apply them.

Limitations: no checksums per entry beyond the frame CRC (crash faults only, no disk corruption
model), no compaction: the log file grows with every record, and a restart still reads it all
(in bounded memory), until a snapshot/checkpoint scheme exists. All writes issued during one
replica step are treated as atomic with respect to a crash in the simulator; a real deployment
gets that from the frame CRC (a half-written last frame is discarded).
"""

from __future__ import annotations

import enum
import os
import struct
import zlib
from array import array
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Protocol

import msgspec

from agora.decision.consensus.messages import Entry
from agora.decision.consensus.vote import VoteFile


def frame(payload: bytes) -> bytes:
    """One append-only log frame: length, CRC-32 of the payload, the payload."""
    return _FRAME.pack(len(payload), zlib.crc32(payload)) + payload


def read_frames(data: bytes, decoder: msgspec.msgpack.Decoder,
                offsets: list[int] | None = None) -> tuple[list, int]:
    """The records of the whole, intact frames at the start of ``data`` and the offset after
    the last one: a torn or corrupt tail (a crash mid-write) ends the scan. ``offsets``, if
    given, gets where each record's frame starts."""
    records = []
    offset = 0
    while offset + _FRAME.size <= len(data):
        length, crc = _FRAME.unpack_from(data, offset)
        payload = data[offset + _FRAME.size : offset + _FRAME.size + length]
        if len(payload) < length or zlib.crc32(payload) != crc:
            break
        try:
            records.append(decoder.decode(payload))
        except (msgspec.DecodeError, msgspec.ValidationError):
            break
        if offsets is not None:
            offsets.append(offset)
        offset += _FRAME.size + length
    return records, offset


def _whole_frame(data: bytes) -> bool:
    """Whether ``data`` starts with a whole frame (one :func:`read_frames` refused, so it
    does not check), rather than the start of one a later read completes."""
    if len(data) < _FRAME.size:
        return False
    length, _ = _FRAME.unpack_from(data)
    return _FRAME.size + length <= len(data)


def torn_tail(data: bytes, offset: int) -> bool:
    """Whether the bytes of ``data`` from ``offset`` (where :func:`read_frames` stopped) are
    what a crash mid-append leaves: a frame whose declared length runs past the end, or only
    zeros; anything else is damage before the end."""
    rest = data[offset:]
    return not rest.strip(b"\0") or not _whole_frame(rest)


class FsyncPolicy(enum.StrEnum):
    NONE = "none"
    BATCH = "batch"
    ALWAYS = "always"


class Stored(msgspec.Struct, frozen=True):
    """What a restarting replica finds on disk: the log's entries from ``base + 1`` on (``load``
    with a ``keep`` leaves the committed ones before them in storage, for ``read_entries``)."""

    view: int
    log_view: int
    commit: int
    entries: list[Entry]
    base: int = 0


class EntriesWrite(msgspec.Struct, frozen=True, tag=True, array_like=True, gc=False):
    """Log record: keep entries ``1..start-1``, then these."""

    start: int
    entries: tuple[Entry, ...]


class CommitWrite(msgspec.Struct, frozen=True, tag=True, array_like=True, gc=False):
    commit: int


LogRecord = EntriesWrite | CommitWrite


class Storage(Protocol):
    """What a :class:`~agora.decision.consensus.replica.Replica` needs from its disk."""

    @property
    def durable(self) -> bool:
        """True when every write is synced before it returns (the ``always`` policy)."""
        ...

    def load(self, keep: int | None = None) -> Stored | None:
        """The surviving state, or None if this replica never started. With ``keep``, every
        committed entry but the last ``keep`` stays in storage (``Stored.base``): a restart
        then holds a bounded part of its log, not all of it."""
        ...

    def write_entries(self, start: int, entries: Sequence[Entry]) -> None: ...

    def write_commit(self, commit: int) -> None: ...

    def read_entries(self, first: int, count: int) -> list[Entry]:
        """Entries ``first..first + count - 1`` of the log as written so far (a running
        replica reads back committed entries it no longer keeps in memory; see entry_log)."""
        ...

    def write_view(self, view: int, log_view: int) -> None:
        """Always synced before returning."""
        ...

    def drain(self) -> None:
        """Write out records held back for after the step (the transport calls it once the
        step's messages are sent; see :class:`FileStorage`)."""
        ...


def replay(view: int, log_view: int, records: Iterable[LogRecord],
           keep: int | None = None) -> Stored:
    """Rebuild the state a record stream describes (shared by every storage implementation);
    ``keep``: as :meth:`Storage.load`'s."""
    log: list[Entry] = []
    commit = 0
    for record in records:
        if isinstance(record, EntriesWrite):
            if record.start - 1 > len(log):
                break  # a gap: cannot happen with suffix-only loss; stop trusting the stream
            del log[record.start - 1 :]
            log.extend(record.entries)
        else:
            commit = max(commit, record.commit)
    commit = min(commit, len(log))
    base = stored_base(commit, keep)
    return Stored(view=view, log_view=log_view, commit=commit, entries=log[base:], base=base)


def stored_base(commit: int, keep: int | None) -> int:
    """How many leading committed entries ``load(keep)`` leaves in storage."""
    return 0 if keep is None else max(0, commit - keep)


class EntryCopy:
    """The log the records written so far describe, as a list: the in-memory storages' answer
    to ``read_entries`` (they are the disk; a file storage reads its file instead)."""

    def __init__(self, entries: Iterable[Entry] = ()) -> None:
        self.entries = list(entries)

    def write(self, start: int, entries: Sequence[Entry]) -> None:
        del self.entries[start - 1 :]
        self.entries.extend(entries)

    def read(self, first: int, count: int) -> list[Entry]:
        if first < 1 or first + count - 1 > len(self.entries):
            raise LookupError(f"entries {first}..{first + count - 1} asked for, the storage "
                              f"holds 1..{len(self.entries)}")
        return self.entries[first - 1 : first - 1 + count]


class MemoryStorage:
    """A storage that never loses anything: for unit tests and single-process demos."""

    def __init__(self) -> None:
        self.view: tuple[int, int] | None = None
        self.records: list[LogRecord] = []
        self.entries = EntryCopy()

    @property
    def durable(self) -> bool:
        return True

    def load(self, keep: int | None = None) -> Stored | None:
        if self.view is None:
            return None
        return replay(*self.view, self.records, keep)

    def write_entries(self, start: int, entries: Sequence[Entry]) -> None:
        self.records.append(EntriesWrite(start, tuple(entries)))
        self.entries.write(start, entries)

    def write_commit(self, commit: int) -> None:
        self.records.append(CommitWrite(commit))

    def read_entries(self, first: int, count: int) -> list[Entry]:
        return self.entries.read(first, count)

    def write_view(self, view: int, log_view: int) -> None:
        self.view = (view, log_view)

    def drain(self) -> None:
        """Nothing is held back."""


_FRAME = struct.Struct("<II")  # payload length, crc32 of payload
HELD_MAX = 1_024  # policy none: records held back before a drain is forced
SCAN_CHUNK = 1 << 20  # bytes of the log file a load decodes at a time
_record_encoder = msgspec.msgpack.Encoder()
_record_decoder = msgspec.msgpack.Decoder(LogRecord)
_view_decoder = msgspec.msgpack.Decoder(tuple[int, int])


class FileStorage:
    """Files in ``directory``: ``vote`` (the view vote, vote.py) and ``log`` (append-only frames).

    For the real-process replicas. ``load`` cuts a torn or corrupt tail off the log file so
    later appends follow the last good frame.

    Under ``none`` a record is not even encoded during the replica's step: it waits in a list
    until :meth:`drain` (which the transport calls after sending the step's messages), a sync
    or close, so the encoding is off the commit path. Nothing changes for a crash: the process
    buffer was already lost with the process.
    """

    def __init__(
        self, directory: Path, policy: FsyncPolicy = FsyncPolicy.ALWAYS, *, batch_records: int = 64
    ) -> None:
        if batch_records < 1:
            raise ValueError("batch_records must be at least 1")
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.policy = FsyncPolicy(policy)
        self.batch_records = batch_records
        self._log = open(self.directory / "log", "a+b")  # noqa: SIM115 - lives with the object
        self._unsynced = 0
        self._held: list[LogRecord] = []  # policy none: records not yet encoded (see drain)
        self._size = os.fstat(self._log.fileno()).st_size  # written or in the write buffer
        self._vote = VoteFile(self.directory / "vote")
        self._where = array("Q")  # entry k: where the frame of the record holding it starts

    @property
    def durable(self) -> bool:
        return self.policy is FsyncPolicy.ALWAYS

    def close(self) -> None:
        self._sync_log()
        self._log.close()
        self._vote.close()

    def drain(self) -> None:
        held, self._held = self._held, []
        for record in held:
            self._write(record)

    def load(self, keep: int | None = None) -> Stored | None:
        """One pass over the file a chunk at a time (``_scan``), then the entries from the
        base on read back: with a ``keep``, the memory a restart needs does not grow with the
        log (only ``_where``, 8 bytes an entry)."""
        self._sync_log()  # anything held or buffered is in the file before it is read
        vote = self._load_vote()
        if vote is None:
            return None
        view, log_view = vote
        length, commit, good = self._scan()
        if good < os.fstat(self._log.fileno()).st_size:
            self._log.truncate(good)
        self._size = good
        commit = min(commit, length)
        base = stored_base(commit, keep)
        entries = self.read_entries(base + 1, length - base) if length > base else []
        return Stored(view=view, log_view=log_view, commit=commit, entries=entries, base=base)

    def _scan(self) -> tuple[int, int, int]:
        """The log's length and commit as :func:`replay` finds them, and where the intact
        frames end; every record's entries located (``_where``) on the way. Only one chunk's
        records are decoded at a time."""
        del self._where[:]
        length = commit = 0
        trusted = True  # until a gap: replay stops trusting the stream there
        start, buf = 0, b""  # the file offset of buf[0]
        with open(self.directory / "log", "rb") as f:
            while True:
                chunk = f.read(SCAN_CHUNK)
                buf = buf + chunk if buf else chunk
                offsets: list[int] = []
                records, used = read_frames(buf, _record_decoder, offsets)
                for offset, record in zip(offsets, records, strict=True):
                    if not trusted:
                        continue
                    if type(record) is EntriesWrite:  # decoded: exact types
                        trusted = self._locate(record, start + offset)
                        if trusted:
                            length = record.start - 1 + len(record.entries)
                    else:
                        commit = max(commit, record.commit)
                rest = buf[used:]
                if not chunk or _whole_frame(rest):  # the end, or damage before it
                    return length, commit, start + used
                start, buf = start + used, rest

    def _locate(self, record: EntriesWrite, offset: int) -> bool:
        """Note that ``record``'s entries are in the frame at ``offset`` (False: a gap)."""
        where = self._where
        if record.start - 1 > len(where):
            return False
        del where[record.start - 1 :]
        where.extend(array("Q", (offset,)) * len(record.entries))
        return True

    def read_entries(self, first: int, count: int) -> list[Entry]:
        """Read back from the file: one frame per run of entries last written by one record."""
        self.drain()  # held records first: they may hold (or rewrite) the entries asked for
        self._log.flush()
        where = self._where
        if first < 1 or first + count - 1 > len(where):
            raise LookupError(f"entries {first}..{first + count - 1} asked for, the log file "
                              f"holds 1..{len(where)}")
        out: list[Entry] = []
        index, end = first, first + count
        while index < end:
            offset = where[index - 1]
            run = 1  # a later record may have rewritten the end of this one's entries
            while index + run < end and where[index + run - 1] == offset:
                run += 1
            record = self._read_record(offset)
            taken = () if not isinstance(record, EntriesWrite) else (
                record.entries[index - record.start : index - record.start + run])
            if len(taken) != run or record.start > index:
                raise LookupError(f"{self.directory / 'log'}: the frame at byte {offset} does "
                                  f"not hold entry {index}")
            out.extend(taken)
            index += run
        return out

    def _read_record(self, offset: int) -> LogRecord:
        fd = self._log.fileno()
        head = os.pread(fd, _FRAME.size, offset)
        if len(head) == _FRAME.size:
            length, crc = _FRAME.unpack(head)
            payload = os.pread(fd, length, offset + _FRAME.size)
            if len(payload) == length and zlib.crc32(payload) == crc:
                return _record_decoder.decode(payload)
        raise LookupError(f"{self.directory / 'log'}: no intact frame at byte {offset}")

    def write_entries(self, start: int, entries: Sequence[Entry]) -> None:
        self._append(EntriesWrite(start, tuple(entries)))

    def write_commit(self, commit: int) -> None:
        self._append(CommitWrite(commit))

    def write_view(self, view: int, log_view: int) -> None:
        self._vote.write(view, log_view)

    def _load_vote(self) -> tuple[int, int] | None:
        vote = self._vote.load()
        legacy = self.directory / "view"  # an earlier agora's vote file, replaced on rename
        if vote is None and legacy.exists():
            vote = _view_decoder.decode(legacy.read_bytes())
            self._vote.write(*vote)  # durable in the new file before the old one goes
            legacy.unlink()
        return vote

    def _append(self, record: LogRecord) -> None:
        if self.policy is FsyncPolicy.NONE:
            self._held.append(record)
            if len(self._held) >= HELD_MAX:
                self.drain()
            return
        self._write(record)
        self._unsynced += 1
        if self.policy is FsyncPolicy.ALWAYS or (
            self.policy is FsyncPolicy.BATCH and self._unsynced >= self.batch_records
        ):
            self._sync_log()

    def _write(self, record: LogRecord) -> None:
        data = frame(_record_encoder.encode(record))
        if type(record) is EntriesWrite:
            self._locate(record, self._size)
        self._log.write(data)
        self._size += len(data)

    def _sync_log(self) -> None:
        self.drain()
        self._log.flush()
        if self.policy is not FsyncPolicy.NONE:
            os.fsync(self._log.fileno())
        self._unsynced = 0
