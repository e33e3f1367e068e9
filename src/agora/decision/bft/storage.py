"""Durable state of a Byzantine-mode replica, so a crash and restart does not make it a liar.

A PBFT replica that forgets what it voted may vote again differently (two prepares for one view
and sequence number) or send a view change whose P and Q sets omit a batch it prepared; either
is a Byzantine act, and f + 1 of them break safety. So each replica appends what it promised to
a log, and the transport writes the log out before it sends the step's messages
(``BftNode``): a vote is never on the wire before the record that remembers it.

Records, in the order the replica takes the steps:

* :class:`ViewRecord` ``(view)``: it began a view change to ``view`` (never act below it again);
* :class:`NewViewRecord` ``(new_view)``: it installed that view (the signed NewView, which it
  re-sends to replicas that missed it);
* :class:`SlotRecord` ``(view, seq, digest, batch)``: it pre-prepared (as primary) or accepted
  (and prepared, as backup) this batch at ``seq`` in ``view``: its Q set, and in that view the
  only digest it will ever vote for at ``seq``;
* :class:`PreparedRecord` ``(view, seq, digest, batch)``: it prepared the batch (its P set) and
  sent its Commit;
* :class:`ExecRecord` ``(seq, batch, elapsed)``: it executed the batch (the replicated log
  itself) and measured its deadline requests so (a restart re-sends the same timing);
* :class:`StableRecord` ``(seq, chain, proof)``: a checkpoint became stable (its proof of 2f + 1
  signed checkpoints is what its view changes carry);
* :class:`SnapshotRecord`: the state a replay of every record before it gives (``snapshot.py``),
  where a restart may start instead.

Fsync policies (:class:`~agora.decision.consensus.storage.FsyncPolicy`): ``none`` writes the
records to the operating system before the sends (a process crash loses nothing; a power cut
may lose the tail, and with it this replica's honesty: it then counts as one of the f);
``always`` also fsyncs once per step before the sends (survives a power cut). ``batch`` is
refused: a vote that outlives its record is exactly what this module exists to prevent.

Files: frames with a CRC (``consensus.storage.frame``); on load a torn tail is cut and damage
before the end refused (:class:`StorageDamaged`). Every storage reads the batches of its
execution records back (``read_batches``: the file storage keeps where each starts, 8 bytes a
batch), so a replica keeps only its latest executed batches in memory (``executed.py``).
A load decodes the file a chunk at a time. The file storage marks its latest snapshots in
``bft.snapshots`` (where each starts, replaced whole once it is in the file, and durably under
``always``) and writes the places of the batches before each to ``bft.index`` first, so a load
starts at the latest marked snapshot the application has delivered (a mark that leads nowhere,
or to a snapshot whose index is short, is logged and the load replays from further back) and
memory holds the places of the batches after it only; the stable checkpoints the replica keeps
for Fills go to ``bft.stables`` as they are kept, so a snapshot need not carry them (a replay
puts back those a power cut took from its end). ``bft.boot`` holds the number of the latest
incarnation (``next_boot``), replaced durably at each start. Limitation: no compaction (the
file grows with every batch).
"""

from __future__ import annotations

import logging
import os
import time
from array import array
from bisect import bisect_left
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Protocol

import msgspec

from agora.core.files import remove_leftovers, replace_durably
from agora.decision.bft.core import Stable
from agora.decision.bft.messages import ClientRequest, PEntry, Sealed
from agora.decision.consensus.frames import (
    FRAME,
    FrameScan,
    frame,
    places_of,
    read_frame,
    read_frame_file,
    read_places,
    torn_tail,
)
from agora.decision.consensus.storage import FsyncPolicy


class ViewRecord(msgspec.Struct, frozen=True, tag=True, array_like=True, gc=False):
    view: int


class NewViewRecord(msgspec.Struct, frozen=True, tag=True, array_like=True, gc=False):
    view: int
    new_view: Sealed


class SlotRecord(msgspec.Struct, frozen=True, tag=True, array_like=True, gc=False):
    view: int
    seq: int
    digest: bytes
    batch: tuple[ClientRequest, ...]


class PreparedRecord(msgspec.Struct, frozen=True, tag=True, array_like=True, gc=False):
    view: int
    seq: int
    digest: bytes
    batch: tuple[ClientRequest, ...]


