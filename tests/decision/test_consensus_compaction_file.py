"""Compaction of a file storage (``consensus/compaction.py``): the released prefix of the log and
index files becomes holes, its entries are refused, later entries read back as written (before
and after a reopen, across rewrites), and a compacted directory whose checkpoint is unusable is
refused loudly instead of scanned from byte 0 (where the holes would look like a torn tail)."""

from __future__ import annotations

import ctypes
import errno
import logging
import os
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agora.decision.consensus import FileStorage, FsyncPolicy
from agora.decision.consensus import compaction as compaction_module
from agora.decision.consensus.checkpoint import Checkpoint, ClientSlot
from agora.decision.consensus.file_storage import CompactedLogError
from agora.decision.consensus.messages import Entry


def big(index: int, tag: int = 0, size: int = 200) -> Entry:
    """An entry whose payload makes a few thousand of them span many disk blocks."""
    return Entry(index, tag, 1 + index % 3, index, 0, 0, 0, 0, bytes([tag % 256]) * size)


def checkpoint_at(index: int) -> Checkpoint:
    return Checkpoint(index, {7: ClientSlot(index, index, False)})


def blocks(path) -> int:
    return os.stat(path).st_blocks


def punching_works(tmp_path) -> bool:
    """Whether this file system frees the blocks of a punched range."""
    scratch = tmp_path / "scratch"
    scratch.write_bytes(os.urandom(1 << 16))
    fd = os.open(scratch, os.O_WRONLY)
    try:
        os.fsync(fd)
        before = os.fstat(fd).st_blocks
        return compaction_module.punch(fd, 0, 1 << 15) and os.fstat(fd).st_blocks < before
    finally:
        os.close(fd)
        scratch.unlink()


def written(path, policy=FsyncPolicy.BATCH, total: int = 2_000, per_record: int = 100,
            checkpoint: int | None = 1_500) -> FileStorage:
    """An open storage holding ``total`` committed entries, checkpointed at ``checkpoint``."""
    storage = FileStorage(path, policy)
    storage.write_view(2, 1)
    for start in range(1, total + 1, per_record):
        storage.write_entries(start, [big(i) for i in range(start, start + per_record)])
        storage.write_commit(start + per_record - 1)
    if checkpoint is not None:
        storage.write_checkpoint(checkpoint_at(checkpoint))
        storage.checkpoints.wait()
    return storage


def test_compaction_frees_the_prefix_keeps_the_size_and_refuses_its_entries(tmp_path):
    storage = written(tmp_path / "s")
    log, index = tmp_path / "s" / "log", tmp_path / "s" / "index"
    size, before, index_before = log.stat().st_size, blocks(log), blocks(index)
    storage.compact(1_500)
    assert storage.compacted == 1_500 and storage.kept_checkpoint == 1_500
    assert log.stat().st_size == size
    assert storage.read_entries(1_501, 500) == [big(i) for i in range(1_501, 2_001)]
    for asked in (1, 1_500):
        with pytest.raises(LookupError, match=rf"entries 1..1500 of .*log were compacted; "
                                              rf"entry {asked} asked for"):
            storage.read_entries(asked, 1)
    storage.close()
    if not punching_works(tmp_path):
        pytest.skip("this file system does not punch holes")
    assert blocks(log) < before and blocks(index) < index_before


