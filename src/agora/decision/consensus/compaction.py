"""Compaction of a file storage's log: the ``compacted`` marker file, and holes punched in the
prefixes of the ``log`` and ``index`` files that nothing reads any more.

Why holes rather than a rewrite: the checkpoint and the index hold byte offsets into ``log``, so
a file that keeps its offsets needs no rewrite of either, and releasing a prefix costs a few
system calls instead of a copy of the file. ``fallocate(PUNCH_HOLE | KEEP_SIZE)`` frees the
blocks; the apparent size stays and the holes read as zeros.

Why a marker, written before any hole: zeros at the start of the log look like a torn tail to a
scan from byte 0, which would cut the whole log. The marker tells a load that such a scan is
forbidden and where the intact frames start. Its format: one frame (``frames.py``) whose payload
is the msgpack array ``[upto, resume, log_freed, index_freed]`` (:class:`CompactMark`).
"""

from __future__ import annotations

import ctypes
import errno
import logging
import os
from collections.abc import Callable
from pathlib import Path

import msgspec

from agora.core.background import BackgroundJob
from agora.core.files import replace_durably
from agora.decision.consensus.frames import frame, read_frame_file

log = logging.getLogger(__name__)

BLOCK = 4096  # holes are punched in whole blocks of this size
_PUNCH_HOLE = 0x02
_KEEP_SIZE = 0x01
_UNSUPPORTED = {errno.EOPNOTSUPP, errno.ENOSYS}


REPLACE = ("replace this replica's directory (the one holding {storage}) with a copy of a "
           "healthy peer's, taken while that peer was stopped")


class CompactedLogError(Exception):
    """The log was compacted and what a restart needs instead of its released prefix (the
    checkpoint, the index, the marker, or an application at least as far) is unusable: the
    replica cannot restart from its disk. An operator's matter, not a bug: said in one line."""


class CompactMark(msgspec.Struct, frozen=True, array_like=True):
    """The ``compacted`` marker: entries ``1..upto`` are released. ``resume`` is a frame
    boundary of the log at or before every frame a load or read may still need (the kept
    checkpoint's anchor, and the frame holding entry ``upto + 1``); ``log_freed`` and
    ``index_freed`` say how far the holes go (``resume`` and ``8 * upto``, rounded down to
    :data:`BLOCK`), so the next compaction punches only what follows them."""

    upto: int
    resume: int
    log_freed: int
    index_freed: int


NOTHING = CompactMark(0, 0, 0, 0)
_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(CompactMark)


def read_mark(path: Path) -> CompactMark:
    """The marker at ``path`` (:data:`NOTHING` if there is none). A damaged one is an error, not
    "never compacted": that guess could cut the whole log."""
    if not path.exists():
        return NOTHING
    mark = read_frame_file(path, _decoder)
    if mark is None:
        raise CompactedLogError(
            f"{path}: the compaction marker is damaged, so where the intact part of "
            f"{path.parent / 'log'} starts is unknown: this replica cannot restart from its own "
            f"disk; " + REPLACE.format(storage=path.parent))
    return mark  # type: ignore[return-value]


def write_mark(path: Path, mark: CompactMark) -> None:
    """Durable before it returns: the holes punched after it rely on it."""
    replace_durably(path, frame(_encoder.encode(mark)))


class Compactor:
    """Writes a compaction's marker, then punches its holes, in a thread of its own. On the
    benchmark machine the marker's two fsyncs and the punches took 4-5 ms, which on the
    replica's step was a stall every checkpoint interval. One at a time, in order; a failure is
    logged and counted and leaves the entries' blocks in use (reads are refused either way,
    and a hole is punched only once its marker is durable)."""

    def __init__(self) -> None:
        self._job = BackgroundJob("agora-compaction")
        self.failures = 0

    def submit(self, marker: Path, mark: CompactMark, log_fd: int, index: Path,
               log_from: int, index_from: int) -> None:
        """Start making ``mark`` durable and freeing what it released beyond ``log_from`` in
        the log (``log_fd``) and ``index_from`` in ``index``."""
        self._job.start(self._run, marker, mark, log_fd, index, log_from, index_from)

    def _run(self, marker: Path, mark: CompactMark, log_fd: int, index: Path, log_from: int,
             index_from: int) -> None:
        try:
            write_mark(marker, mark)  # before any hole: see the module notes
            punch(log_fd, log_from, mark.log_freed)
            punch_file(index, index_from, mark.index_freed)
        except OSError as e:
            self.failures += 1
            log.error("%s: compaction to entry %d not finished (%s); its entries stay on disk",
                      marker.parent, mark.upto, e)

    def wait(self) -> None:
        """Until the compaction in flight, if any, is done (before a load or a close)."""
        self._job.wait()


def released(offset: int) -> int:
    """``offset`` rounded down to a whole block: where a hole up to it ends."""
    return offset - offset % BLOCK


class _Puncher:
    """``fallocate`` through libc, loaded on first use; off once the file system (or platform)
    has said it cannot punch holes (said once in the log)."""

    def __init__(self) -> None:
        self._call: Callable[..., int] | None = None
        self.supported = True

    def punch(self, fd: int, start: int, end: int) -> bool:
        """Free the blocks of ``[start, end)`` of ``fd``, its size kept. False: not freed
        (unsupported here); other failures raise OSError."""
        if end <= start or not self.supported:
            return end <= start
        call = self._call or self._load()
        if call is not None and call(fd, _PUNCH_HOLE | _KEEP_SIZE, start, end - start) == 0:
            return True
        code = ctypes.get_errno() if call is not None else errno.ENOSYS
        if code not in _UNSUPPORTED:
            raise OSError(code, f"fallocate(PUNCH_HOLE) of bytes {start}..{end}: "
                                f"{os.strerror(code)}")
        self.supported = False
        log.info("punching holes is not supported here (%s): compacted entries are refused "
                 "but their disk space stays in use", os.strerror(code))
        return False

    def _load(self) -> Callable[..., int] | None:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            call = getattr(libc, "fallocate64", None) or libc.fallocate  # 64-bit offsets
        except (OSError, AttributeError):  # not Linux
            return None
        call.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
        call.restype = ctypes.c_int
        self._call = call
        return call


_puncher = _Puncher()


def punch(fd: int, start: int, end: int) -> bool:
    """Free ``[start, end)`` of the open file ``fd`` (see :class:`_Puncher`)."""
    return _puncher.punch(fd, start, end)


def punch_file(path: Path, start: int, end: int) -> bool:
    """Free ``[start, end)`` of the file at ``path`` (none there: nothing to free)."""
    if end <= start:
        return True
    try:
        fd = os.open(path, os.O_WRONLY)
    except FileNotFoundError:
        return True
    try:
        return punch(fd, start, end)
    finally:
        os.close(fd)
