"""The committed record: opening it finds the last record from its mark, as a scan from the
start (a chunk at a time) would; a mark that does not fit its file is ignored."""

from __future__ import annotations

import tracemalloc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agora.decision.consensus.messages import Committed
from agora.decision.transport import record as record_module
from agora.decision.transport.record import Recorder, iter_records, read_records


def committed(index: int) -> Committed:
    return Committed(index, 0, 1 + index % 5, index, b"c%d" % index, index % 7 == 0)


def write_incarnations(path, sizes: list[int], step: int = 1) -> None:
    """One incarnation per size: a start marker, then that many records, then a close. A
    ``step`` above 1 writes them that many at a time (``committed_all``, as a loaded replica)."""
    index = 0
    for size in sizes:
        recorder = Recorder(path, 2)
        recorder.start(0)
        for first in range(0, size, step):
            items = [committed(index + k) for k in range(1, min(step, size - first) + 1)]
            index += len(items)
            if step == 1:
                recorder.committed(items[0], index)
            else:
                recorder.committed_all(items, index)
            recorder.flush()
        recorder.close()


def _flushed_reach(size: int, step: int, every: int) -> bool:
    """Whether some flush of an incarnation of ``size`` records written ``step`` at a time
    finds ``every`` records unmarked (the start marker counts, and is flushed on its own)."""
    unmarked = 1
    if unmarked >= every:
        return True
    for first in range(0, size, step):
        unmarked += min(step, size - first)
        if unmarked >= every:
            return True
    return False


def test_records_written_together_are_the_frames_written_one_by_one(tmp_path):
    items = [committed(index) for index in range(1, 40)]
    one, together = Recorder(tmp_path / "one", 1), Recorder(tmp_path / "together", 1)
    for item in items:
        one.committed(item, 7)
    together.committed_all(items[:1], 7)
    together.committed_all(items[1:], 7)
    together.committed_all([], 7)
    for recorder in (one, together):
        recorder.flush()
        recorder.close()
    assert (tmp_path / "one").read_bytes() == (tmp_path / "together").read_bytes()
    assert (together.applied, together._last, together._size) == (one.applied, one._last,
                                                                   one._size)


def opened(path) -> tuple[int, int, int]:
    recorder = Recorder(path, 2)
    recorder.close()
    return recorder.incarnation, recorder.applied, path.stat().st_size


@settings(max_examples=40, deadline=None)
@given(sizes=st.lists(st.integers(0, 12), min_size=1, max_size=6), every=st.integers(1, 6),
       chunk=st.integers(1, 64), step=st.integers(1, 4))
def test_opening_from_the_mark_finds_what_a_scan_from_the_start_finds(tmp_path_factory, sizes,
                                                                     every, chunk, step):
    path = tmp_path_factory.mktemp("record") / "committed.log"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(record_module, "MARK_EVERY", every)
        patch.setattr(record_module, "SCAN_CHUNK", chunk)
        write_incarnations(path, sizes, step)
        # a mark follows a flush once an incarnation wrote that many (its start included)
        marked = any(_flushed_reach(size, step, every) for size in sizes)
        assert path.with_name("committed.log.mark").exists() == marked
        from_mark = opened(path)
        records = read_records(path)
        assert list(iter_records(path)) == records  # a chunk at a time, the same records
        path.with_name("committed.log.mark").unlink(missing_ok=True)
        assert opened(path) == from_mark == (len(sizes), sum(sizes), from_mark[2])
    assert read_records(path) == records
    assert [r.item.index for r in records if r.item is not None] == list(
        range(1, sum(sizes) + 1))


@pytest.mark.parametrize("damage", ["file cut before the mark", "another file",
                                    "unreadable mark"])
def test_a_mark_that_does_not_fit_its_file_is_ignored(tmp_path, monkeypatch, damage):
    path = tmp_path / "committed.log"
    monkeypatch.setattr(record_module, "MARK_EVERY", 4)
    write_incarnations(path, [10, 3])
    mark = path.with_name("committed.log.mark")
    if damage == "file cut before the mark":
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 3])
    elif damage == "another file":  # other records: the mark's offsets fall mid-frame
        path.unlink()
        saved = mark.read_bytes()
        write_incarnations(path, [2, 2, 2])
        mark.write_bytes(saved)
    else:
        mark.write_bytes(b"\xc1 not a mark")
    incarnation, applied, _ = opened(path)
    scanned = read_records(path)
    assert incarnation == scanned[-1].incarnation + 1
    assert applied == max(r.item.index for r in scanned if r.item is not None)
    if damage == "another file":
        assert (incarnation, applied) == (3, 6)


def test_a_torn_last_frame_after_the_mark_is_cut(tmp_path, monkeypatch):
    path = tmp_path / "committed.log"
    monkeypatch.setattr(record_module, "MARK_EVERY", 2)
    write_incarnations(path, [5])
    whole = path.stat().st_size
    with open(path, "ab") as f:
        f.write(b"\x30\x00\x00\x00\x95")  # a frame of 48 bytes, killed after its first
    assert opened(path) == (1, 5, whole)


def test_a_mark_replacement_a_crash_cut_short_is_removed_on_open(tmp_path):
    leftover = tmp_path / ".committed.log.mark.k3x9.tmp"
    leftover.write_bytes(b"half a mark")
    Recorder(tmp_path / "committed.log", 0).close()
    assert not leftover.exists()


def test_iterating_a_record_holds_a_chunk_not_the_session(tmp_path, monkeypatch):
    """A restarted decision node replays its replica's whole record; read a chunk at a time,
    it no longer holds the session's file and records at once. A torn last frame is skipped
    and a missing record is empty, as ``read_records`` does."""
    path = tmp_path / "committed.log"
    recorder = Recorder(path, 2)
    recorder.start(0)
    for index in range(1, 20_001):
        recorder.committed(committed(index), index)
    recorder.close()
    with open(path, "ab") as f:
        f.write(b"\x30\x00\x00\x00\x95")  # a torn frame
    monkeypatch.setattr(record_module, "SCAN_CHUNK", 64 << 10)
    tracemalloc.start()
    try:
        count = sum(1 for r in iter_records(path) if r.item is not None)
        _, iterated = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        whole = read_records(path)
        _, read_at_once = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 20_000 == len(whole) - 1
    assert path.stat().st_size > 500_000  # (here: 138 KB at the peak against 5.6 MB)
    assert iterated < 300_000 and 10 * iterated < read_at_once
    assert list(iter_records(tmp_path / "none.log")) == []


def test_a_background_sync_moves_the_durable_point_to_what_was_flushed(tmp_path):
    """Compaction trusts only what the record made durable: nothing at first (a restart's
    file may still be only in the page cache), then what the last background fsync covered."""
    recorder = Recorder(tmp_path / "committed.log", 0)
    recorder.start(1)
    recorder.committed_all([Committed(i, 0, i, 1, b"x", False) for i in range(1, 6)], 2)
    assert recorder.durable == 0
    assert recorder.sync_in_background()
    recorder.committed_all([Committed(6, 0, 6, 1, b"x", False)], 3)  # after the sync began
    recorder.close()  # waits for the sync
    assert recorder.durable == 5