def test_a_reopened_compacted_storage_loads_from_its_checkpoint_and_compacts_again(tmp_path):
    path = tmp_path / "s"
    storage = written(path)
    storage.compact(1_500)
    storage.close()
    again = FileStorage(path, FsyncPolicy.BATCH)
    assert again.compacted == 1_500  # the marker is read on open
    loaded = again.load(keep=100, checkpoint_max=10**9)
    assert (loaded.view, loaded.log_view, loaded.commit) == (2, 1, 2_000)
    assert loaded.checkpoint == checkpoint_at(1_500) and loaded.base == 1_900
    assert loaded.entries == [big(i) for i in range(1_901, 2_001)]
    assert (again.kept_checkpoint, again.compacted) == (1_500, 1_500)
    assert again.read_entries(1_501, 500) == [big(i) for i in range(1_501, 2_001)]
    whole = again.load(checkpoint_max=10**9)  # no keep: still nothing before the compaction
    assert whole.base == 1_500 and whole.entries == [big(i) for i in range(1_501, 2_001)]
    log = path / "log"
    again.write_entries(2_001, [big(i, 1) for i in range(2_001, 3_001)])
    again.write_commit(3_000)
    again.write_checkpoint(checkpoint_at(2_800))
    again.checkpoints.wait()
    before = blocks(log)
    again.compact(2_800)
    again.compactions.wait()  # the marker and the holes are written in the background
    freed = blocks(log)
    assert again.read_entries(2_801, 200) == [big(i, 1) for i in range(2_801, 3_001)]
    with pytest.raises(LookupError, match="compacted"):
        again.read_entries(2_000, 1)
    again.close()
    last = FileStorage(path, FsyncPolicy.BATCH)
    loaded = last.load(keep=10, checkpoint_max=10**9)
    assert loaded.commit == 3_000 and loaded.checkpoint == checkpoint_at(2_800)
    assert (last.kept_checkpoint, last.compacted) == (2_800, 2_800)
    assert last.read_entries(2_801, 200) == [big(i, 1) for i in range(2_801, 3_001)]
    last.close()
    if punching_works(tmp_path):
        assert freed < before


@pytest.mark.parametrize("damage", ["checkpoint gone", "checkpoint byte", "index gone",
                                    "caller behind"])
def test_a_compacted_directory_without_a_usable_checkpoint_is_refused_not_cut(tmp_path, damage):
    path = tmp_path / "s"
    storage = written(path)
    storage.compact(1_500)
    storage.close()
    log, checkpoint = path / "log", path / "checkpoint"
    size = log.stat().st_size
    if damage == "checkpoint gone":
        checkpoint.unlink()
    elif damage == "checkpoint byte":
        data = bytearray(checkpoint.read_bytes())
        data[-3] ^= 0x40
        checkpoint.write_bytes(bytes(data))
    elif damage == "index gone":
        (path / "index").unlink()
    again = FileStorage(path, FsyncPolicy.BATCH)
    allowed = 1_499 if damage == "caller behind" else 10**9
    with pytest.raises(CompactedLogError, match=rf"{path}: its log was compacted up to entry "
                                                rf"1500 .* with a copy of a healthy peer's"):
        again.load(keep=100, checkpoint_max=allowed)
    again.close()
    assert log.stat().st_size == size


def test_a_damaged_marker_is_refused(tmp_path):
    path = tmp_path / "s"
    storage = written(path, total=300, checkpoint=200)
    storage.compact(200)
    storage.close()
    (path / "compacted").write_bytes(b"\x05\x00\x00\x00junk")
    with pytest.raises(CompactedLogError, match="compaction marker is damaged"):
        FileStorage(path)


def test_a_checkpoint_the_caller_may_not_take_still_anchors_the_load(tmp_path):
    """Compacted at 1,000, checkpoint at 1,500, application at 1,200: the scan starts at the
    checkpoint, which is not returned; the entries after the compaction are all there."""
    path = tmp_path / "s"
    storage = written(path)
    storage.compact(1_000)
    storage.close()
    again = FileStorage(path, FsyncPolicy.BATCH)
    loaded = again.load(keep=None, checkpoint_max=1_200)
    assert loaded.checkpoint is None and loaded.base == 1_000 and loaded.commit == 2_000
    assert loaded.entries == [big(i) for i in range(1_001, 2_001)]
    again.close()


def test_compact_is_bounded_by_the_kept_checkpoint_and_idempotent(tmp_path):
    path = tmp_path / "s"
    storage = written(path, total=500, checkpoint=None)
    assert storage.kept_checkpoint == 0
    with pytest.raises(ValueError, match=r"compact\(1\).* at entry 0"):
        storage.compact(1)
    storage.write_checkpoint(checkpoint_at(300))
    storage.checkpoints.wait()
    assert storage.kept_checkpoint == 300
    with pytest.raises(ValueError, match=r"compact\(301\).* at entry 300"):
        storage.compact(301)
    storage.compact(250)
    storage.compactions.wait()
    marker = (path / "compacted").read_bytes()
    storage.compact(250)
    storage.compact(100)
    storage.compactions.wait()
    assert storage.compacted == 250 and (path / "compacted").read_bytes() == marker
    with pytest.raises(ValueError, match="compacted"):
        storage.write_checkpoint(checkpoint_at(200))
    storage.close()
    again = FileStorage(path)
    again.load(checkpoint_max=10**9)
    assert (again.kept_checkpoint, again.compacted) == (300, 250)
    again.close()


