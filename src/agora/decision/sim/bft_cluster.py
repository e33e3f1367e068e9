"""The Byzantine-mode world: the CFT simulator's event loop, network, clocks and nemesis with
BFT replicas, BFT clients, up to f Byzantine replicas and a checker that trusts only the rest.

:class:`BftCluster` reuses :class:`~agora.decision.sim.cluster.Cluster` (its hooks for the
codec, reply type, clients and checker) and replaces replica construction; outputs of a
Byzantine replica pass through its :class:`~agora.decision.sim.byzantine.Byzantine` filter and
its ``Committed`` outputs are not checked (a faulty replica may emit anything).
:func:`options_swarm_bft` draws the faults from the seed (network faults as in CFT mode, and
crashes with restarts from each replica's records, ``bft/storage.py``: a crash keeps what the
replica flushed before its last sends, the failure model of a process crash), and
:func:`run_bft` runs the same safety phase / heal / liveness phase as ``swarm.run``.

What "heal" means here: the network heals, but Byzantine replicas stay Byzantine; liveness is
required of the correct replicas only.
"""

from __future__ import annotations

import random

import msgspec

from agora.decision.bft.auth import Keyring
from agora.decision.bft.client import BftClient
from agora.decision.bft.config import AuthMode, BftCanary, BftConfig
from agora.decision.bft.messages import ClientReply, decode
from agora.decision.bft.replica import BftReplica, Phase
from agora.decision.bft.storage import MemoryBftStorage
from agora.decision.consensus.messages import Committed, Outbox
from agora.decision.sim.byzantine import BEHAVIOURS, Byzantine
from agora.decision.sim.checker import Checker
from agora.decision.sim.cluster import Cluster, ClusterOptions
from agora.decision.sim.network import NetworkOptions
from agora.decision.sim.swarm import RunResult, SimOptions, options_swarm, run


class BftSimOptions(msgspec.Struct, frozen=True, kw_only=True):
    base: SimOptions
    replica: BftConfig
    byzantine: tuple[tuple[int, tuple[str, ...]], ...] = ()  # (replica, behaviours)


class BftChecker(Checker):
    """The CFT checker, told which replicas are correct: liveness is asked of them only."""

    def __init__(self, correct: frozenset[int], **kwargs: int) -> None:
        super().__init__(**kwargs)
        self.correct = correct

    def converged(self, replicas: int, clients_busy: bool) -> bool:
        if clients_busy or len(self.by_request) < len(self.submitted):
            return False
        top = max(self.committed, default=0)
        return all(self.next_index.get(r, 1) == top + 1 for r in self.correct)

    def liveness_report(self, replicas: int) -> str:
        top = max(self.committed, default=0)
        behind = {r: self.next_index.get(r, 1) - 1 for r in sorted(self.correct)
                  if self.next_index.get(r, 1) != top + 1}
        missing = sorted(set(self.submitted) - set(self.by_request))[:5]
        return (f"liveness: after heal, requests not committed {missing}; highest index {top}; "
                f"correct replicas behind (last emitted) {behind}")


class BftCluster(Cluster):
    decode_wire = staticmethod(decode)
    reply_type = ClientReply

    def __init__(self, options: ClusterOptions, seed: int, bft: BftConfig,
                 byzantine: dict[int, frozenset[str]] | None = None) -> None:
        self.bft = bft
        self.keyring = Keyring(f"sim:{bft.cluster}", options.n)
        self.byzantine_kinds = dict(byzantine or {})
        f = (options.n - 1) // 3
        if len(self.byzantine_kinds) > f:
            raise ValueError(f"at most f = {f} Byzantine replicas")
        self.correct = frozenset(range(options.n)) - set(self.byzantine_kinds)
        self.filters: dict[int, Byzantine] = {}
        self.bft_storages = [MemoryBftStorage() for _ in range(options.n)]
        super().__init__(options, seed)
        self.filters = {r: Byzantine(r, self.n, kinds, self.keyring, bft.auth, self.rng)
                        for r, kinds in self.byzantine_kinds.items()}

    def _new_checker(self) -> Checker:
        return BftChecker(self.correct)

    def _new_client(self, c: int) -> BftClient:  # type: ignore[override]
        return BftClient(self.bft.cluster, c + 1, self.keyring,
                         retry_ns=self.options.client_retry_ns)

    def crash(self, replica: int) -> None:
        """The process dies between two steps: its records up to its last sends survive."""
        if self.replicas[replica] is not None:
            self.bft_storages[replica].crash()
        super().crash(replica)

    def restart(self, replica: int, *, applied_index: int | None = None) -> None:
        """Boot from the replica's records; its application resumes from ``applied_index``
        (default: a random point up to what it had received)."""
        if self.replicas[replica] is not None:
            return
        received = self.checker.next_index.get(replica, 1) - 1
        if applied_index is None:
            applied_index = self.rng.randint(0, received)
        config = msgspec.structs.replace(self.bft, replica=replica, n=self.n)
        node = BftReplica(config, self.keyring, self.bft_storages[replica],
                          applied_index=applied_index)
        self.replicas[replica] = node  # type: ignore[call-overload]
        self.incarnations[replica] += 1
        self.checker.on_start(replica, applied_index)
        self._run_replica(replica, lambda: node.start(self.clocks[replica].local(self.now)))

    def _app_release(self, node: int) -> None:
        """A PBFT replica keeps its whole record (no compaction in the Byzantine mode)."""

    def down_or_recovering(self) -> int:
        return sum(node is None for node in self.replicas)

    def leader(self) -> int | None:
        normal = [node for r, node in enumerate(self.replicas)
                  if node is not None and r in self.correct and node.phase is Phase.NORMAL]
        return max(normal, key=lambda node: node.view).primary(
            max(node.view for node in normal)) if normal else None

    def _deliver(self, node: int, data: bytes) -> None:
        behaviour = self.filters.get(node)
        if behaviour is not None:
            behaviour.capture(decode(data))
        super()._deliver(node, data)

    def _route(self, source: int, out: list[Outbox]) -> None:
        if source < self.n:  # a replica (clients come after): flushed before its sends
            self.bft_storages[source].flush()
        behaviour = self.filters.get(source)
        if behaviour is not None:
            out = [item for item in behaviour.rewrite(out) if not isinstance(item, Committed)]
        super()._route(source, out)


