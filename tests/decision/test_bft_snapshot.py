"""Restart snapshots of a Byzantine-mode replica: a restart from one has the state a replay of
every record gives, on simulated runs with crashes, Byzantine peers and deadlines; the file
storage marks them and indexes the batches before them, replays from further back when a mark
or the index is damaged, and refuses a damaged snapshot as damage in the log; the kept stable
checkpoints live beside the records, the latest in memory."""

from __future__ import annotations

import logging

import msgspec
import pytest

from agora.decision.bft import BftConfig, BftReplica
from agora.decision.bft import snapshot as bft_snapshot
from agora.decision.bft.core import Stable
from agora.decision.bft.kept import KeptStables
from agora.decision.bft.storage import (
    ExecRecord,
    FileBftStorage,
    MemoryBftStorage,
    SnapshotRecord,
    StableRecord,
    StorageDamaged,
    ViewRecord,
)
from agora.decision.sim.bft_cluster import BftCluster, options_swarm_bft, run_bft
from agora.decision.sim.swarm import run
from tests.decision.test_bft_durable import commit, durable_net
from tests.decision.test_bft_replica import CLUSTER, Net


def replayed_state(r: BftReplica) -> dict:
    """What a restart rebuilds; marks of requests and certificates already executed (which
    nothing reads) left out."""
    executed = r.executed
    return {
        "view": (r.view, r.phase, r.new_view, r.next_seq),
        "slots": (r.slots, r.slot_ns, r.prepares, r.commits, r.commit_sent),
        "sets": (r.pset, r.qset, r.committed, r.waiting, r.timings, r.seen_ns),
        "assigned": {(c, n) for c, n in r.assigned if r.clients.get(c, (0,))[0] < n},
        "certified": {s for s in r.certified if not r._decided(s)},
        "executed": (executed, r.chain, r.request_index, r.delivered, r.clients),
        "held": [(h.index, h.request, h.abandoned) for h in r.held],
        "undecided": {s: ([h.index for h in u.held], u.since_ns, u.elapsed, u.timing)
                      for s, u in r.undecided.items()},
        "stable": (r.stable, [r.stables[k] for k in range(len(r.stables))]),
        "counters": (r.stats.committed, r.stats.deadline_total, r.stats.deadline_abandoned),
        "log": [(r.log.digest_at(s), r.log.chain_at(s))
                for s in range(min(r.stable.seq, executed) + 1, executed + 1)],
    }


class _WholeReplay(MemoryBftStorage):
    """The same records and kept stable checkpoints, loaded without a snapshot."""

    def __init__(self, storage: MemoryBftStorage) -> None:
        super().__init__()
        self.records = storage.records[: storage.flushed]
        self.kept = storage.kept[: storage.kept_flushed]
        self.flush()

    def load(self, snapshot_max: int = -1) -> list:
        return super().load(-1)


def _storages_after_a_run(seed: int, snapshot_every: int) -> tuple[BftConfig, list, object]:
    options = options_swarm_bft(seed, n=4)
    options = msgspec.structs.replace(options, replica=msgspec.structs.replace(
        options.replica, snapshot_every=snapshot_every))
    clusters: list[BftCluster] = []

    def make(cluster_options, s):
        clusters.append(BftCluster(cluster_options, s, options.replica, {
            r: frozenset(kinds) for r, kinds in options.byzantine}))
        return clusters[0]

    result = run(options.base, make_cluster=make)
    assert result.ok, result.failures[:3]
    cluster = clusters[0]
    return options.replica, cluster.bft_storages, cluster


@pytest.mark.parametrize("seed", [1, 7, 10, 45, 52])
def test_a_restart_from_a_snapshot_has_the_state_a_whole_replay_gives(seed):
    config, storages, cluster = _storages_after_a_run(seed, snapshot_every=2)
    compared = 0
    for r, storage in enumerate(storages):
        if r not in cluster.correct:
            continue
        storage.flush()
        snaps = [rec for rec in storage.records[: storage.flushed]
                 if type(rec) is SnapshotRecord]
        if not snaps:
            continue
        config_r = msgspec.structs.replace(config, replica=r)
        whole = BftReplica(config_r, cluster.keyring, _WholeReplay(storage))
        whole.start(0)
        from_snapshot = BftReplica(config_r, cluster.keyring, storage,
                                   applied_index=snaps[-1].delivered)
        from_snapshot.start(0)
        assert from_snapshot.stats.started_from == snaps[-1].executed > 0
        assert replayed_state(from_snapshot) == replayed_state(whole)
        compared += 1
    assert compared >= 2