class ExecRecord(msgspec.Struct, frozen=True, tag=True, array_like=True, gc=False):
    seq: int
    batch: tuple[ClientRequest, ...]
    elapsed: tuple[int, ...] = ()  # its deadline measurement (``deadline.py``), resent as is


class StableRecord(msgspec.Struct, frozen=True, tag=True, array_like=True, gc=False):
    seq: int
    chain: bytes
    proof: tuple[Sealed, ...]


class SnapshotRecord(msgspec.Struct, frozen=True, tag=True, array_like=True):
    """What a replay of every record before it gives (``snapshot.py``): a restart whose
    application has delivered ``delivered`` requests can start here instead."""

    view: int
    normal: bool  # the phase: a view change under way, or the view installed
    new_view: Sealed | None
    next_seq: int
    slots: tuple[tuple[int, bytes, tuple[ClientRequest, ...]], ...]  # this view's, by seq
    pset: tuple[PEntry, ...]
    qset: tuple[tuple[int, bytes, int], ...]  # (seq, digest, highest view)
    commit_sent: tuple[int, ...]
    executed: int
    chain: bytes
    request_index: int
    delivered: int
    clients: tuple[tuple[int, int, int, bool], ...]  # client, number, index, abandoned
    held: tuple[tuple[int, ClientRequest, bool | None], ...]  # index, request, verdict
    undecided: tuple[tuple[int, tuple[int, ...], tuple[int, ...]], ...]  # seq, elapsed, held
    stable: Stable
    counters: tuple[int, int, int]  # stats: committed, deadline_total, deadline_abandoned


BftRecord = (ViewRecord | NewViewRecord | SlotRecord | PreparedRecord | ExecRecord
             | StableRecord | SnapshotRecord)
_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(BftRecord)
_marks_decoder = msgspec.msgpack.Decoder(list[tuple[int, int, int]])
_stable_decoder = msgspec.msgpack.Decoder(Stable)
SCAN_CHUNK = 1 << 20  # bytes of the file a load decodes at a time
log = logging.getLogger(__name__)


class BftStorage(Protocol):
    def append(self, record: BftRecord) -> None:
        """Remember ``record`` (in order); it must reach the disk before :meth:`flush` returns."""

    def flush(self) -> None:
        """Make every appended record as durable as the policy promises (before any send)."""

    def load(self, snapshot_max: int = -1) -> Iterable[BftRecord]:
        """Every record a previous incarnation appended (none for a new replica), in order;
        or, if it holds a snapshot whose ``delivered`` is at most ``snapshot_max``, the latest
        such one it offers, then the records after it. Other snapshots are left out."""

    def read_batches(self, first: int, count: int) -> list[tuple[ClientRequest, ...]]:
        """The batches of the execution records of sequence numbers ``first..first + count -
        1``, as appended so far (a replica reads back batches it no longer keeps in memory)."""

    def keep_stable(self, stable: Stable) -> None:
        """Remember a stable checkpoint the replica keeps for Fills (written with the records
        at :meth:`flush`), so that neither memory nor a snapshot need hold them all. One at or
        below the latest held is not stored again: a replay offers each one again, which puts
        back those a power cut lost, and the file stays in sequence order."""

    def kept_stables(self, upto: int) -> list[Stable]:
        """The kept stable checkpoints of sequence numbers up to ``upto``, in order (a power
        cut may have lost some: Fills to far peers then take larger steps)."""

    def kept_stable(self, seq: int) -> Stable | None:
        """The kept stable checkpoint at ``seq``, read back (None: not stored)."""

    def next_boot(self) -> int:
        """A number for the replica's new incarnation, above every earlier one's, durable
        before it returns whatever the policy (its Status messages are ordered by it)."""


def executed_batches(records: list[BftRecord], first: int, count: int
                     ) -> list[tuple[ClientRequest, ...]]:
    """``read_batches`` over a list of records (the in-memory storage's)."""
    found = [r.batch for r in records
             if type(r) is ExecRecord and first <= r.seq < first + count]
    if len(found) != count:
        raise LookupError(f"batches {first}..{first + count - 1} asked for, "
                          f"{len(found)} of them stored")
    return found


SNAPSHOTS_OFFERED = 2  # the latest snapshots a load may start from (the last may be too new)


