"""Targeted scenarios on the simulated cluster: one named fault each, then heal and converge.

Each test builds a cluster on a clean network, drives it to the moment the fault matters, applies
the fault through the simulator's API, checks the fault's specific consequence, then heals and
requires the checker to be clean and the cluster to converge (every request committed on every
replica).
"""

from __future__ import annotations

from collections.abc import Callable

import msgspec
import pytest

from agora.decision.consensus import FsyncPolicy, ReplicaConfig, Status
from agora.decision.sim import Cluster, ClusterOptions, NetworkOptions

MS = 1_000_000


def make(n: int = 3, *, seed: int = 1, fsync: FsyncPolicy = FsyncPolicy.ALWAYS,
         requests: int = 80, clients: int = 4, think_ns_mean: int = 500_000,
         budget_prob: float = 0.0, network: NetworkOptions | None = None,
         **replica: int) -> Cluster:
    options = ClusterOptions(
        n=n, clients=clients, requests=requests, think_ns_mean=think_ns_mean,
        budget_prob=budget_prob, budget_min_ns=5 * MS, budget_max_ns=10 * MS, fsync=fsync,
        replica=ReplicaConfig(cluster=42, replica=0, n=n, **replica),
        network=network or NetworkOptions(),
    )
    return Cluster(options, seed)


def advance_until(cluster: Cluster, condition: Callable[[], bool], limit_ns: int = 500 * MS,
                  step_ns: int = 20_000) -> None:
    end = cluster.now + limit_ns
    while not condition():
        assert cluster.now < end, "the scenario never reached its moment"
        assert cluster.run_until(cluster.now + step_ns), cluster.failures
    assert cluster.checker.ok, cluster.checker.failures


def converge(cluster: Cluster) -> None:
    cluster.workload = False
    cluster.heal()

    def done() -> bool:
        return cluster.checker.converged(cluster.n, any(c.busy for c in cluster.clients))

    assert cluster.run_until(cluster.now + 3_000 * MS, stop=done), cluster.failures
    assert cluster.checker.ok, cluster.checker.failures
    assert done(), cluster.checker.liveness_report(cluster.n)
    assert len(cluster.checker.by_request) == cluster.submitted > 0


def top(cluster: Cluster) -> int:
    return max(cluster.checker.committed, default=0)


def test_leader_crash_mid_batch():
    cluster = make(3, pipeline_max=2, batch_max=8, clients=6, think_ns_mean=50_000,
                   requests=150)
    leader = cluster.replicas[0]

    def batch_in_flight() -> bool:
        return leader.op - leader.commit >= 3 and top(cluster) >= 10

    advance_until(cluster, batch_in_flight)
    cluster.crash(0)
    advance_until(cluster, lambda: cluster.leader() not in (None, 0) and top(cluster) > 40)
    assert sum(s.views_started for s in cluster.stats()) >= 1
    converge(cluster)


def test_leader_isolated_in_a_minority_partition():
    cluster = make(5, requests=200)
    advance_until(cluster, lambda: top(cluster) >= 10)
    old = cluster.leader()
    groups = [0] * 5
    groups[old] = 1
    cluster.partition(groups)
    before = top(cluster)
    advance_until(cluster, lambda: cluster.leader() not in (None, old)
                  and top(cluster) >= before + 20)
    isolated = cluster.replicas[old]
    assert isolated.view < max(node.view for node in cluster.replicas)  # it never learned
    converge(cluster)
    assert cluster.replicas[old].status is Status.NORMAL


def test_duplicated_and_reordered_prepares():
    network = NetworkOptions(duplicate=0.5, delay_sigma=1.5, tail_prob=0.3, tail_alpha=1.2)
    cluster = make(3, network=network, pipeline_max=8, batch_max=4, think_ns_mean=100_000,
                   clients=5, requests=200)
    advance_until(cluster, lambda: top(cluster) >= 120, limit_ns=3_000 * MS)
    converge(cluster)