def options_swarm_bft(seed: int, *, n: int | None = None, canary: BftCanary = BftCanary.NONE,
                      auth: AuthMode = AuthMode.MACS, requests: int | None = None
                      ) -> BftSimOptions:
    """The CFT swarm's network faults, crashes and sizes, plus up to f Byzantine replicas with
    random behaviours, all from the seed."""
    rng = random.Random(seed ^ 0xB1A5_ED)
    n = n if n is not None else rng.choice((4, 4, 7))
    f = (n - 1) // 3
    base = options_swarm(seed, n=3, requests=requests)
    network: NetworkOptions = base.cluster.network
    # the canaries keep the schedules their known seeds were found on: no deadlines (drawing a
    # budget changes the workload's random stream), no crashes, no clock liars
    plain = canary is BftCanary.NONE
    cluster = msgspec.structs.replace(base.cluster, n=n,
                                      budget_prob=base.cluster.budget_prob if plain else 0.0,
                                      requests=requests or min(base.cluster.requests, 100),
                                      tick_ns=2_000_000, client_retry_ns=20_000_000,
                                      network=network)
    # shorter runs than CFT mode: Python PBFT costs about n^2 messages per batch
    base = msgspec.structs.replace(
        base, cluster=cluster, safety_ns=min(base.safety_ns, 250_000_000),
        crash_prob=base.crash_prob if plain else 0.0)
    replica = BftConfig(cluster=base.cluster.replica.cluster, replica=0, n=n, auth=auth,
                        pipeline_max=rng.choice((1, 4, 8)), batch_max=rng.choice((1, 4, 32)),
                        checkpoint_every=rng.choice((4, 16, 64)), canary=canary)
    faulty = rng.sample(range(n), rng.choice((f, f, f - 1 if f > 1 else f, 0)))
    if canary is not BftCanary.NONE:
        faulty = [0]
    byzantine = []
    # "clock" came later: drawn apart, so older seeds keep their faults
    drawn = tuple(k for k in BEHAVIOURS if k != "clock")
    clock_rng = random.Random(seed ^ 0xC10C)
    for r in sorted(faulty):
        kinds = tuple(k for k in drawn if rng.random() < 0.35) or (rng.choice(drawn),)
        if plain and clock_rng.random() < 0.35:
            kinds += ("clock",)
        if canary is BftCanary.SMALL_QUORUM:
            kinds = ("equivocate",)
        elif canary is BftCanary.TRUST_CLAIMS:
            kinds = ("lie",)
        if "silent" in kinds:
            kinds = ("silent",)
        byzantine.append((r, kinds))
    # drawn last (older seeds keep their draws): state transfers a few batches at a time
    if rng.random() < 0.4:
        replica = msgspec.structs.replace(replica, fill_max=rng.choice((1, 3, 16)))
    # and then: so few executed batches in memory that Fills read older ones back from storage
    if rng.random() < 0.4:
        replica = msgspec.structs.replace(replica, log_memory=rng.choice((1, 4, 32)))
    # and then: restart snapshots every few batches, so restarts start from them
    if rng.random() < 0.4:
        replica = msgspec.structs.replace(replica, snapshot_every=rng.choice((1, 3, 16)))
    return BftSimOptions(base=base, replica=replica, byzantine=tuple(byzantine))


def run_bft(options: BftSimOptions) -> RunResult:
    byzantine = {r: frozenset(kinds) for r, kinds in options.byzantine}
    return run(options.base, make_cluster=lambda cluster, seed: BftCluster(
        cluster, seed, options.replica, byzantine))


def run_seed_bft(seed: int, *, n: int | None = None,
                 canary: BftCanary = BftCanary.NONE) -> RunResult:
    return run_bft(options_swarm_bft(seed, n=n, canary=canary))


__all__ = ["BftChecker", "BftCluster", "BftSimOptions", "options_swarm_bft", "run_bft",
           "run_seed_bft"]
