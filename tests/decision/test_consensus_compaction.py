"""Log compaction in the crash-tolerant mode: the floor, what a replica releases, and who may
still ask for what (``consensus/core.py``'s module notes)."""

from __future__ import annotations

import pytest

from agora.decision.consensus import Committed, CompactedLogError, MemoryStorage, Status
from agora.decision.consensus.messages import Commit, RequestStartView, StartView
from agora.decision.sim.swarm import run_seed

from .test_consensus_replica import CLUSTER, Net


def _committed(net: Net, clients: range) -> None:
    """Commit request 1 of each client, then tell every application it keeps what it has."""
    net.commit_each(clients)
    for replica in net.replicas:
        replica.release(replica.applied)


def _heal(net: Net) -> None:
    """Bring every replica back and let the heartbeats carry the log to it."""
    net.down.clear()
    for _ in range(3):
        net.tick(3_000_000)
        net.pump()


def _compacted_at_40(net: Net) -> None:
    """Checkpoints every 10: 45 commits put every replica's at 40 (each notes it at its next
    tick); the next commits carry it to the leader in PrepareOks, whose floor of 40 reaches the
    backups in a Commit; the commits after that release entries 1..40 everywhere."""
    _committed(net, range(1, 46))
    _committed(net, range(46, 48))
    _committed(net, range(48, 50))


def test_every_replica_compacts_up_to_the_lowest_durable_checkpoint():
    """Checkpoints every 10 entries: once all three hold one at 40, the leader broadcasts the
    floor and each replica releases entries 1..40 when it next applies."""
    net = Net(3, checkpoint_every=10, log_memory=4)
    _compacted_at_40(net)
    assert [r.storage.kept_checkpoint for r in net.replicas] == [40, 40, 40]
    floors = [m.floor for _, _, m in net.sent if type(m) is Commit]
    assert max(floors) == 40
    assert [r.floor for r in net.replicas] == [40, 40, 40]
    assert [r.storage.compacted for r in net.replicas] == [40, 40, 40]
    assert [r.stats.compactions for r in net.replicas] == [1, 1, 1]
    with pytest.raises(LookupError, match="compacted"):
        net.storages[1].read_entries(40, 1)
    assert net.storages[1].read_entries(41, 1)[0].client_id == 41


def test_a_replica_that_is_down_pins_the_floor_and_catches_up_from_entry_one():
    """Replica 2 never reported a checkpoint: the floor stays 0, nothing is released, and when
    it comes up with an empty disk (it never started) it gets the whole log."""
    net = Net(3, checkpoint_every=10, log_memory=4)
    net.down.add(2)
    _committed(net, range(1, 46))
    assert [r.floor for r in net.replicas] == [0, 0, 0]
    assert [r.storage.compacted for r in net.replicas] == [0, 0, 0]
    _heal(net)
    assert net.replicas[2].commit == 45
    assert [c.client_id for c in net.committed[2]] == list(range(1, 46))


def test_the_floor_stays_at_the_last_checkpoint_a_stopped_replica_reported():
    """Replica 2 reports its checkpoint at 20, then stops: the others release only up to 20,
    so the entries it will ask for on its return are still there."""
    net = Net(3, checkpoint_every=10, log_memory=4)
    _committed(net, range(1, 26))
    _committed(net, range(26, 28))  # its PrepareOks tell the leader
    net.down.add(2)
    _committed(net, range(28, 66))
    assert net.replicas[0].kept[2] == 20
    assert [net.replicas[r].storage.compacted for r in (0, 1)] == [20, 20]
    _heal(net)
    assert net.replicas[2].commit == 65
    assert [c.client_id for c in net.committed[2]] == list(range(1, 66))


def test_an_old_request_for_a_compacted_part_of_the_log_gets_the_log_from_the_compaction():
    """The network may deliver a repair request long after it was sent: the leader answers
    from what it still holds, which the requester's commit has passed."""
    net = Net(3, checkpoint_every=10, log_memory=4)
    _compacted_at_40(net)
    leader = net.replicas[0]
    out = leader.on_message(RequestStartView(CLUSTER, 1, 0, 3), net.now)
    (reply,) = [item.message for item in out if type(item.message) is StartView]
    assert reply.base == 40 and reply.entries[0].index == 41


def test_a_restart_below_what_its_application_released_is_refused_by_name():
    net = Net(3, checkpoint_every=10, log_memory=4)
    _compacted_at_40(net)
    assert net.storages[1].compacted == 40
    with pytest.raises(CompactedLogError, match=r"entries 1\.\.40 were compacted"):
        net.restart(1, applied_index=39)


def test_a_restart_from_the_checkpoint_applies_again_only_what_its_application_lacks():
    """Entries 1..40 are compacted and the checkpoint is at 40. Restarted with its
    application at 42, a backup takes the table at 40, applies 41 and 42 again without
    emitting them, and emits the rest; with its application at 40 it emits from 41. Either
    way its client table ends as the leader's."""
    net = Net(3, checkpoint_every=10, log_memory=4)
    _compacted_at_40(net)
    assert net.storages[1].compacted == 40
    table = dict(net.replicas[0].clients)
    commit = net.replicas[1].commit
    out = net.restart(1, applied_index=42)
    assert [c.index for c in out if type(c) is Committed] == list(range(43, commit + 1))
    assert net.replicas[1].checkpointed == 40 and net.replicas[1].applied == commit
    out = net.restart(1, applied_index=40)
    assert [c.index for c in out if type(c) is Committed] == list(range(41, commit + 1))
    net.pump()
    net.tick(3_000_000)
    net.pump()
    assert net.replicas[1].status is Status.NORMAL and net.replicas[1].commit == 49
    assert net.replicas[1].clients == table


def test_memory_storage_refuses_to_compact_past_its_checkpoint():
    storage = MemoryStorage()
    with pytest.raises(ValueError, match="newest durable checkpoint is at 0"):
        storage.compact(1)


def test_the_simulator_compacts_and_stays_safe():
    """Seeds that draw frequent checkpoints compact, under crashes, partitions and lost
    writes; the checker finds nothing (``agora sim`` runs thousands of these in CI)."""
    results = [run_seed(seed, n=3) for seed in range(510_000, 510_030)]
    assert all(result.ok for result in results), [r.failures for r in results if not r.ok]
    assert sum(result.compactions for result in results) > 0
