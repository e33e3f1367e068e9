"""The file storage of a real replica process (``storage.py`` has the interface).

Files in its directory: ``vote`` (the view vote, ``vote.py``), ``log`` (the record stream as
append-only CRC frames), ``checkpoint`` and ``index`` (``checkpoint.py``), and ``compacted``
once it has compacted (``compaction.py``).

``FileStorage`` keeps, per entry, where the frame of the record that last wrote it starts (8
bytes: in memory since the last checkpoint, in the checkpoint's index file before it), and reads
that frame back. A load scans the file a chunk at a time; from the checkpoint's place in the
file when it may, so a restart reads what follows the checkpoint, not the whole file, and finds
older entries through the index.

Compaction (``compaction.py``): once the replica says entries up to a durable checkpoint are
needed nowhere any more (``compact``), ``FileStorage`` releases the prefix of its files that only
they use; reading them back is refused, and a restart must then start from the checkpoint
(:class:`CompactedLogError` if it cannot).

Limitations: no checksums per entry beyond the frame CRC (crash faults only, no disk corruption
model). All writes issued during one replica step are treated as atomic with respect to a crash
in the simulator; a real deployment gets that from the frame CRC (a half-written last frame is
discarded).
"""


from __future__ import annotations

import os
from array import array
from collections.abc import Sequence
from pathlib import Path

import msgspec

from agora.core.files import remove_leftovers
from agora.decision.consensus.checkpoint import Checkpoint, CheckpointFile, FileCheckpoint, LogMark
from agora.decision.consensus.compaction import (
    REPLACE,
    CompactedLogError,
    CompactMark,
    Compactor,
    read_mark,
    released,
)
from agora.decision.consensus.frames import FRAME, FrameScan, frame, places_of, read_frame
from agora.decision.consensus.messages import Entry
from agora.decision.consensus.storage import (
    CommitWrite,
    EntriesWrite,
    FsyncPolicy,
    LogRecord,
    Stored,
    stored_base,
    usable,
)
from agora.decision.consensus.vote import VoteFile

HELD_MAX = 1_024  # policy none: records held back before a drain is forced
SCAN_CHUNK = 1 << 20  # bytes of the log file a load decodes at a time
_record_encoder = msgspec.msgpack.Encoder()
_record_decoder = msgspec.msgpack.Decoder(LogRecord)
_view_decoder = msgspec.msgpack.Decoder(tuple[int, int])


def _locate(where: array, base: int, record: EntriesWrite, offset: int) -> bool:
    """Note in ``where`` (entries ``base + 1 ..``) that ``record``'s entries are in the frame at
    ``offset``. False: a gap, or a rewrite at or below ``base`` (a checkpoint's index, which is
    committed: a stream that does either is not trusted from there)."""
    cut = record.start - 1 - base
    if not 0 <= cut <= len(where):
        return False
    del where[cut:]
    where.extend(array("Q", (offset,)) * len(record.entries))
    return True


