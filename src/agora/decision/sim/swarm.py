"""Swarm runs: fault rates drawn from the seed, a safety phase, a heal, a liveness phase.

:func:`options_swarm` turns a seed into :class:`SimOptions` (swarm testing: each run switches a
random subset of faults on, at random rates, so that rare combinations get explored). :func:`run`
executes one: during the **safety phase** the nemesis crashes and restarts replicas (never more
than ``f`` crashed or recovering at once: the fault model), partitions the network (random
majority/minority splits, the leader isolated, or flapping), makes replicas slow and jumps their
clocks, while the network drops, delays and duplicates messages and the clients submit requests.
Then the world **heals** (clean network, every replica restarted, no more jumps) and the
**liveness phase** must reach convergence within ``liveness_ns``: every request committed and
every replica has emitted every index. The checker watches throughout.

``run(options_swarm(seed))`` is a pure function of the seed: same failures, same figures, same
trace hash.
"""

from __future__ import annotations

import random
import statistics
from collections.abc import Callable

import msgspec

from agora.decision.consensus.config import Canary, ReplicaConfig
from agora.decision.consensus.storage import FsyncPolicy
from agora.decision.sim.cluster import Cluster, ClusterOptions
from agora.decision.sim.network import NetworkOptions


class SimOptions(msgspec.Struct, frozen=True, kw_only=True):
    seed: int
    cluster: ClusterOptions
    safety_ns: int = 150_000_000
    liveness_ns: int = 3_000_000_000
    nemesis_ns: int = 5_000_000  # the nemesis acts this often
    crash_prob: float = 0.0  # per nemesis step
    restart_ns_mean: int = 20_000_000
    partition_mode: str = "none"  # none | random | leader | flapping
    partition_prob: float = 0.0
    partition_ns_mean: int = 30_000_000
    slow_prob: float = 0.0
    jump_prob: float = 0.0
    jump_ns_max: int = 50_000_000
    writeback_prob: float = 0.5


class RunResult(msgspec.Struct, frozen=True):
    seed: int
    n: int
    ok: bool
    failures: list[str]
    commits: int
    requests: int
    replies: int
    view_changes: int
    crashes: int
    recoveries: int  # restarts that ran the recovery protocol (storage may have lost writes)
    lost_records: int  # unsynced log records the simulated disks lost in crashes
    latency_ns_mean: float
    latency_ns_p50: int
    latency_ns_p99: int
    deadline_requests: int
    deadline_abandoned: int
    trace_hash: str
    events: int
    sim_ns: int
    latencies_ns: list[int] = []
    queue_full_replies: int = 0  # requests a full leader queue turned away (and said so)
    compactions: int = 0  # storage prefixes replicas released (crash mode)

    @property
    def miss_rate(self) -> float:
        return self.deadline_abandoned / self.deadline_requests if self.deadline_requests else 0.0