def without_snapshots(records: Iterable[BftRecord]) -> list[BftRecord]:
    return [r for r in records if type(r) is not SnapshotRecord]


class StorageDamaged(RuntimeError):
    """A record file is damaged before its end (not a torn last append)."""


class MemoryBftStorage:
    """For the simulator and tests: records survive a crash of the replica (the process), as
    they do under either policy once :meth:`flush` ran; :meth:`crash` drops what was appended
    but not flushed (a step cut short before its sends)."""

    def __init__(self) -> None:
        self.records: list[BftRecord] = []
        self.flushed = 0
        self.kept: list[Stable] = []
        self.kept_flushed = 0
        self.boots = 0

    def next_boot(self) -> int:
        self.boots += 1
        return self.boots

    def append(self, record: BftRecord) -> None:
        self.records.append(record)

    def flush(self) -> None:
        self.flushed = len(self.records)
        self.kept_flushed = len(self.kept)

    def load(self, snapshot_max: int = -1) -> list[BftRecord]:
        records = self.records
        places = [k for k, r in enumerate(records) if type(r) is SnapshotRecord]
        for k in reversed(places[-SNAPSHOTS_OFFERED:]):
            if records[k].delivered <= snapshot_max:  # type: ignore[union-attr]
                return [records[k], *without_snapshots(records[k + 1:])]
        return without_snapshots(records)

    def read_batches(self, first: int, count: int) -> list[tuple[ClientRequest, ...]]:
        return executed_batches(self.records, first, count)

    def keep_stable(self, stable: Stable) -> None:
        if not self.kept or stable.seq > self.kept[-1].seq:
            self.kept.append(stable)

    def kept_stables(self, upto: int) -> list[Stable]:
        return [s for s in self.kept if s.seq <= upto]

    def kept_stable(self, seq: int) -> Stable | None:
        return next((s for s in self.kept if s.seq == seq), None)

    def crash(self) -> None:
        del self.records[self.flushed:]
        del self.kept[self.kept_flushed:]