class FileStorage:
    """Files in ``directory``: ``vote`` (the view vote, vote.py), ``log`` (append-only frames),
    ``checkpoint`` and ``index`` (checkpoint.py), and once compacted ``compacted``
    (compaction.py).

    For the real-process replicas. ``load`` cuts a torn or corrupt tail off the log file so
    later appends follow the last good frame.

    Under ``none`` a record is not even encoded during the replica's step: it waits in a list
    until :meth:`drain` (which the transport calls after sending the step's messages), a sync
    or close, so the encoding is off the commit path. Nothing changes for a crash: the process
    buffer was already lost with the process.

    Where each entry is: ``_where`` holds, for entries ``_where_base + 1`` on, where the frame of
    the record that last wrote it starts; the places of entries up to the last checkpoint are in
    the checkpoint's index file (``checkpoint.py``), and memory lets them go once they are. So
    memory holds at most two checkpoint intervals of places, and a load that resumes from a
    checkpoint reads the older ones in the index when a lagging peer needs those entries. If the
    index does not reach the checkpoint (lost or cut), the entries before it are located by a
    scan of the log up to the checkpoint's frames instead, the first time one is read back
    (never after a compaction: the scan would start in the holes).
    """

    def __init__(
        self, directory: Path, policy: FsyncPolicy = FsyncPolicy.ALWAYS, *, batch_records: int = 64
    ) -> None:
        if batch_records < 1:
            raise ValueError("batch_records must be at least 1")
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        remove_leftovers(self.directory / "compacted")  # a marker write a crash cut short
        self._compaction = read_mark(self.directory / "compacted")  # before any file is open
        self.compactions = Compactor()  # writes the marker and punches, off the step
        self.policy = FsyncPolicy(policy)
        self.batch_records = batch_records
        self._log = open(self.directory / "log", "a+b")  # noqa: SIM115 - lives with the object
        self._unsynced = 0
        self._held: list[LogRecord] = []  # policy none: records not yet encoded (see drain)
        self._size = os.fstat(self._log.fileno()).st_size  # written or in the write buffer
        self._vote = VoteFile(self.directory / "vote")
        self.checkpoints = CheckpointFile(self.directory / "checkpoint",
                                          self.directory / "index")
        self._where = array("Q")  # entry _where_base + k: where its record's frame starts
        self._where_base = 0  # entries 1.._where_base: in the index, or scanned for (below)
        self._prefix_end = 0  # the frames that locate entries 1.._where_base end here
        self._commit = 0  # the highest commit record written
        self._last_frame = -1  # where the last frame written starts (a checkpoint's anchor)

    @property
    def durable(self) -> bool:
        return self.policy is FsyncPolicy.ALWAYS

    @property
    def kept_checkpoint(self) -> int:
        """The index of the newest checkpoint durable on disk (0: none): ``compact``'s limit."""
        return self.checkpoints.kept

    @property
    def compacted(self) -> int:
        """Entries ``1..compacted`` are released (0: never compacted)."""
        return self._compaction.upto

    def close(self) -> None:
        self._sync_log()
        self.checkpoints.close()
        self.compactions.wait()  # its punches use the log's descriptor
        self._log.close()
        self._vote.close()

    def drain(self) -> None:
        held, self._held = self._held, []
        for record in held:
            self._write(record)

    def load(self, keep: int | None = None, checkpoint_max: int = -1) -> Stored | None:
        """One pass over the file from the checkpoint on (from its start without one) a chunk
        at a time (``_scan``), then the entries from the base on read back: with a ``keep``,
        the memory a restart needs does not grow with the log (only ``_where``, 8 bytes per
        entry after the checkpoint). After a compaction the base is at least ``compacted``."""
        self._sync_log()  # anything held or buffered is in the file before it is read
        self.checkpoints.wait()
        self.compactions.wait()
        vote = self._load_vote()
        if vote is None:
            return None
        view, log_view = vote
        found = self.checkpoints.load()
        if found is not None and not self._consistent(found):
            found = None
        start_from = self._start_from(found, checkpoint_max)
        where, base, start, length, commit = array("Q"), 0, 0, 0, 0
        checkpoint = None
        if start_from is not None:
            mark = start_from.mark
            where.frombytes(mark.where)
            base, start, length, commit = start_from.checkpoint.index, mark.offset, \
                mark.length, mark.commit
            checkpoint = usable(start_from.checkpoint, checkpoint_max)
        self._last_frame = -1 if start_from is None else start_from.mark.anchor
        self.checkpoints.indexed = base if self.checkpoints.index_holds(base) else 0
        length, commit, good, last = self._scan(where, base, start, length, commit)
        if good < os.fstat(self._log.fileno()).st_size:
            self._log.truncate(good)
        self._size = good
        self._where, self._where_base, self._prefix_end = where, base, start
        self._commit = commit
        if last >= 0:
            self._last_frame = last
        if found is not None and good >= found.mark.offset:  # still anchored after the cut
            self.checkpoints.note_kept(found.checkpoint.index, found.mark.anchor)
        commit = min(commit, length)
        first = max(stored_base(commit, keep, checkpoint), self.compacted)
        entries = self.read_entries(first + 1, length - first) if length > first else []
        return Stored(view=view, log_view=log_view, commit=commit, entries=entries, base=first,
                      checkpoint=checkpoint)

    def _consistent(self, found: FileCheckpoint) -> bool:
        """Whether ``found`` is consistent and anchored in this log file (its last frame ends
        where the checkpoint says), so a load may start from it."""
        mark, index = found.mark, found.checkpoint.index
        if mark.length - len(mark.where) // 8 != index:
            return False
        payload = read_frame(self._log.fileno(), mark.anchor)
        return payload is not None and mark.anchor + FRAME.size + len(payload) == mark.offset

    def _start_from(self, found: FileCheckpoint | None, checkpoint_max: int
                    ) -> FileCheckpoint | None:
        """The checkpoint the load's scan starts from: ``found`` if the caller allows it; after
        a compaction ``found`` whatever it allows (a scan from byte 0 would take the holes for
        a torn tail and cut the whole log), or CompactedLogError if it cannot be."""
        if not self.compacted:
            return found if found is not None and found.checkpoint.index <= checkpoint_max \
                else None
        problem = self._unresumable(found, checkpoint_max)
        if problem:
            raise CompactedLogError(
                f"{self.directory}: its log was compacted up to entry {self.compacted} and "
                f"{problem}: this replica cannot restart from its own disk; "
                + REPLACE.format(storage=self.directory))
        return found

    def _unresumable(self, found: FileCheckpoint | None, checkpoint_max: int) -> str:
        """Why a load of the compacted log cannot start from ``found`` ("": it can)."""
        done = self._compaction
        if found is None:
            return "its checkpoint is missing, damaged or not anchored in this log"
        index = found.checkpoint.index
        if index < done.upto or found.mark.anchor < done.resume:
            return f"its checkpoint (at entry {index}) is older than the compaction"
        if not self.checkpoints.index_holds(index):
            return f"its index file does not reach the checkpoint's entry {index}"
        if checkpoint_max < done.upto:
            return (f"the caller takes no checkpoint past entry {checkpoint_max}, so it needs "
                    f"entries that are gone")
        return ""

    def _scan(self, where: array, base: int, start: int, length: int, commit: int,
              stop: int | None = None) -> tuple[int, int, int, int]:
        """The log's length and commit as :func:`replay` finds them, from the state at file
        offset ``start`` (to ``stop``, or the end), where the intact frames end and where the
        last of them starts; every record's entries located in ``where`` on the way."""
        trusted = True  # until a gap: replay stops trusting the stream there
        scan = FrameScan(self.directory / "log", _record_decoder, chunk=SCAN_CHUNK,
                         start=start, stop=stop)
        for offset, record in scan:
            if not trusted:
                continue
            if type(record) is EntriesWrite:  # decoded: exact types
                trusted = _locate(where, base, record, offset)
                if trusted:
                    length = record.start - 1 + len(record.entries)
            else:
                commit = max(commit, record.commit)  # type: ignore[attr-defined]
        return length, commit, scan.end, scan.last

    def _locate_prefix(self) -> None:
        """Locate entries ``1.._where_base`` (a load from a checkpoint left them): they are
        committed, so where the frames before the checkpoint put them is where they are."""
        if self.compacted:  # a scan from byte 0 would read the holes
            raise LookupError(f"{self._compacted_text()}; the places of entries up to "
                              f"{self._where_base} are not in the index")
        prefix = array("Q")
        self._scan(prefix, 0, 0, 0, 0, stop=self._prefix_end)
        if len(prefix) < self._where_base:
            raise LookupError(f"{self.directory / 'log'}: the frames before the checkpoint hold "
                              f"entries 1..{len(prefix)}, not 1..{self._where_base}")
        self._where = prefix[: self._where_base] + self._where
        self._where_base = 0

    def _places(self, first: int, count: int) -> array:
        """Where the frames holding entries ``first..first + count - 1`` start: from the index
        for those before ``_where_base``, from memory for the rest."""
        base = self._where_base
        if first <= base and self.checkpoints.indexed < base:
            self._locate_prefix()  # the index does not reach them: scan for them once
            base = 0
        return places_of(first, count, base, self._where, self.checkpoints.read_index,
                         "entries", "the log file")

    def read_entries(self, first: int, count: int) -> list[Entry]:
        """Read back from the file: one frame per run of entries last written by one record."""
        if first <= self.compacted:
            raise LookupError(f"{self._compacted_text()}; entry {first} asked for")
        self.drain()  # held records first: they may hold (or rewrite) the entries asked for
        self._log.flush()
        where = self._places(first, count)
        out: list[Entry] = []
        index, end = first, first + count
        while index < end:
            offset = where[index - first]
            run = 1  # a later record may have rewritten the end of this one's entries
            while index + run < end and where[index + run - first] == offset:
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

    def _compacted_text(self) -> str:
        return f"entries 1..{self.compacted} of {self.directory / 'log'} were compacted"

    def _read_record(self, offset: int) -> LogRecord:
        if offset < self._compaction.resume:  # never bytes from a hole
            raise LookupError(f"{self._compacted_text()}; a frame at byte {offset} asked for")
        payload = read_frame(self._log.fileno(), offset)
        if payload is None:
            raise LookupError(f"{self.directory / 'log'}: no intact frame at byte {offset}")
        return _record_decoder.decode(payload)

    def write_entries(self, start: int, entries: Sequence[Entry]) -> None:
        self._append(EntriesWrite(start, tuple(entries)))

    def write_commit(self, commit: int) -> None:
        self._append(CommitWrite(commit))

    def write_view(self, view: int, log_view: int) -> None:
        self._vote.write(view, log_view)

    def write_checkpoint(self, checkpoint: Checkpoint) -> None:
        """Hand ``checkpoint`` to the background writer with where the log stands (every
        record so far written out to the file first, so the writer's fsync covers them)."""
        if checkpoint.index < self.compacted:
            raise ValueError(f"checkpoint at entry {checkpoint.index}: entries up to "
                             f"{self.compacted} are compacted")
        checkpoints = self.checkpoints
        if not checkpoints.accepts():
            return
        self.drain()
        self._log.flush()
        indexed = checkpoints.indexed
        if indexed > self._where_base:  # the last checkpoint's places are in its index now
            del self._where[: indexed - self._where_base]
            self._where_base = indexed
        elif indexed < self._where_base:  # the index fell short on a load: rebuild it too
            self._locate_prefix()
        where, base, index = self._where, self._where_base, checkpoint.index
        if not base <= index <= base + len(where) or self._last_frame < 0:
            raise ValueError(f"checkpoint at entry {index}: the log holds entries up to "
                             f"{base + len(where)}")
        mark = LogMark(self._size, self._last_frame, base + len(where), self._commit,
                       where[index - base :].tobytes())
        checkpoints.write(FileCheckpoint(checkpoint, mark), self._log.fileno(), where,
                          indexed - base)

    def compact(self, upto: int) -> None:
        """Release entries ``1..upto`` (at most the kept checkpoint's index): the marker first,
        durably, then holes in the prefixes of ``log`` and ``index`` nothing reads any more,
        only what the last compaction left (a few system calls, no read of the file)."""
        done = self._compaction
        if upto <= done.upto:
            return
        kept, anchor = self.checkpoints.kept_at
        if upto > kept:
            raise ValueError(f"compact({upto}): the newest checkpoint durable on disk is at "
                             f"entry {kept}; only entries up to it can be released")
        # No frame before the one holding entry upto + 1 holds a current entry above upto: the
        # record that wrote that frame started at some s <= upto + 1 and so cut every entry
        # after s - 1; an entry above upto + 1 written before it was rewritten after it or is
        # gone. Nor does a load need one: it reads the kept checkpoint's anchor frame and scans
        # from after it. Later compactions only move both bounds forward.
        if self.checkpoints.indexed < self._where_base:  # the index fell short on a load:
            self._locate_prefix()  # locate them now (the next checkpoint would), not in holes
        resume = max(done.resume, min(self._holder(upto + 1), anchor))
        mark = CompactMark(upto, resume, max(done.log_freed, released(resume)),
                           max(done.index_freed, released(8 * upto)))
        self._compaction = mark  # refused from now on; the disk follows in the background
        self.compactions.submit(self.directory / "compacted", mark, self._log.fileno(),
                                self.checkpoints.index_path, done.log_freed, done.index_freed)

    def _holder(self, index: int) -> int:
        """Where the frame holding entry ``index`` starts (the end of the file if none does:
        it will be written after it)."""
        if index > self._where_base + len(self._where):
            return self._size
        return self._places(index, 1)[0]

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
            _locate(self._where, self._where_base, record, self._size)
        elif record.commit > self._commit:  # type: ignore[union-attr]
            self._commit = record.commit  # type: ignore[union-attr]
        self._log.write(data)
        self._last_frame = self._size
        self._size += len(data)

    def _sync_log(self) -> None:
        self.drain()
        self._log.flush()
        if self.policy is not FsyncPolicy.NONE:
            os.fsync(self._log.fileno())
        self._unsynced = 0
