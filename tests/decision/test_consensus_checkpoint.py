"""Checkpoints (``consensus/checkpoint.py``): a file storage resumes its scan from one and still
reads every entry before it back; a replica restarted from one holds what a whole replay builds;
a damaged, foreign or failed checkpoint is never trusted, and a restart then scans everything."""

from __future__ import annotations

import logging
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agora.decision.consensus import Committed, FileStorage, FsyncPolicy, ReplicaConfig, Status
from agora.decision.consensus import checkpoint as checkpoint_module
from agora.decision.consensus.checkpoint import Checkpoint, ClientSlot
from agora.decision.consensus.storage import CommitWrite, EntriesWrite, replay

from .test_consensus_entry_log import entry
from .test_consensus_replica import Net

# a step: (cut, count, commit advance, checkpoint lag or None, reopen after it)
_STEPS = st.lists(st.tuples(st.integers(0, 40), st.integers(0, 8), st.integers(0, 6),
                            st.none() | st.integers(0, 5), st.booleans()),
                  min_size=1, max_size=25)


def checkpoint_at(index: int) -> Checkpoint:
    return Checkpoint(index, {7: ClientSlot(index, index, index % 2 == 0)})


@settings(max_examples=80, deadline=None)
@given(steps=_STEPS, policy=st.sampled_from(list(FsyncPolicy)), keep=st.none() | st.integers(0, 9),
       allowed=st.integers(-1, 200))
def test_a_file_storage_loads_from_its_checkpoint_what_a_whole_scan_finds(
        tmp_path_factory, steps, policy, keep, allowed):
    path = tmp_path_factory.mktemp("checkpoint")
    storage = FileStorage(path, policy, batch_records=3)
    storage.write_view(0, 0)
    records: list = []
    log: list = []
    commit = 0
    taken: Checkpoint | None = None
    for step, (cut, count, advance, lag, reopen) in enumerate(steps):
        cut = max(min(cut, len(log)), commit)  # a replica never cuts a committed entry
        new = [entry(i, step) for i in range(cut + 1, cut + count + 1)]
        if new:
            storage.write_entries(cut + 1, new)
            records.append(EntriesWrite(cut + 1, tuple(new)))
            log[cut:] = new
        if advance and commit < len(log):
            commit = min(len(log), commit + advance)
            storage.write_commit(commit)
            records.append(CommitWrite(commit))
        index = commit - (lag or 0)
        if lag is not None and index > (taken.index if taken else 0):  # applied only grows
            taken = checkpoint_at(index)
            storage.write_checkpoint(taken)
            storage.checkpoints.wait()
        if reopen:  # the next load starts from the checkpoint and later ones follow it
            storage.close()
            storage = FileStorage(path, policy, batch_records=3)
            storage.load(keep, checkpoint_max=10**9)
    storage.close()
    storage = FileStorage(path, policy)
    try:
        loaded = storage.load(keep, checkpoint_max=allowed)
        expected = taken if taken is not None and taken.index <= allowed else None
        whole = replay(0, 0, records, keep, expected)
        assert (loaded.commit, loaded.base, loaded.entries) == (whole.commit, whole.base,
                                                                whole.entries)
        assert loaded.checkpoint == expected
        if expected is not None and keep is not None:  # the entries it covers stay on disk
            assert loaded.base >= expected.index
        assert storage.read_entries(1, len(log)) == log  # the prefix too, located on demand
        storage.write_entries(len(log) + 1, [entry(len(log) + 1, 99)])
        assert storage.read_entries(1, len(log) + 1) == [*log, entry(len(log) + 1, 99)]
    finally:
        storage.close()


def _stored(path, *, checkpoint_at_entry: int = 6) -> FileStorage:
    """A closed log of 10 entries, committed, with a checkpoint at ``checkpoint_at_entry``."""
    storage = FileStorage(path, FsyncPolicy.ALWAYS)
    storage.write_view(0, 0)
    for i in range(1, 11):
        storage.write_entries(i, [entry(i)])
        storage.write_commit(i)
        if i == checkpoint_at_entry:
            storage.write_checkpoint(checkpoint_at(i))
    storage.close()
    return storage