def test_the_kept_checkpoint_is_found_on_load_even_when_the_caller_may_not_use_it(tmp_path):
    path = tmp_path / "s"
    written(path, total=300, checkpoint=200).close()
    storage = FileStorage(path)
    assert storage.load(checkpoint_max=-1).checkpoint is None
    assert storage.kept_checkpoint == 200
    storage.compact(200)  # a scan from byte 0 located the entries: the storage knows them
    assert storage.read_entries(201, 100) == [big(i) for i in range(201, 301)]
    storage.close()


@pytest.mark.parametrize("upto", [150, 200])
def test_a_first_compaction_after_the_index_fell_short_locates_the_entries_first(tmp_path,
                                                                                 upto):
    """The index cut (damage) before a restart from the checkpoint: a compaction locates the
    entries after it by the one scan from byte 0 the next checkpoint would have made, so later
    reads and checkpoints never need that scan (it would start in the holes)."""
    path = tmp_path / "s"
    written(path, total=300, checkpoint=200).close()
    (path / "index").write_bytes((path / "index").read_bytes()[:800])
    storage = FileStorage(path)
    assert storage.load(keep=5, checkpoint_max=10**9).base == 295
    storage.compact(upto)
    assert storage.read_entries(upto + 1, 300 - upto) == [big(i) for i in range(upto + 1, 301)]
    storage.write_checkpoint(checkpoint_at(300))
    storage.checkpoints.wait()
    storage.close()
    again = FileStorage(path)
    again.load(keep=5, checkpoint_max=10**9)
    assert again.read_entries(upto + 1, 300 - upto) == [big(i) for i in range(upto + 1, 301)]
    again.close()


def test_entries_rewritten_inside_an_earlier_record_read_back_rewritten(tmp_path):
    """Records of 10 entries up to 60, then a view change rewrites from 35 (inside the record
    31..40, with records 41..60 stale behind it); compacted up to 34, then 33 is a no-op."""
    path = tmp_path / "s"
    storage = FileStorage(path, FsyncPolicy.ALWAYS)
    storage.write_view(0, 0)
    for start in range(1, 61, 10):
        storage.write_entries(start, [big(i) for i in range(start, start + 10)])
    storage.write_commit(30)
    storage.write_entries(35, [big(i, 1) for i in range(35, 71)])
    storage.write_commit(70)
    storage.write_checkpoint(checkpoint_at(70))
    storage.checkpoints.wait()
    expected = [big(i) for i in range(1, 35)] + [big(i, 1) for i in range(35, 71)]
    storage.compact(32)
    assert storage.read_entries(33, 38) == expected[32:]
    storage.compact(34)
    storage.compact(33)
    assert storage.read_entries(35, 36) == expected[34:]
    storage.close()
    again = FileStorage(path)
    loaded = again.load(keep=5, checkpoint_max=10**9)
    assert loaded.commit == 70 and loaded.base == 70
    assert again.read_entries(35, 36) == expected[34:]
    again.write_entries(71, [big(71, 2)])
    assert again.read_entries(69, 3) == [*expected[68:], big(71, 2)]
    again.close()


def test_a_storage_never_compacted_writes_no_marker(tmp_path):
    storage = written(tmp_path / "s", total=300, checkpoint=200)
    storage.close()
    again = FileStorage(tmp_path / "s")
    again.load(keep=10, checkpoint_max=10**9)
    assert again.compacted == 0 and again.kept_checkpoint == 200
    assert again.read_entries(1, 300) == [big(i) for i in range(1, 301)]
    again.close()
    assert not (tmp_path / "s" / "compacted").exists()


