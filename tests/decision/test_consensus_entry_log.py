"""The bounded-memory log: ``EntryLog`` against a plain list, and every storage's
``read_entries`` against the log its records describe (live, after drains, after a reopen).

The replica reads back from storage only committed entries it forgot; here any entry written
is read back, from any point, since the storages promise that much.
"""

from __future__ import annotations

import itertools
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agora.decision.consensus import FileStorage, FsyncPolicy, MemoryStorage
from agora.decision.consensus.entry_log import EntryLog
from agora.decision.consensus.messages import Entry
from agora.decision.consensus.storage import replay
from agora.decision.sim.storage import SimStorage

from .test_consensus_replica import Net


def entry(index: int, tag: int = 0) -> Entry:
    return Entry(index, tag, 1 + index % 3, index, 0, 0, 0, 0, b"p%d.%d" % (index, tag))


# a write: (cut, count) = keep entries 1..cut of the log, then append ``count`` new ones
_WRITES = st.lists(st.tuples(st.integers(0, 40), st.integers(0, 8)), min_size=1, max_size=25)


def _storages(tmp_path, policy):
    return [MemoryStorage(), SimStorage(policy, random.Random(1)),
            FileStorage(tmp_path / "file", policy, batch_records=3)]


@settings(max_examples=60, deadline=None)
@given(writes=_WRITES, policy=st.sampled_from(list(FsyncPolicy)), reopen_at=st.integers(0, 25))
def test_every_storage_reads_back_the_log_its_records_describe(tmp_path_factory, writes,
                                                               policy, reopen_at):
    tmp = tmp_path_factory.mktemp("storages")
    storages = _storages(tmp, policy)
    for s in storages:
        s.write_view(0, 0)
    try:
        _write_and_read(tmp, storages, writes, policy, reopen_at)
    finally:
        storages[2].close()


def _write_and_read(tmp, storages, writes, policy, reopen_at) -> None:
    log: list[Entry] = []
    for step, (cut, count) in enumerate(writes):
        cut = min(cut, len(log))
        new = [entry(cut + 1 + k, step) for k in range(count)]
        if new or cut < len(log):
            for s in storages:
                s.write_entries(cut + 1, new)
            log[cut:] = new
        if step == reopen_at:  # a restart: the file storage rebuilds its index from the file
            storages[2].close()
            storages[2] = FileStorage(tmp / "file", policy, batch_records=3)
            assert storages[2].load().entries == log
        for s in storages:
            for first in range(1, len(log) + 1, 3):
                count = min(5, len(log) - first + 1)
                assert s.read_entries(first, count) == log[first - 1 : first - 1 + count]
            with pytest.raises(LookupError):
                s.read_entries(len(log) + 1, 1)


_COMMITS = st.lists(st.tuples(st.integers(0, 40), st.integers(0, 8), st.integers(0, 45)),
                    min_size=1, max_size=25)


@settings(max_examples=60, deadline=None)
@given(writes=_COMMITS, keep=st.one_of(st.none(), st.integers(0, 12)),
       chunk=st.sampled_from([1, 7, 64, 1 << 20]))
def test_a_file_storage_loads_what_replay_finds_in_any_chunks(tmp_path_factory, writes, keep,
                                                              chunk):
    """``FileStorage.load(keep)`` scans its file a chunk at a time and reads back only the
    entries after the base: the same as ``replay(keep)`` over the records it wrote, whatever
    the chunk size (frames cut anywhere), and the entries before the base read back too."""
    from agora.decision.consensus import file_storage as storage_module

    tmp = tmp_path_factory.mktemp("load")
    memory, file = MemoryStorage(), FileStorage(tmp, FsyncPolicy.NONE)
    for s in (memory, file):
        s.write_view(0, 0)
    log: list[Entry] = []
    for step, (cut, count, commit) in enumerate(writes):
        cut = min(cut, len(log))
        new = [entry(cut + 1 + k, step) for k in range(count)]
        for s in (memory, file):
            s.write_entries(cut + 1, new)
            s.write_commit(commit)
        log[cut:] = new
    file.close()
    reopened = FileStorage(tmp, FsyncPolicy.NONE)
    saved, storage_module.SCAN_CHUNK = storage_module.SCAN_CHUNK, chunk
    try:
        loaded, expected = reopened.load(keep), memory.load(keep)
        assert loaded == expected
        assert loaded.base == (0 if keep is None else max(0, loaded.commit - keep))
        assert reopened.read_entries(1, loaded.base) + loaded.entries == log if loaded.base \
            else loaded.entries == log
    finally:
        storage_module.SCAN_CHUNK = saved
        reopened.close()