def _load(path, checkpoint_max: int = 100):
    storage = FileStorage(path, FsyncPolicy.ALWAYS)
    try:
        loaded = storage.load(checkpoint_max=checkpoint_max)
        return loaded, storage.read_entries(1, loaded.base + len(loaded.entries))
    finally:
        storage.close()


def test_a_load_uses_the_checkpoint_only_up_to_what_the_caller_allows(tmp_path):
    _stored(tmp_path)
    stale = tmp_path / ".checkpoint.x1y2.tmp"  # a write a crash cut short: removed on open
    stale.write_bytes(b"half a checkpoint")
    assert _load(tmp_path)[0].checkpoint == checkpoint_at(6)
    assert _load(tmp_path, checkpoint_max=5)[0].checkpoint is None
    assert _load(tmp_path, checkpoint_max=-1)[0].checkpoint is None
    assert not stale.exists()


@pytest.mark.parametrize("damage", ["checkpoint byte", "checkpoint cut", "another log",
                                    "log cut before it"])
def test_a_checkpoint_that_does_not_fit_its_log_is_ignored_and_the_whole_log_scanned(
        tmp_path, caplog, damage):
    _stored(tmp_path)
    cp, log = tmp_path / "checkpoint", tmp_path / "log"
    if damage == "checkpoint byte":
        data = bytearray(cp.read_bytes())
        data[-3] ^= 0x40
        cp.write_bytes(bytes(data))
    elif damage == "checkpoint cut":
        cp.write_bytes(cp.read_bytes()[:-1])
    elif damage == "another log":  # the same entries, framed in other records: other offsets
        log.unlink()
        other = FileStorage(tmp_path, FsyncPolicy.ALWAYS)
        other.write_entries(1, [entry(i) for i in range(1, 11)])
        other.write_commit(10)
        other.close()
    else:
        data = log.read_bytes()
        log.write_bytes(data[: len(data) // 3])
    with caplog.at_level(logging.WARNING):
        loaded, entries = _load(tmp_path)
    assert loaded.checkpoint is None
    length = 3 if damage == "log cut before it" else 10  # whole frames left in a third of it
    assert loaded.commit == length and entries == [entry(i) for i in range(1, length + 1)]
    assert ("damaged checkpoint" in caplog.text) == damage.startswith("checkpoint")


def test_one_checkpoint_is_written_at_a_time_and_a_failed_one_leaves_the_last(tmp_path,
                                                                             monkeypatch,
                                                                             caplog):
    _stored(tmp_path, checkpoint_at_entry=4)
    storage = FileStorage(tmp_path, FsyncPolicy.NONE)
    storage.load(checkpoint_max=100)
    release = threading.Event()
    real = checkpoint_module.replace_durably

    def slow(path, data):
        release.wait(10)
        real(path, data)

    monkeypatch.setattr(checkpoint_module, "replace_durably", slow)
    storage.write_checkpoint(checkpoint_at(8))
    storage.write_checkpoint(checkpoint_at(9))  # the first is still in flight: skipped
    release.set()
    storage.checkpoints.wait()
    assert (storage.checkpoints.written, storage.checkpoints.skipped) == (1, 1)

    def failing(path, data):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(checkpoint_module, "replace_durably", failing)
    with caplog.at_level(logging.ERROR):
        storage.write_checkpoint(checkpoint_at(10))
        storage.checkpoints.wait()
    assert storage.checkpoints.failures == 1 and "No space left" in caplog.text
    storage.close()
    assert _load(tmp_path)[0].checkpoint == checkpoint_at(8)


def test_a_checkpoint_past_the_log_is_a_bug_not_a_file(tmp_path):
    storage = FileStorage(tmp_path, FsyncPolicy.ALWAYS)
    storage.write_view(0, 0)
    storage.write_entries(1, [entry(1)])
    with pytest.raises(ValueError, match="checkpoint at entry 2"):
        storage.write_checkpoint(checkpoint_at(2))
    storage.close()
    assert not (tmp_path / "checkpoint").exists()


def test_checkpoint_every_must_not_be_negative():
    with pytest.raises(ValueError, match="checkpoint_every"):
        ReplicaConfig(cluster=1, replica=0, n=3, checkpoint_every=-1)


def test_a_replica_restarted_from_its_checkpoint_holds_what_a_whole_replay_builds(tmp_path):
    """Replicas checkpoint every 10 applied entries. A backup restarted with its application at
    45 starts from its checkpoint and applies only what follows; restarted with its application
    at 0 it starts from the checkpoint's table too, and applies (and emits) every entry again,
    read back from storage, for its application. Either way its client table is the others'.
    Then, with the leader gone, it leads a view change and brings a replica that missed
    everything up from entry 1, read back from before its checkpoint."""
    storages = [FileStorage(tmp_path / str(r)) for r in range(3)]
    net = Net(3, storages=storages, checkpoint_every=10, log_memory=4)
    net.down.add(2)
    net.commit_each(range(1, 46))
    assert net.replicas[1].applied == 45 and net.replicas[1].stats.checkpoints == 4
    tables = net.replicas[0].clients

    def restart(applied_index: int) -> list:
        storages[1].close()
        storages[1] = net.storages[1] = FileStorage(tmp_path / "1")
        return net.restart(1, applied_index=applied_index)

    out = restart(45)
    replica = net.replicas[1]
    assert replica.checkpointed == 40 and replica.applied == 45 and replica.clients == tables
    assert not [c for c in out if isinstance(c, Committed)]
    out = restart(0)
    assert [c.index for c in out if isinstance(c, Committed)] == list(range(1, 46))
    assert net.replicas[1].clients == tables
    assert net.replicas[1].checkpointed == 40 and net.replicas[1].stats.checkpoints == 0
    restart(45)
    net.down = {0}
    net.pump()
    for _ in range(10):
        net.tick(10_000_000)
        net.pump()
    assert net.replicas[1].view == 1 and net.replicas[1].status is Status.NORMAL
    assert net.replicas[2].commit == 45
    assert net.replicas[2].log == [entry for entry in net.replicas[0].log]
    assert [c.client_id for c in net.committed[2]] == list(range(1, 46))
    for storage in storages:
        storage.close()


@pytest.mark.parametrize("option", [("--checkpoint-every", "-1"), ("--log-memory", "0"),
                                    ("--fill-max", "0"), ("--snapshot-every", "-1")])
def test_a_replica_process_refuses_bad_memory_and_checkpoint_options(tmp_path, capsys, option):
    from agora.decision.transport import replica_main

    with pytest.raises(SystemExit) as exit_:
        replica_main.run(["--id", "0", "--peers", ":1,:2,:3", "--dir", str(tmp_path), *option])
    assert exit_.value.code == 2 and option[0] in capsys.readouterr().err
    assert not any(tmp_path.iterdir())  # refused before anything was created


def test_a_running_storage_lets_go_of_the_places_its_index_holds(tmp_path, monkeypatch):
    """Memory holds the places of at most two checkpoint intervals' entries; older entries are
    read back through the index file (written 7 places at a time here), before and after a
    reopen."""
    monkeypatch.setattr(checkpoint_module, "INDEX_SLICE", 7)
    storage = FileStorage(tmp_path, FsyncPolicy.NONE)
    storage.write_view(0, 0)
    for i in range(1, 201):
        storage.write_entries(i, [entry(i)])
        storage.write_commit(i)
        if i % 20 == 0:
            storage.write_checkpoint(checkpoint_at(i))
            storage.checkpoints.wait()
    assert len(storage._where) <= 40 and (tmp_path / "index").stat().st_size == 8 * 200
    assert storage.read_entries(1, 200) == [entry(i) for i in range(1, 201)]
    storage.close()
    length = 200
    for damage in ("none", "index cut", "index gone"):
        if damage == "index cut":
            (tmp_path / "index").write_bytes((tmp_path / "index").read_bytes()[:800])
        elif damage == "index gone":
            (tmp_path / "index").unlink()
        again = FileStorage(tmp_path, FsyncPolicy.NONE)
        loaded = again.load(keep=5, checkpoint_max=10**6)
        assert loaded.checkpoint == checkpoint_at(length) and loaded.base == length
        length += 1
        again.write_entries(length, [entry(length)])
        again.write_commit(length)
        again.write_checkpoint(checkpoint_at(length))  # the whole index again if it fell short
        again.checkpoints.wait()
        log = [entry(i) for i in range(1, length + 1)]
        assert again.read_entries(1, length) == log  # through the index
        again.close()
        assert (tmp_path / "index").stat().st_size == 8 * length
