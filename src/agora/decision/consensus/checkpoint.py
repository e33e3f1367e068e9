"""Checkpoints: a restart that resumes from the last one instead of from entry 1.

What a restarting replica rebuilds is the client table, a function of the applied log
(``core.py``); it used to apply every committed entry of the session again, and its file storage
scanned the whole log file, so a restart late in a long session took time in proportion to the
session (0.6-0.9 s per 400,000 entries, BENCHMARKS.md). Now the replica hands its storage the
client table every ``ReplicaConfig.checkpoint_every`` applied entries; the storage keeps the
newest such :class:`Checkpoint` with whatever it needs to resume its own scan there, and
``Storage.load(checkpoint_max=...)`` returns it. A restart then applies only what follows it.

It is a shortcut, never a source of truth:

* A checkpoint is taken at an *applied* index, so it covers committed entries only, which never
  change; the client table it holds is what applying entries ``1..index`` builds.
* A storage keeps a checkpoint only once every log record written before it is durable (the file
  storage fsyncs the log first, then replaces its checkpoint file atomically, both in a
  background thread off the commit path), so a checkpoint found after a crash never describes
  records the crash took. Losing one (a crash before it is written, or a damaged file, which is
  ignored) costs only a longer restart.
* A restart takes the newest checkpoint's table whatever its application's point
  (``applied_index``): if the application is behind the checkpoint, the entries after its point
  are applied again (they must be emitted again) from the log; each rewrites a client's slot
  with a value the table already holds at the end, so the table is the same once ``applied``
  passes the checkpoint.

A durable checkpoint is also what compaction stands on (``core.py``): no replica ever needs an
entry at or below its own durable checkpoint from another, so the lowest of them (the *floor*)
bounds what every replica may release; the file storage then frees those entries
(``compaction.py``), and its restarts depend on that checkpoint (:attr:`CheckpointFile.kept`).
The Byzantine mode has restart snapshots of its own (``agora.decision.bft.snapshot``) and no
compaction.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from array import array
from pathlib import Path

import msgspec

from agora.core.files import remove_leftovers, replace_durably
from agora.decision.consensus.frames import frame, read_frame_file, read_places

log = logging.getLogger(__name__)


class ClientSlot(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """A client's last committed request (one built per applied entry, a restart's included: a
    Struct builds in C, a NamedTuple through a Python-level ``__new__``)."""

    request_number: int
    index: int
    abandoned: bool


class Checkpoint(msgspec.Struct, frozen=True, array_like=True):
    """The replica's state after applying entries ``1..index``."""

    index: int
    clients: dict[int, ClientSlot]


class LogMark(msgspec.Struct, frozen=True, array_like=True):
    """Where a file storage's log stood when a checkpoint was taken, so a load resumes its scan
    there: the end of the frames then written (``offset``), the start of the last of them
    (``anchor``: checked on load, so a checkpoint is not used against another log file), the
    log's length and commit number at that point, and where the entries after the checkpoint's
    index start (8 bytes each, little-endian: the file storage's ``_where``)."""

    offset: int
    anchor: int
    length: int
    commit: int
    where: bytes


class FileCheckpoint(msgspec.Struct, frozen=True, array_like=True):
    checkpoint: Checkpoint
    mark: LogMark


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(FileCheckpoint)
INDEX_SLICE = 65_536  # places the checkpoint thread copies and writes at a time