def options_swarm(seed: int, *, n: int | None = None, canary: Canary = Canary.NONE,
                  requests: int | None = None) -> SimOptions:
    """Every fault rate and size from the seed; ``n`` and ``canary`` may be forced."""
    rng = random.Random(seed ^ 0x5EED_0F_FA17)
    n = n if n is not None else rng.choice((3, 3, 5))
    on = lambda p: rng.random() < p  # noqa: E731 - a coin per feature: swarm testing
    fsync = rng.choice(list(FsyncPolicy))
    if canary is Canary.TRUST_LOSSY_STORAGE:
        fsync = FsyncPolicy.NONE
    network = NetworkOptions(
        drop=rng.choice((0.0, 0.01, 0.05, 0.15)) if on(0.7) else 0.0,
        duplicate=rng.choice((0.01, 0.05, 0.2)) if on(0.5) else 0.0,
        delay_median_ns=rng.choice((50_000, 100_000, 300_000, 1_000_000)),
        delay_sigma=rng.choice((0.3, 0.7, 1.2)),
        tail_prob=rng.choice((0.01, 0.05, 0.2)) if on(0.6) else 0.0,
        tail_alpha=rng.choice((1.1, 1.5, 2.5)),
        slow_factor=rng.choice((5, 20, 100)),
    )
    replica = ReplicaConfig(
        cluster=rng.randrange(1, 1 << 32), replica=0, n=n,
        pipeline_max=rng.choice((1, 2, 8, 32)), batch_max=rng.choice((1, 4, 32)),
        heartbeat_ns=2_000_000, view_change_timeout_ns=rng.choice((8_000_000, 15_000_000)),
        resend_ns=3_000_000, canary=canary,
    )
    safety_ms = rng.choice((100, 100, 250, 600))  # a few long runs reach deeper histories
    cluster = ClusterOptions(
        n=n, clients=rng.randint(1, 6),
        requests=requests or rng.randint(40, 120) * safety_ms // 100,
        think_ns_mean=rng.choice((100_000, 1_000_000, 3_000_000)),
        budget_prob=rng.choice((0.0, 0.3, 0.8)),
        budget_min_ns=1_000_000, budget_max_ns=rng.choice((5_000_000, 40_000_000)),
        fsync=fsync, batch_records=rng.choice((2, 8, 32)),
        drift_ppm_max=rng.choice((0, 100, 50_000)),
        replica=replica, network=network,
    )
    partition_mode = rng.choice(("none", "random", "leader", "flapping")) if on(0.7) else "none"
    crash_prob = rng.choice((0.02, 0.1, 0.3)) if on(0.7) else 0.0
    if canary is Canary.TRUST_LOSSY_STORAGE:
        crash_prob = 0.3  # this canary needs crashes that lose acknowledged writes
    options = SimOptions(
        seed=seed, cluster=cluster, safety_ns=safety_ms * 1_000_000,
        crash_prob=crash_prob,
        restart_ns_mean=rng.choice((5_000_000, 30_000_000)),
        partition_mode=partition_mode,
        partition_prob=rng.choice((0.05, 0.2, 0.4)) if partition_mode != "none" else 0.0,
        partition_ns_mean=rng.choice((10_000_000, 40_000_000)),
        slow_prob=0.05 if on(0.3) else 0.0,
        jump_prob=0.05 if on(0.3) else 0.0,
        jump_ns_max=rng.choice((5_000_000, 100_000_000)),
    )
    # drawn last, so every other draw of a seed stays what it was before request batching
    batch_ns = rng.choice((100_000, 1_000_000, 5_000_000)) if on(0.5) else 0
    # then, as drawn last, a queue short enough for the clients to fill (queue-full replies)
    pending_max = rng.choice((1, 2)) if on(0.25) else replica.pending_max
    # and last, a log memory so small that replicas read committed entries back from storage
    log_memory = rng.choice((1, 4, 32)) if on(0.3) else replica.log_memory
    # and last, checkpoints often enough that restarts start from one (checkpoint.py)
    checkpoint_every = rng.choice((1, 5, 40)) if on(0.4) else replica.checkpoint_every
    replica = msgspec.structs.replace(replica, pending_max=pending_max, log_memory=log_memory,
                                      checkpoint_every=checkpoint_every)
    return msgspec.structs.replace(options, cluster=msgspec.structs.replace(
        cluster, request_batch_ns=batch_ns, replica=replica))