def test_a_file_storage_load_stops_at_damage_and_at_a_torn_tail_in_any_chunks(tmp_path,
                                                                            monkeypatch):
    from agora.decision.consensus import file_storage as storage_module

    storage = FileStorage(tmp_path, FsyncPolicy.NONE)
    storage.write_view(0, 0)
    for i in range(1, 7):
        storage.write_entries(i, [entry(i)])
        storage.write_commit(i)
    storage.close()
    data = (tmp_path / "log").read_bytes()
    frames = []
    offset = 0
    while offset < len(data):
        length = int.from_bytes(data[offset : offset + 4], "little")
        frames.append(offset)
        offset += 8 + length
    def load(keep: int):
        reopened = FileStorage(tmp_path, FsyncPolicy.NONE)
        try:
            return reopened.load(keep=keep)
        finally:
            reopened.close()

    for chunk in (1, 5, 1 << 20):
        monkeypatch.setattr(storage_module, "SCAN_CHUNK", chunk)
        # damage inside the 7th frame (entries 1-3 and commits 1-3 survive), and a torn tail
        (tmp_path / "log").write_bytes(data[: frames[6] + 9] + b"\xff" + data[frames[6] + 10 :])
        loaded = load(1)
        assert (loaded.commit, loaded.base, loaded.entries) == (3, 2, [entry(3)])
        assert (tmp_path / "log").stat().st_size == frames[6]  # the damage is cut off
        (tmp_path / "log").write_bytes(data + data[:5])
        loaded = load(2)
        assert (loaded.commit, loaded.base, loaded.entries) == (6, 4, [entry(5), entry(6)])
        assert (tmp_path / "log").stat().st_size == len(data)