class CheckpointFile:
    """The file storage's ``checkpoint`` file (one framed record, replaced whole) and its
    ``index`` file (where the frame holding each entry up to the checkpoint starts, 8 bytes per
    entry, little-endian: entries that old are committed and never move, so a running storage
    need not hold their places in memory, and a restart from the checkpoint reads them there
    instead of scanning the log for them).

    :meth:`write` hands the work to a background thread (started with the first checkpoint, so
    a step does not wait for a thread to start): fsync the log (``log_fd``), write and fsync the
    index's new entries, then replace the checkpoint file durably (its directory fsync also
    makes a new index file's name durable); ``indexed`` then says how far the index goes, and
    ``kept`` which checkpoint is durable (compaction may rely on it from then on). One
    write is in flight at a time; a checkpoint offered meanwhile is skipped (the next one
    follows ``checkpoint_every`` entries later). A failed write is logged and counted
    (``failures``) and leaves the previous checkpoint in place.
    """

    def __init__(self, path: Path, index_path: Path) -> None:
        self.path = path
        self.index_path = index_path
        self.indexed = 0  # entries 1..indexed: their frames' places are durable in the index
        # the durable checkpoint's index (read often: an attribute), and its (index, anchor)
        # replaced as one; the writer sets kept_at first, so kept never runs ahead of it
        self.kept = 0
        self.kept_at = (0, -1)
        self._index_fd = -1  # for reads
        remove_leftovers(path)  # a write a crash cut short
        self._jobs: queue.SimpleQueue[tuple[bytes, int, array, int, int, int] | None] = (
            queue.SimpleQueue())
        self._thread: threading.Thread | None = None
        self._idle = threading.Event()
        self._idle.set()
        self.written = 0
        self.skipped = 0
        self.failures = 0

    def note_kept(self, index: int, anchor: int) -> None:
        """A load found checkpoint ``index`` intact on disk (no write is in flight then)."""
        if index > self.kept:
            self.kept_at, self.kept = (index, anchor), index

    def load(self) -> FileCheckpoint | None:
        """The checkpoint on disk, or None (none yet, or a damaged one: logged, ignored)."""
        if not self.path.exists():
            return None
        record = read_frame_file(self.path, _decoder)
        if record is None:
            log.warning("%s: damaged checkpoint ignored; the restart scans the whole log",
                        self.path)
        return record  # type: ignore[return-value]

    def accepts(self) -> bool:
        """Whether a write may start now (False, counted as skipped, while one is in flight)."""
        if self._idle.is_set():
            return True
        self.skipped += 1
        return False

    def write(self, record: FileCheckpoint, log_fd: int, places: array, start: int) -> None:
        """Start writing ``record`` (once :meth:`accepts` said so), after the places of entries
        ``indexed + 1 .. record.checkpoint.index``, which are ``places[start:]`` up to that
        many. The thread copies them out of ``places``, the storage's live array: the storage
        only appends to it and cuts it after entries that are not committed until the write is
        done, so those places neither move nor change."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="agora-checkpoint",
                                            daemon=True)
            self._thread.start()
        self._idle.clear()
        self._jobs.put((frame(_encoder.encode(record)), log_fd, places, start,
                        record.checkpoint.index, record.mark.anchor))

    def index_holds(self, upto: int) -> bool:
        """Whether the index file holds the places of entries ``1..upto`` (on a load)."""
        try:
            return self.index_path.stat().st_size >= 8 * upto
        except FileNotFoundError:
            return upto == 0

    def read_index(self, first: int, count: int) -> array:
        """The places of entries ``first..first + count - 1`` (all at most ``indexed``)."""
        if self._index_fd < 0:
            self._index_fd = os.open(self.index_path, os.O_RDONLY)
        places = read_places(self._index_fd, first, count)
        if places is None:
            raise LookupError(f"{self.index_path}: entries {first}..{first + count - 1} asked "
                              f"for, the index holds {os.fstat(self._index_fd).st_size // 8}")
        return places

    def _run(self) -> None:
        while (job := self._jobs.get()) is not None:
            data, log_fd, places, start, upto, anchor = job
            first = self.indexed
            try:
                os.fsync(log_fd)  # every record the checkpoint describes is durable first
                fd = os.open(self.index_path, os.O_WRONLY | os.O_CREAT, 0o644)
                try:
                    for k in range(0, upto - first, INDEX_SLICE):  # a slice's copy holds the
                        piece = places[start + k : start + min(k + INDEX_SLICE, upto - first)]
                        os.pwrite(fd, piece.tobytes(), 8 * (first + k))  # GIL, not the whole
                    os.fsync(fd)
                finally:
                    os.close(fd)
                replace_durably(self.path, data)
                self.indexed = upto
                self.kept_at = (upto, anchor)  # durable only now
                self.kept = upto
                self.written += 1
            except OSError as e:
                self.failures += 1
                log.error("%s: checkpoint not written (%s); the previous one stays", self.path, e)
            finally:
                self._idle.set()

    def wait(self) -> None:
        """Until the write in flight, if any, is done."""
        self._idle.wait()

    def close(self) -> None:
        """Finish the write in flight and stop the thread (before the log file closes)."""
        if self._thread is not None:
            self._jobs.put(None)
            self._thread.join()
            self._thread = None
        if self._index_fd >= 0:
            os.close(self._index_fd)
            self._index_fd = -1