def test_without_hole_punching_the_marker_still_counts(tmp_path, monkeypatch, caplog):
    def refuse(fd, mode, offset, length):
        ctypes.set_errno(errno.EOPNOTSUPP)
        return -1

    puncher = compaction_module._Puncher()
    puncher._call = refuse
    monkeypatch.setattr(compaction_module, "_puncher", puncher)
    path = tmp_path / "s"
    storage = written(path)
    with caplog.at_level(logging.INFO, logger=compaction_module.__name__):
        storage.compact(1_000)
        storage.compact(1_500)
    assert caplog.text.count("punching holes is not supported") == 1
    with pytest.raises(LookupError, match="compacted"):
        storage.read_entries(1_000, 1)
    storage.close()
    again = FileStorage(path)
    assert again.load(keep=1, checkpoint_max=10**9).base == 1_999
    assert again.compacted == 1_500
    again.close()


# a step: (cut, count, commit advance, checkpoint lag or None, compaction fraction or None,
# reopen after it)
_STEPS = st.lists(st.tuples(st.integers(0, 40), st.integers(0, 12), st.integers(0, 8),
                            st.none() | st.integers(0, 4), st.none() | st.floats(0, 1),
                            st.booleans()),
                  min_size=1, max_size=15)


@settings(max_examples=30, deadline=None)
@given(steps=_STEPS, policy=st.sampled_from(list(FsyncPolicy)), keep=st.none() | st.integers(0, 9))
def test_a_reopened_compacted_storage_reads_what_a_list_holds(tmp_path_factory, steps, policy,
                                                              keep):
    """Appends, rewrites above the commit, commits, checkpoints and legal compactions; after
    each step the storage (reopened, or the running one) reads every entry above the
    compaction as the list does, and the last one is always reopened."""
    path = tmp_path_factory.mktemp("compaction")
    storage = FileStorage(path, policy, batch_records=3)
    storage.write_view(0, 0)
    log: list[Entry] = []
    commit = 0
    for step, (cut, count, advance, lag, fraction, reopen) in enumerate(steps):
        cut = max(min(cut, len(log)), commit)
        new = [big(i, step, 300) for i in range(cut + 1, cut + count + 1)]
        if new:
            storage.write_entries(cut + 1, new)
            log[cut:] = new
        if advance and commit < len(log):
            commit = min(len(log), commit + advance)
            storage.write_commit(commit)
        index = commit - (lag or 0)
        if lag is not None and index > storage.kept_checkpoint:
            storage.write_checkpoint(checkpoint_at(index))
            storage.checkpoints.wait()
        kept, done = storage.kept_checkpoint, storage.compacted
        if fraction is not None and kept > done:
            storage.compact(done + round(fraction * (kept - done)))
        if reopen or step == len(steps) - 1:
            storage.close()
            storage = FileStorage(path, policy, batch_records=3)
            loaded = storage.load(keep, checkpoint_max=10**9)
            assert loaded.commit == commit and loaded.base >= storage.compacted
            assert loaded.entries == log[loaded.base :]
        done = storage.compacted
        if len(log) > done:
            assert storage.read_entries(done + 1, len(log) - done) == log[done:]
        if done:
            with pytest.raises(LookupError, match="compacted"):
                storage.read_entries(done, 1)
    storage.close()


def test_a_replica_process_on_a_compacted_directory_it_cannot_use_says_why_in_one_line(tmp_path):
    """The operator's case, not a bug: no traceback, no "ready", exit code 2, and the line says
    what was lost and what to do."""
    storage = written(tmp_path / "r0" / "storage")
    storage.compact(1_500)
    storage.close()
    (tmp_path / "r0" / "storage" / "checkpoint").unlink()
    for io in ("blocking", "asyncio"):
        done = subprocess.run(
            [sys.executable, "-m", "agora.decision.transport.replica_main", "--id", "0",
             "--peers", "127.0.0.1:1,127.0.0.1:2,127.0.0.1:3", "--dir", str(tmp_path / "r0"),
             "--io", io], capture_output=True, text=True, timeout=60)
        assert done.returncode == 2 and "ready" not in done.stdout, (io, done.stdout)
        assert done.stderr.startswith("error: ") and "Traceback" not in done.stderr, done.stderr
        assert "compacted up to entry 1500" in done.stderr and "healthy peer's" in done.stderr