def test_agora_sim_gives_the_same_traces_with_a_snapshot_after_every_batch(monkeypatch):
    restores = []
    restore = bft_snapshot.Snapshots._restore

    def counted(self, snap, now):
        restores.append(snap.executed)
        return restore(self, snap, now)

    monkeypatch.setattr(bft_snapshot.Snapshots, "_restore", counted)
    for seed in range(40):
        options = options_swarm_bft(seed, n=4)
        traces = []
        for every in (0, 1):
            replica = msgspec.structs.replace(options.replica, snapshot_every=every)
            traces.append(run_bft(msgspec.structs.replace(options, replica=replica)))
        assert traces[0] == traces[1], seed
    assert len(restores) >= 10


def test_the_replica_snapshots_every_so_many_batches_and_restarts_from_the_latest():
    net, storages = durable_net()
    for replica in net.replicas:
        replica.config = msgspec.structs.replace(replica.config, snapshot_every=2)
    commit(net, storages, [b"a", b"b", b"c", b"d", b"e"])
    snaps = [r for r in storages[2].records if type(r) is SnapshotRecord]
    assert [s.executed for s in snaps] == [2, 4] and net.replicas[2].stats.snapshots == 2
    assert [s.delivered for s in snaps] == [2, 4]
    assert storages[2].load(snapshot_max=4)[0] == snaps[1]
    assert storages[2].load(snapshot_max=3)[0] == snaps[0]
    assert not any(type(r) is SnapshotRecord for r in storages[2].load(snapshot_max=1))


PAYLOADS = [b"a", b"b", b"c", b"d", b"e", b"f", b"g"]


def _write_batches(tmp_path) -> None:
    """A file storage holding 7 executed batches with snapshots after 2, 4 and 6."""
    storage = FileBftStorage(tmp_path)
    net, _ = durable_net()
    replica = net.replicas[1]
    replica.config = msgspec.structs.replace(replica.config, snapshot_every=2)
    replica.storage = replica.log.storage = storage
    for payload in PAYLOADS:
        net.submit(payload)
        net.run()
        storage.flush()
    storage.close()


def _reopened(tmp_path, snapshot_max: int) -> tuple[FileBftStorage, list]:
    storage = FileBftStorage(tmp_path)
    try:
        return storage, list(storage.load(snapshot_max))
    except BaseException:
        storage.close()
        raise


def test_file_storage_starts_at_the_latest_marked_snapshot_and_reads_older_batches_back(
        tmp_path):
    _write_batches(tmp_path)
    storage, records = _reopened(tmp_path, snapshot_max=100)
    assert type(records[0]) is SnapshotRecord and records[0].executed == 6
    assert [r.seq for r in records if type(r) is ExecRecord] == [7]
    assert len(storage._where) == 1  # the places of 1..6 are in the index file
    assert [b[0].payload for b in storage.read_batches(1, 7)] == PAYLOADS
    storage.close()
    # the application delivered less: the snapshot before (the latest two are offered), or
    # none
    storage, records = _reopened(tmp_path, snapshot_max=5)
    assert records[0].executed == 4
    storage.close()
    storage, records = _reopened(tmp_path, snapshot_max=3)
    assert not any(type(r) is SnapshotRecord for r in records)
    assert [r.seq for r in records if type(r) is ExecRecord] == [1, 2, 3, 4, 5, 6, 7]
    storage.close()


@pytest.mark.parametrize("damage", ["marks", "index"])
def test_a_damaged_mark_or_a_short_index_falls_back_to_a_longer_replay(tmp_path, damage,
                                                                    caplog):
    _write_batches(tmp_path)
    storage, whole = _reopened(tmp_path, snapshot_max=-1)
    storage.close()
    if damage == "marks":
        (tmp_path / "bft.snapshots").write_bytes(b"\x07" * 12)
    else:
        with open(tmp_path / "bft.index", "r+b") as f:
            f.truncate(8 * 5)  # short of the snapshot after 6 batches
    with caplog.at_level(logging.WARNING):
        storage, records = _reopened(tmp_path, snapshot_max=100)
    if damage == "index":  # the snapshot after 4 batches still has its index
        assert records[0].executed == 4 and "index is short" in caplog.text
    else:
        assert records == whole
    assert [b[0].payload for b in storage.read_batches(1, 7)] == PAYLOADS
    storage.close()


def test_a_damaged_snapshot_is_damage_in_the_log(tmp_path, caplog):
    _write_batches(tmp_path)
    storage, _ = _reopened(tmp_path, snapshot_max=100)
    offset = storage._marks[-1][0]
    storage.close()
    with open(tmp_path / "bft.log", "r+b") as f:
        f.seek(offset + 12)
        f.write(b"\xff\xff")
    with caplog.at_level(logging.WARNING), pytest.raises(StorageDamaged):
        _reopened(tmp_path, snapshot_max=100)
    assert "not there" in caplog.text  # the mark led nowhere; the scan, to the damage