class Nemesis:
    """Random faults within the fault model, one decision every ``nemesis_ns``."""

    def __init__(self, cluster: Cluster, options: SimOptions) -> None:
        self.cluster = cluster
        self.options = options
        self.rng = cluster.rng
        self.active = True
        self.f = (cluster.n - 1) // 2

    def step(self) -> None:
        if not self.active:
            return
        c, o, rng = self.cluster, self.options, self.rng
        c.after(o.nemesis_ns, self.step)
        if o.crash_prob and rng.random() < o.crash_prob and c.down_or_recovering() < self.f:
            victim = c.leader() if rng.random() < 0.4 else rng.choice(c.up())
            if victim is not None:
                c.crash(victim)
                c.after(1 + int(rng.expovariate(1 / o.restart_ns_mean)),
                        lambda: self.active and c.restart(victim))
        if o.partition_prob and rng.random() < o.partition_prob:
            self._partition()
        if o.slow_prob and rng.random() < o.slow_prob:
            c.network.slow = {rng.randrange(c.n)} if rng.random() < 0.7 else set()
        if o.jump_prob and rng.random() < o.jump_prob:
            target = c.leader() if rng.random() < 0.5 else rng.randrange(c.n)
            if target is not None:
                c.jump_clock(target, rng.randint(-o.jump_ns_max // 4, o.jump_ns_max))
        if rng.random() < o.writeback_prob:
            rng.choice(c.storages).writeback()

    def _partition(self) -> None:
        c, o, rng = self.cluster, self.options, self.rng
        mode = o.partition_mode
        if mode == "leader":
            leader = c.leader()
            groups = [0] * c.n
            if leader is not None:
                groups[leader] = 1
        else:
            groups = [rng.randrange(2) for _ in range(c.n)]
        c.partition(groups)
        mean = o.partition_ns_mean // (10 if mode == "flapping" else 1)
        c.after(1 + int(rng.expovariate(1 / mean)),
                lambda: self.active and c.partition([0] * c.n))


def run(options: SimOptions, *,
        make_cluster: Callable[[ClusterOptions, int], Cluster] = Cluster) -> RunResult:
    """One simulated run: safety phase with faults, heal, liveness phase. ``make_cluster``
    builds the world (the Byzantine mode passes its own, ``bft_cluster.py``)."""
    cluster = make_cluster(options.cluster, options.seed)
    nemesis = Nemesis(cluster, options)
    cluster.after(options.nemesis_ns, nemesis.step)
    alive = cluster.run_until(options.safety_ns)
    if alive:
        nemesis.active = False
        cluster.workload = False
        cluster.heal()
        deadline = cluster.now + options.liveness_ns
        alive = cluster.run_until(deadline, stop=lambda: cluster.checker.converged(
            cluster.n, any(client.busy for client in cluster.clients)))
        busy = any(client.busy for client in cluster.clients)
        if alive and not cluster.checker.converged(cluster.n, busy):
            cluster.checker.fail(cluster.checker.liveness_report(cluster.n))
    return result_of(cluster, options.seed)


def result_of(cluster: Cluster, seed: int) -> RunResult:
    checker = cluster.checker
    failures = cluster.failures + checker.failures
    latencies = sorted(cluster.latencies_ns)
    budgeted, abandoned = checker.deadline_figures()
    return RunResult(
        seed=seed, n=cluster.n, ok=not failures, failures=failures,
        commits=max(checker.committed, default=0), requests=len(checker.submitted),
        replies=checker.replies,
        view_changes=sum(stats.views_started for stats in cluster.stats()),
        crashes=cluster.crashes,
        recoveries=sum(stats.recoveries for stats in cluster.stats()),
        lost_records=sum(storage.lost_records for storage in cluster.storages),
        latency_ns_mean=statistics.fmean(latencies) if latencies else 0.0,
        latency_ns_p50=latencies[len(latencies) // 2] if latencies else 0,
        latency_ns_p99=latencies[min(len(latencies) - 1, len(latencies) * 99 // 100)]
        if latencies else 0,
        deadline_requests=budgeted, deadline_abandoned=abandoned,
        trace_hash=cluster.trace_hash, events=cluster.events, sim_ns=cluster.now,
        latencies_ns=latencies,
        queue_full_replies=sum(client.queue_full_replies for client in cluster.clients),
        compactions=sum(getattr(stats, "compactions", 0) for stats in cluster.stats()),
    )


def run_seed(seed: int, *, n: int | None = None, canary: Canary = Canary.NONE) -> RunResult:
    """Replay exactly the run of ``seed`` (what ``agora sim --seed`` does)."""
    return run(options_swarm(seed, n=n, canary=canary))