@pytest.mark.parametrize("case", ["plain", "deadlines", "a deadline never witnessed"])
def test_a_restart_streams_its_stored_log_and_applies_it_as_a_whole_load_would(tmp_path,
                                                                              case):
    """A replica restarted over 300 committed entries keeps ``log_memory`` of them in memory
    from the load on, reads the rest back a chunk at a time to apply them, and emits the same
    committed entries and builds the same client table as a replica that loads them all:
    deadline verdicts read their witnesses back from the file too, and an entry whose verdict
    is not known yet brings the entries after it back into memory."""
    from agora.decision.consensus import Committed, Replica, ReplicaConfig
    from agora.decision.consensus import core as core_module

    storage = FileStorage(tmp_path, FsyncPolicy.ALWAYS)
    storage.write_view(0, 0)

    def made(i: int) -> Entry:
        budget = 0 if case == "plain" or i % 3 == 0 or i == 300 else (
            500 if i % 5 == 0 else 5_000_000)  # 500 ns: abandoned by its witness
        hint = min(i - 1, 9) if case == "a deadline never witnessed" else i - 1
        return Entry(i, 0, 1 + i % 7, 1 + i // 7, budget, i * 1_000, i * 1_000, hint, b"p%d" % i)

    entries = [made(i) for i in range(1, 301)]
    for start in range(1, 301, 16):
        storage.write_entries(start, entries[start - 1 : start + 15])
    storage.write_commit(300)
    storage.close()

    def restart(log_memory: int):
        """(committed outputs, client table, applied, entries in memory, the whole log)."""
        storage = FileStorage(tmp_path, FsyncPolicy.ALWAYS)
        try:
            replica = Replica(ReplicaConfig(cluster=1, replica=1, n=3, log_memory=log_memory),
                              storage)
            out = replica.start(0)
            return ([c for c in out if isinstance(c, Committed)], replica.clients,
                    replica.applied, len(replica.log.memory), replica.log[:])
        finally:
            storage.close()

    original = core_module.STORED_CHUNK
    core_module.STORED_CHUNK = 64
    try:
        streamed = restart(4)
    finally:
        core_module.STORED_CHUNK = original
    whole = restart(10_000)
    applied = 9 if case == "a deadline never witnessed" else 300
    assert whole[2] == applied and [c.index for c in whole[0]] == list(range(1, applied + 1))
    assert streamed[:3] == whole[:3] and streamed[4] == whole[4] == entries
    assert streamed[3] == (300 - applied if applied < 300 else 4)
    if case == "deadlines":
        assert any(c.abandoned for c in whole[0]) and not all(c.abandoned for c in whole[0])


def test_a_file_storage_reads_an_entry_back_from_the_record_that_holds_it(tmp_path):
    storage = FileStorage(tmp_path, FsyncPolicy.NONE)
    storage.write_view(0, 0)
    storage.write_entries(1, [entry(1), entry(2), entry(3)])
    storage.write_entries(3, [entry(3, 1), entry(4, 1)])  # rewrites 3, in the held records
    assert storage.read_entries(2, 3) == [entry(2), entry(3, 1), entry(4, 1)]
    storage.close()
    data = bytearray((tmp_path / "log").read_bytes())
    data[20] ^= 0xFF  # damage the first record under a reopened storage
    (tmp_path / "log").write_bytes(bytes(data))
    reopened = FileStorage(tmp_path, FsyncPolicy.NONE)
    reopened.load()  # the damaged frame ends the trusted log: nothing to read back
    with pytest.raises(LookupError, match=r"holds 1\.\.0"):
        reopened.read_entries(1, 1)
    reopened.close()


def test_sim_storage_reads_what_survived_a_crash():
    storage = SimStorage(FsyncPolicy.NONE, random.Random(3))
    storage.write_view(0, 0)
    storage.write_entries(1, [entry(1), entry(2)])
    storage.sync()
    storage.write_entries(3, [entry(3)])
    storage.crash(survive=0)
    assert storage.read_entries(1, 2) == [entry(1), entry(2)]
    with pytest.raises(LookupError):
        storage.read_entries(3, 1)
    assert replay(0, 0, storage.records).entries == [entry(1), entry(2)]


_OPS = st.lists(st.one_of(
    st.tuples(st.just("extend"), st.integers(0, 6)),
    st.tuples(st.just("truncate"), st.integers(0, 60)),
    st.tuples(st.just("forget"), st.integers(0, 60)),
), max_size=30)


@settings(max_examples=200, deadline=None)
@given(_OPS, st.lists(st.tuples(st.integers(-70, 70), st.integers(-70, 70)), max_size=8))
def test_an_entry_log_reads_like_a_list(ops, reads):
    storage = MemoryStorage()
    log, reference = EntryLog(storage), []
    for step, (op, arg) in enumerate(ops):
        if op == "extend":
            new = [entry(len(reference) + 1 + k, step) for k in range(arg)]
            storage.write_entries(len(reference) + 1, new)
            log.extend(new)
            reference.extend(new)
        elif op == "truncate":
            if arg < log.base:
                with pytest.raises(ValueError, match="only in storage"):
                    log.truncate(arg)
                continue
            storage.write_entries(min(arg, len(reference)) + 1, [])
            log.truncate(arg)
            del reference[arg:]
        else:
            log.forget(arg)
            assert log.base == max(log.base, min(arg, len(reference)))
        assert len(log) == len(reference) and log == reference and list(log) == reference
        assert len(log.memory) == len(reference) - log.base
    for a, b in reads:
        assert log[a:b] == reference[a:b]
        if -len(reference) <= a < len(reference):
            assert log[a] == reference[a]
        else:
            with pytest.raises(IndexError):
                log[a]
    with pytest.raises(ValueError, match="step"):
        log[::2]


def test_a_replica_keeps_a_bounded_window_and_serves_a_far_behind_replica_from_storage():
    net = Net(3, log_memory=4)
    net.down.add(2)  # replica 2 misses everything: the others forget most of it
    net.commit_each(range(1, 41))
    leader = net.replicas[0]
    assert leader.commit == leader.applied == 40
    assert 4 <= len(leader.log.memory) <= 8 and leader.log.base >= 32
    net.down.clear()
    for _ in range(5):  # the leader's repairs bring replica 2 up from entry 1, read from disk
        net.tick(3_000_000)
        net.pump()
    assert net.replicas[2].commit == 40 and net.replicas[2].log == net.replicas[0].log
    assert [c.client_id for c in net.committed[2]] == list(range(1, 41))


def test_a_replica_lets_go_of_applied_entries_a_few_at_a_time(monkeypatch):
    """Past ``log_memory`` a replica lets ``FORGET_MAX`` more accumulate, then frees them: a
    step frees a bounded number, not ``log_memory`` at once (a stall of milliseconds)."""
    from agora.decision.consensus import core

    monkeypatch.setattr(core, "FORGET_MAX", 3)
    net = Net(3, log_memory=8)
    leader = net.replicas[0]
    bases, sizes = [], []
    for client in range(1, 61):
        net.commit_each(range(client, client + 1))
        bases.append(leader.log.base)
        sizes.append(len(leader.log.memory))
    assert leader.applied == 60 and bases[-1] >= 60 - 8 - 3
    assert max(b - a for a, b in itertools.pairwise(bases)) == 3
    assert min(sizes[10:]) == 8 and max(sizes) == 8 + 3 - 1  # freed once 3 more were applied
    assert leader.log[:] == net.replicas[1].log[:]  # every entry still readable


def test_a_restarted_replica_forgets_the_applied_log_at_once():
    """A restart applies the whole stored log: the window is bounded right after, not only from
    the next commit on (a long session used to hold its whole log until then)."""
    from agora.decision.consensus import Committed, Replica, ReplicaConfig

    storage = MemoryStorage()
    storage.write_view(0, 0)
    storage.write_entries(1, [entry(i) for i in range(1, 41)])
    storage.write_commit(40)
    replica = Replica(ReplicaConfig(cluster=1, replica=1, n=3, log_memory=4), storage)
    out = replica.start(0)
    assert [c.index for c in out if isinstance(c, Committed)] == list(range(1, 41))
    assert replica.applied == 40 and 4 <= len(replica.log.memory) <= 8
    assert replica.log[:] == [entry(i) for i in range(1, 41)]  # the rest read back


def test_log_memory_must_be_positive():
    from agora.decision.consensus import ReplicaConfig

    with pytest.raises(ValueError, match="log_memory"):
        ReplicaConfig(cluster=1, replica=0, n=3, log_memory=0)


def test_a_frame_damaged_under_a_running_file_storage_is_an_error_not_a_wrong_entry(tmp_path):
    storage = FileStorage(tmp_path, FsyncPolicy.NONE)
    storage.write_view(0, 0)
    storage.write_entries(1, [entry(1), entry(2)])
    assert storage.read_entries(1, 2) == [entry(1), entry(2)]  # written out and indexed
    with open(tmp_path / "log", "r+b") as f:
        f.seek(20)
        f.write(b"\xff")
    with pytest.raises(LookupError, match="no intact frame at byte 0"):
        storage.read_entries(2, 1)
    storage.close()