def test_replica_restarting_with_a_lost_tail():
    cluster = make(3, fsync=FsyncPolicy.NONE, requests=200)
    advance_until(cluster, lambda: top(cluster) >= 20 and cluster.storages[1].pending)
    acknowledged = cluster.replicas[1].op
    cluster.replicas[1], node = None, cluster.replicas[1]
    cluster.retired_stats.append(node.stats)
    cluster.storages[1].crash(survive=0)
    assert cluster.storages[1].lost_records > 0
    assert len(cluster.storages[1].load().entries) < acknowledged
    cluster.restart(1)
    assert cluster.replicas[1].status is Status.RECOVERING
    advance_until(cluster, lambda: cluster.replicas[1].status is Status.NORMAL)
    # now the leader goes: what replica 1 acknowledged before losing it must survive anyway
    cluster.crash(0)
    advance_until(cluster, lambda: cluster.leader() not in (None, 0) and top(cluster) >= 60)
    converge(cluster)


def test_clock_jumps_on_the_leader():
    cluster = make(3, budget_prob=1.0, requests=200, think_ns_mean=200_000)
    leader = cluster.replicas[0]
    advance_until(cluster, lambda: top(cluster) >= 20
                  and any(e.budget_ns for e in leader.log[leader.commit:]))
    cluster.jump_clock(0, 1_000 * MS)  # forward: what is in flight misses its deadline
    advance_until(cluster, lambda: top(cluster) >= 40)
    cluster.jump_clock(0, -2_000 * MS)  # backward: timers restart, stamps freeze
    advance_until(cluster, lambda: top(cluster) >= 80)
    converge(cluster)
    budgeted, abandoned = cluster.checker.deadline_figures()
    assert budgeted > 0 and 0 < abandoned < budgeted


def test_flapping_partitions():
    cluster = make(5, requests=200, think_ns_mean=200_000)
    rng = cluster.rng

    def flap() -> None:
        cluster.partition([rng.randrange(2) for _ in range(5)])
        if cluster.now < 300 * MS:
            cluster.after(rng.randint(1 * MS, 6 * MS), flap)

    cluster.after(5 * MS, flap)
    assert cluster.run_until(300 * MS), cluster.failures
    assert cluster.checker.ok, cluster.checker.failures
    converge(cluster)


def test_whole_cluster_restart_with_durable_storage():
    cluster = make(3, requests=120)
    advance_until(cluster, lambda: top(cluster) >= 30)
    for replica in range(3):
        cluster.crash(replica)
    assert cluster.run_until(cluster.now + 20 * MS)
    for replica in range(3):
        cluster.restart(replica, applied_index=0)
    converge(cluster)


def test_slow_replica_does_not_hold_the_cluster_back():
    cluster = make(3, requests=100,
                   network=NetworkOptions(slow_factor=200))
    cluster.network.slow = {2}
    advance_until(cluster, lambda: top(cluster) >= 60)
    assert cluster.checker.next_index.get(2, 1) - 1 < top(cluster)  # it lags, commits go on
    converge(cluster)


def test_run_options_are_plain_data():
    options = make(3).options
    assert msgspec.json.decode(msgspec.json.encode(options), type=ClusterOptions) == options


@pytest.mark.parametrize(("backup_acks", "hops"), [(True, 3), (False, 4)])
def test_fast_path_costs_one_round_trip_between_replicas(backup_acks: bool, hops: int):
    # every hop takes 100 us. The leader's reply: client -> leader -> backups -> leader ->
    # client, four hops; a backup's acknowledgement settles the request one hop sooner
    hop = NetworkOptions(delay_min_ns=100_000, delay_median_ns=100_001, delay_sigma=0.0)
    cluster = make(3, clients=1, requests=30, think_ns_mean=1_000_000, network=hop,
                   backup_acks=backup_acks)
    advance_until(cluster, lambda: top(cluster) >= 30)
    converge(cluster)
    assert sorted(cluster.latencies_ns)[len(cluster.latencies_ns) // 2] <= hops * 100_000 + 10
    assert min(cluster.latencies_ns) >= hops * 100_000