class FileBftStorage:
    """``directory/bft.log``: append-only frames; see the module notes for the policies."""

    def __init__(self, directory: Path, policy: FsyncPolicy = FsyncPolicy.NONE) -> None:
        self.policy = FsyncPolicy(policy)
        if self.policy is FsyncPolicy.BATCH:
            raise ValueError("fsync policy 'batch' is unsafe for a Byzantine-mode replica (a "
                             "vote could outlive its record): use 'none' or 'always'")
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.path = self.directory / "bft.log"
        self._file = open(self.path, "a+b")  # noqa: SIM115 - lives with the object
        self._dirty = False
        self._size = os.fstat(self._file.fileno()).st_size
        # batch k: where the frame of its execution record starts, for k > _where_base; those
        # up to it are in the index file (8 bytes each), written up to each snapshot
        self._where = array("Q")
        self._where_base = 0
        self.index_path = self.directory / "bft.index"
        self._index = os.open(self.index_path, os.O_RDWR | os.O_CREAT, 0o644)
        self.marks_path = self.directory / "bft.snapshots"
        remove_leftovers(self.marks_path)  # a replacement a crash cut short
        self.stables_path = self.directory / "bft.stables"  # the kept stable checkpoints
        self.boot_path = self.directory / "bft.boot"  # the latest incarnation's number
        remove_leftovers(self.boot_path)
        self._kept = open(self.stables_path, "a+b")  # noqa: SIM115 - lives with the object
        self._kept_seqs = array("Q")  # their sequence numbers, in order
        self._kept_where = array("Q")  # where each one's frame starts in that file
        self._kept_size = os.fstat(self._kept.fileno()).st_size
        self._kept_read = False  # the file was read since the last load began
        self._marks: list[tuple[int, int, int]] = []  # the latest (offset, delivered, executed)
        self._unmarked: tuple[int, int, int] | None = None  # a snapshot appended, not marked
        self.mark_failures = 0  # snapshots whose index or mark could not be written

    def append(self, record: BftRecord) -> None:
        data = frame(_encoder.encode(record))
        kind = type(record)
        if kind is ExecRecord:
            self._locate(record.seq, self._size)  # type: ignore[union-attr]
        elif kind is SnapshotRecord:
            self._unmarked = (self._size, record.delivered, record.executed)  # type: ignore[union-attr]
        self._file.write(data)
        self._size += len(data)
        self._dirty = True

    def _locate(self, seq: int, offset: int) -> None:
        known = self._where_base + len(self._where)
        if seq != known + 1:
            raise StorageDamaged(f"{self.path}: execution record {seq} after {known}")
        self._where.append(offset)

    def _places(self, first: int, count: int) -> array:
        """Where the execution records of batches ``first..first + count - 1`` start: from the
        index for those up to ``_where_base``, from memory for the rest (LookupError: not
        stored)."""
        return places_of(first, count, self._where_base, self._where, self._read_index,
                         "batches", self.path)

    def _read_index(self, first: int, count: int) -> array:
        places = read_places(self._index, first, count)
        if places is None:
            raise LookupError(f"{self.index_path}: no places for batches "
                              f"{first}..{first + count - 1}")
        return places

    def read_batches(self, first: int, count: int) -> list[tuple[ClientRequest, ...]]:
        self._file.flush()  # appended records are in the file before it is read
        out = []
        fd = self._file.fileno()
        for seq, place in enumerate(self._places(first, count), first):
            payload = read_frame(fd, place)
            record = None if payload is None else _decoder.decode(payload)
            if type(record) is not ExecRecord or record.seq != seq:
                raise LookupError(f"{self.path}: no execution record {seq} at byte {place}")
            out.append(record.batch)
        return out

    def keep_stable(self, stable: Stable) -> None:
        if self._kept_seqs and stable.seq <= self._kept_seqs[-1]:
            return  # held already (a replay offers it again), or the file holds later ones
        data = frame(_encoder.encode(stable))
        self._kept.write(data)
        self._kept_seqs.append(stable.seq)
        self._kept_where.append(self._kept_size)
        self._kept_size += len(data)
        self._dirty = True

    def kept_stable(self, seq: int) -> Stable | None:
        k = bisect_left(self._kept_seqs, seq)
        if k == len(self._kept_seqs) or self._kept_seqs[k] != seq:
            return None
        self._kept.flush()
        payload = read_frame(self._kept.fileno(), self._kept_where[k])
        stable = None if payload is None else _stable_decoder.decode(payload)
        return stable if stable is not None and stable.seq == seq else None

    def kept_stables(self, upto: int) -> list[Stable]:
        return [stable for stable in self._read_kept() if stable.seq <= upto]

    def _read_kept(self) -> list[Stable]:
        """Every kept stable checkpoint in the file; a torn tail (a crash mid-append) is cut,
        so that later ones follow the last whole one."""
        self._kept.flush()
        scan = FrameScan(self.stables_path, _stable_decoder, chunk=SCAN_CHUNK)
        kept: list[Stable] = []
        del self._kept_seqs[:], self._kept_where[:]
        for offset, stable in scan:
            kept.append(stable)  # type: ignore[arg-type]
            self._kept_seqs.append(stable.seq)  # type: ignore[attr-defined]
            self._kept_where.append(offset)
        if scan.end < os.fstat(self._kept.fileno()).st_size:
            self._kept.truncate(scan.end)
        self._kept_size = scan.end
        self._kept_read = True
        return kept

    def next_boot(self) -> int:
        """The wall clock's nanoseconds, or the last boot + 1 if the clock has not passed it:
        later than every earlier boot even if the clock stepped back or (with the clock
        right) this file was lost."""
        try:
            data = self.boot_path.read_bytes()
        except FileNotFoundError:
            data = bytes(8)  # a new replica
        if len(data) != 8:
            raise StorageDamaged(f"{self.boot_path}: {len(data)} bytes, not an 8-byte number")
        boot = max(int.from_bytes(data, "big") + 1, time.time_ns())
        replace_durably(self.boot_path, boot.to_bytes(8, "big"))
        return boot

    def flush(self) -> None:
        if not self._dirty:
            return
        self._kept.flush()  # not fsynced: losing some costs Fill step sizes, not safety
        self._file.flush()
        if self.policy is FsyncPolicy.ALWAYS:
            os.fsync(self._file.fileno())
        self._dirty = False
        if self._unmarked is not None:
            self._mark(*self._unmarked)
            self._unmarked = None

    def _mark(self, offset: int, delivered: int, executed: int) -> None:
        """A snapshot is in the file: the places of the batches up to it go to the index (and
        out of memory), then the marks file names it among the latest (a restart's start).
        Either write failing (a full disk) is logged and counted, not raised: the records are
        written, and a restart only replays from further back."""
        where, base = self._where, self._where_base
        try:
            os.pwrite(self._index, where[: executed - base].tobytes(), base * 8)
            if self.policy is FsyncPolicy.ALWAYS:
                os.fsync(self._index)
        except OSError as exc:
            self._mark_failed(offset, exc)
            return  # the places stay in memory; the next snapshot writes them again
        del where[: executed - base]
        self._where_base = executed
        self._marks = [*self._marks, (offset, delivered, executed)][-SNAPSHOTS_OFFERED:]
        try:
            replace_durably(self.marks_path, frame(_encoder.encode(self._marks)),
                            sync=self.policy is FsyncPolicy.ALWAYS)
        except OSError as exc:
            self._mark_failed(offset, exc)

    def _mark_failed(self, offset: int, exc: OSError) -> None:
        self.mark_failures += 1
        log.warning("%s: the snapshot at byte %d was not marked (%s): a restart replays from "
                    "an older one", self.path, offset, exc)

    def _snapshot_start(self, snapshot_max: int) -> tuple[int, SnapshotRecord | None]:
        """The latest marked snapshot a load may start from: (where the records after it
        start, it), else (0, None). A mark that does not lead to an intact snapshot with its
        index is skipped and logged (the load then replays more, never less)."""
        marks = read_frame_file(self.marks_path, _marks_decoder)
        self._marks = [] if marks is None else marks[-SNAPSHOTS_OFFERED:]  # type: ignore[index]
        indexed = os.fstat(self._index).st_size // 8
        for offset, delivered, executed in reversed(self._marks):
            if delivered > snapshot_max:
                continue
            payload = read_frame(self._file.fileno(), offset)
            try:
                record = None if payload is None else _decoder.decode(payload)
            except msgspec.MsgspecError:
                record = None
            if (type(record) is SnapshotRecord and record.executed == executed
                    and indexed >= executed and payload is not None):
                return offset + FRAME.size + len(payload), record
            log.warning("%s: the snapshot marked at byte %d is not there (or its index is "
                        "short): the restart replays from further back", self.path, offset)
        return 0, None

    def load(self, snapshot_max: int = -1) -> Iterator[BftRecord]:
        """The records, decoded a chunk of the file at a time as the caller takes them (a
        restart holds one chunk, not the whole file); from the latest marked snapshot whose
        ``delivered`` is at most ``snapshot_max`` if there is one. At the end a torn tail (a
        crash mid-append: a frame cut short, or zeros the file system left) is cut; damage
        before the end raises :class:`StorageDamaged` once the records before it were taken,
        so the caller must not act on them until the iteration ends (a restart replays them
        without a send): dropping the records after it would make the replica forget votes it
        sent."""
        self.flush()
        self._kept_read = False
        start, snapshot = self._snapshot_start(snapshot_max)
        del self._where[:]
        # from a snapshot, the index holds the places up to it; else this load finds them all
        self._where_base = 0 if snapshot is None else snapshot.executed
        if snapshot is not None:
            yield snapshot
        else:  # before the replay offers them again (keep_stable stores only those missing)
            self._read_kept()
        scan = FrameScan(self.path, _decoder, chunk=SCAN_CHUNK, start=start)
        for offset, record in scan:
            if type(record) is ExecRecord:
                self._locate(record.seq, offset)
            elif type(record) is SnapshotRecord:
                continue
            yield record  # type: ignore[misc]
        good = scan.end
        with open(self.path, "rb") as f:
            f.seek(good)
            rest = f.read()
        if rest:
            if not torn_tail(rest, 0):
                raise StorageDamaged(
                    f"{self.path}: damaged record at byte {good} of {good + len(rest)}; the "
                    "replica cannot trust its own votes: rejoin with an empty directory")
            self._file.truncate(good)  # later appends follow the last good frame
        self._size = good
        self._marks = [m for m in self._marks if m[0] < good]
        if not self._kept_read:  # (a restart from a snapshot read them)
            self._read_kept()

    def close(self) -> None:
        self.flush()
        self._file.close()
        self._kept.close()
        os.close(self._index)