def test_a_mark_that_cannot_be_written_is_logged_and_the_restart_replays_more(
        tmp_path, monkeypatch, caplog):
    from agora.decision.bft import storage as bft_storage

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(bft_storage, "replace_durably", full_disk)
    with caplog.at_level(logging.WARNING):
        _write_batches(tmp_path)  # snapshots after 2, 4 and 6: none marked, nothing raised
    assert caplog.text.count("was not marked") == 3
    monkeypatch.undo()
    storage, records = _reopened(tmp_path, snapshot_max=100)
    assert not any(type(r) is SnapshotRecord for r in records)  # a whole replay
    assert [b[0].payload for b in storage.read_batches(1, 7)] == PAYLOADS
    storage.close()


def test_file_storage_marks_only_what_reached_the_file(tmp_path):
    storage = FileBftStorage(tmp_path)
    storage.append(ViewRecord(1))
    storage.append(StableRecord(0, b"", ()))
    storage.flush()
    assert not (tmp_path / "bft.snapshots").exists()
    storage.close()


def test_snapshot_every_must_not_be_negative():
    with pytest.raises(ValueError, match="snapshot_every"):
        BftConfig(cluster=CLUSTER, replica=0, n=4, snapshot_every=-1)


def test_kept_stable_checkpoints_live_beside_the_records_and_a_torn_one_is_cut(tmp_path):
    stables = [Stable(16 * k, bytes([k]) * 32, ()) for k in (1, 2, 3)]
    storage = FileBftStorage(tmp_path)
    for stable in stables:
        storage.keep_stable(stable)
    storage.flush()
    assert storage.kept_stable(32) == stables[1] and storage.kept_stable(40) is None
    storage.close()
    with open(tmp_path / "bft.stables", "ab") as f:
        f.write(b"\x40\x00\x00\x00torn")  # a crash mid-append
    storage = FileBftStorage(tmp_path)
    list(storage.load(snapshot_max=-1))  # a whole replay cuts the torn one too
    assert storage.kept_stables(100) == stables and storage.kept_stables(32) == stables[:2]
    storage.keep_stable(Stable(64, b"\x04" * 32, ()))
    storage.flush()
    assert [s.seq for s in storage.kept_stables(100)] == [16, 32, 48, 64]
    assert storage.kept_stable(64).seq == 64 and storage.kept_stable(16) == stables[0]
    storage.close()


def test_a_replay_puts_back_the_kept_stable_checkpoints_a_power_cut_lost(tmp_path):
    """Under fsync none a power cut can take the tail of ``bft.stables`` with it; a restart
    that replays the records (here: the whole log, no snapshot) offers every kept one again,
    and the storage stores those it lacks, in order, so later Fills take their usual steps."""
    net = Net(checkpoint_every=2, fill_max=2)  # a stable checkpoint kept every 2 batches
    storages = [FileBftStorage(tmp_path / str(r)) for r in range(4)]
    configs = [BftConfig(cluster=CLUSTER, replica=r, n=4, checkpoint_every=2, fill_max=2,
                         snapshot_every=0) for r in range(4)]
    for r in range(4):
        net.replicas[r] = BftReplica(configs[r], net.keys, storages[r])
        net.replicas[r].start(0)
    commit(net, storages, [b"%d" % k for k in range(8)])
    kept = storages[2].kept_stables(100)
    assert len(kept) >= 3
    second = storages[2]._kept_where[1]
    storages[2].close()
    with open(tmp_path / "2" / "bft.stables", "r+b") as f:
        f.truncate(second)  # only the first survived
    storage = FileBftStorage(tmp_path / "2")
    BftReplica(configs[2], net.keys, storage).start(0)
    storage.flush()
    assert storage.kept_stables(100) == kept
    assert storage.kept_stable(kept[-1].seq) == kept[-1]
    storage.close()
    again = FileBftStorage(tmp_path / "2")  # a second replay stores none twice
    BftReplica(configs[2], net.keys, again).start(0)
    again.flush()
    assert again.kept_stables(100) == kept
    again.close()
    for other in storages[:2] + storages[3:]:
        other.close()


def test_a_replica_holds_the_latest_kept_proofs_and_reads_older_ones_back():
    storage = MemoryBftStorage()
    kept = KeptStables(storage, keep=2)
    stables = [Stable(10 * k, bytes([k]) * 32, ()) for k in range(1, 8)]
    for stable in stables:
        storage.keep_stable(stable)
        kept.append(stable)
    assert len(kept.recent) < 4 and [kept[k] for k in range(7)] == stables
    assert kept.within(behind=15, reach=45, executed=70) == stables[3]  # the furthest in reach
    assert kept.within(behind=15, reach=18, executed=70) == stables[1]  # none: the nearest past
    assert kept.within(behind=65, reach=100, executed=65) is None  # not executed yet
    storage.kept.remove(stables[0])  # a proof the storage lost
    assert kept.within(behind=0, reach=12, executed=70) is None


def test_a_marks_replacement_a_crash_cut_short_is_removed_on_open(tmp_path):
    leftover = tmp_path / ".bft.snapshots.k3x9.tmp"
    leftover.write_bytes(b"half a mark")
    FileBftStorage(tmp_path).close()
    assert not leftover.exists()
