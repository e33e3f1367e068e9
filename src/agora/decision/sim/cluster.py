"""The simulated world: replicas, clients, disks, clocks and network in one event loop.

One ``random.Random`` drives everything, events are ordered by (true time, sequence number), and
messages travel as their wire bytes (``encode``/``decode``), so one seed gives one run, byte for
byte: :attr:`Cluster.trace_hash` digests every delivery and every committed output.

The world knows the true time; each replica sees only its own :class:`DriftClock`. Faults are
applied through a small API that scenario tests call directly and the swarm's nemesis calls at
random: :meth:`crash`, :meth:`restart`, :meth:`partition`, :meth:`jump_clock`, slow replicas and
the network options. Replica exceptions (``InvariantViolation`` or any bug) stop the run and
become failures with the seed, like a checker failure.

Workload: each client submits its next request after a think time, until :attr:`workload`
turns off. With ``request_batch_ns`` the clients' requests (and retries) to a replica within that
window leave as one ``RequestBatch``, as the UDP client packs an event-loop turn's. Payloads are
encoded :class:`~agora.core.events.Proposal` values (the real decision vocabulary), so validity
compares real bytes.
"""

from __future__ import annotations

import hashlib
import heapq
import random
import struct
import traceback
from collections.abc import Callable

import msgspec

from agora.core.events import FairValue, Proposal
from agora.decision.consensus.client import Client
from agora.decision.consensus.config import ReplicaConfig
from agora.decision.consensus.core import ReplicaStats, Status
from agora.decision.consensus.messages import (
    Broadcast,
    Committed,
    Outbox,
    Reply,
    Request,
    RequestBatch,
    Send,
    ToClient,
    decode,
    encode,
)
from agora.decision.consensus.replica import Replica
from agora.decision.consensus.storage import FsyncPolicy
from agora.decision.sim.checker import Checker
from agora.decision.sim.clock import DriftClock
from agora.decision.sim.network import Network, NetworkOptions
from agora.decision.sim.storage import SimStorage

_DELIVER, _TICK_REPLICA, _TICK_CLIENT, _CALL = range(4)
_STAMP = struct.Struct("<qi")


class ClusterOptions(msgspec.Struct, frozen=True, kw_only=True):
    n: int = 3
    clients: int = 3
    requests: int = 100  # the workload stops after this many submissions
    tick_ns: int = 1_000_000
    think_ns_mean: int = 500_000
    budget_prob: float = 0.0
    budget_min_ns: int = 2_000_000
    budget_max_ns: int = 30_000_000
    fsync: FsyncPolicy = FsyncPolicy.ALWAYS
    batch_records: int = 8
    drift_ppm_max: int = 0
    client_retry_ns: int = 8_000_000
    request_batch_ns: int = 0  # > 0: requests to a replica within it travel as one RequestBatch
    replica: ReplicaConfig = ReplicaConfig(cluster=7, replica=0, n=3)
    network: NetworkOptions = NetworkOptions()


APP_SEED = 0x5EED_A99  # mixed into a run's seed for its applications' generator
APP_RELEASE_CHANCE = 0.05  # per replica step: the application persists and releases


class SimFailure(Exception):
    """A replica raised: the run stops here."""


class Cluster:
    def __init__(self, options: ClusterOptions, seed: int) -> None:
        self.options = options
        self.seed = seed
        self.rng = random.Random(seed)
        n = options.n
        self.n = n
        self.now = 0
        self.heap: list[tuple[int, int, int, int, object]] = []
        self.seq = 0
        self.network = Network(options.network, self.rng, n)
        self.checker = self._new_checker()
        self.hash = hashlib.blake2b(digest_size=16)
        self.events = 0
        self.clocks = [DriftClock(self.rng.randrange(0, 10**12),
                                  self.rng.randint(-options.drift_ppm_max, options.drift_ppm_max))
                       for _ in range(n)]
        self.storages = [SimStorage(options.fsync, self.rng, batch_records=options.batch_records)
                         for _ in range(n)]
        self.replicas: list[Replica | None] = [None] * n
        self.incarnations = [0] * n
        self.retired_stats: list[ReplicaStats] = []
        self.clients = [self._new_client(c) for c in range(options.clients)]
        self.client_clocks = [DriftClock(self.rng.randrange(0, 10**12)) for _ in self.clients]
        self.sent_true: dict[int, int] = {}
        self.latencies_ns: list[int] = []
        self.workload = True
        self.submitted = 0
        self.failures: list[str] = []
        self.crashes = 0
        self.outgoing: dict[int, list[Request]] = {}  # replica -> requests of the batch window
        # each replica's application: the durable point it last told its replica (``release``),
        # moved by a generator of its own so that the faults' draws stay what they were
        self.app_durable = [0] * n
        self.app_rng = random.Random(seed ^ APP_SEED)
        for replica in range(n):
            self.restart(replica, applied_index=0)
            self._push(self.rng.randrange(options.tick_ns), _TICK_REPLICA, replica, None)
        for c in range(len(self.clients)):
            self._push(self.rng.randrange(options.tick_ns), _TICK_CLIENT, c, None)
            self.after(self._think(), lambda c=c: self._client_next(c))

    # Hooks a subclass (the Byzantine-mode cluster, ``bft_cluster.py``) replaces.
    decode_wire = staticmethod(decode)
    reply_type: type = Reply

    def _new_checker(self) -> Checker:
        return Checker()

    def _new_client(self, c: int) -> Client:
        return Client(self.options.replica.cluster, c + 1, self.n,
                      retry_ns=self.options.client_retry_ns)

    # ---------------------------------------------------------------- fault API

    def crash(self, replica: int) -> None:
        node = self.replicas[replica]
        if node is None:
            return
        self.retired_stats.append(node.stats)
        self.crashes += 1
        self.replicas[replica] = None
        self.storages[replica].crash()

    def restart(self, replica: int, *, applied_index: int | None = None) -> None:
        """Boot ``replica`` from its disk; the application resumes from ``applied_index``
        (default: a random point up to what it had received)."""
        if self.replicas[replica] is not None:
            return
        received = self.checker.next_index.get(replica, 1) - 1
        if applied_index is None:  # never below what the application told the replica it keeps
            durable = self.app_durable[replica]
            applied_index = self.rng.randint(durable, max(durable, received))
        self.app_durable[replica] = applied_index
        self.incarnations[replica] += 1
        config = msgspec.structs.replace(self.options.replica, replica=replica, n=self.n)
        node = Replica(config, self.storages[replica], applied_index=applied_index,
                       incarnation=self.incarnations[replica])
        node.release(applied_index)  # the model's application: its resume point is durable
        self.replicas[replica] = node
        self.checker.on_start(replica, applied_index)
        self._run_replica(replica, lambda: node.start(self.clocks[replica].local(self.now)))

    def partition(self, groups: list[int]) -> None:
        self.network.partition(groups)

    def jump_clock(self, replica: int, delta_ns: int) -> None:
        self.clocks[replica].jump(delta_ns)

    def heal(self) -> None:
        """End of faults: a clean network, every replica up."""
        self.network.heal()
        for replica in range(self.n):
            self.restart(replica)

    # ---------------------------------------------------------------- queries

    def up(self) -> list[int]:
        return [r for r, node in enumerate(self.replicas) if node is not None]

    def down_or_recovering(self) -> int:
        return sum(node is None or node.status is Status.RECOVERING for node in self.replicas)

    def leader(self) -> int | None:
        """The leader of the highest view some live replica is normal in."""
        normal = [node for node in self.replicas if node is not None
                  and node.status is Status.NORMAL]
        if not normal:
            return None
        return max(normal, key=lambda node: node.view).leader_hint

    def stats(self) -> list[ReplicaStats]:
        return self.retired_stats + [node.stats for node in self.replicas if node is not None]

    @property
    def trace_hash(self) -> str:
        return self.hash.hexdigest()

    # ---------------------------------------------------------------- workload

    def submit(self, client: int, payload: bytes, budget_ns: int = 0) -> bool:
        """Client ``client`` (0-based) sends a request now; False if it is still waiting."""
        node = self.clients[client]
        if node.busy:
            return False
        out = node.request(payload, budget_ns, self.client_clocks[client].local(self.now))
        self.checker.on_submit(node.client_id, node.request_number, payload, budget_ns)
        self.sent_true[node.client_id] = self.now
        self.submitted += 1
        self._route(self.n + client, out)
        return True

    def _think(self) -> int:
        return 1 + int(self.rng.expovariate(1.0 / self.options.think_ns_mean))

    def _client_next(self, client: int) -> None:
        o = self.options
        if not self.workload or self.submitted >= o.requests or self.clients[client].busy:
            return
        budget = 0
        if o.budget_prob and self.rng.random() < o.budget_prob:
            budget = self.rng.randint(o.budget_min_ns, o.budget_max_ns)
        node = self.clients[client]
        proposal = Proposal(f"agent-{node.client_id}", node.request_number + 1, budget,
                            FairValue("AAPL", self.rng.randint(1_000_000, 2_000_000),
                                      self.rng.randint(0, 10_000)))
        self.submit(client, msgspec.msgpack.encode(proposal), budget)

    # ---------------------------------------------------------------- event loop

    def _push(self, at: int, kind: int, target: int, data: object) -> None:
        self.seq += 1
        heapq.heappush(self.heap, (at, self.seq, kind, target, data))

    def after(self, delay_ns: int, call: Callable[[], None]) -> None:
        self._push(self.now + delay_ns, _CALL, 0, call)

    def run_until(self, until_ns: int, stop: Callable[[], bool] | None = None,
                  check_every_ns: int = 1_000_000) -> bool:
        """Run events up to ``until_ns`` (true time); with ``stop``, end early once it holds.
        False if a replica raised (see :attr:`failures`)."""
        next_check = self.now
        heap = self.heap
        try:
            while heap and heap[0][0] <= until_ns:
                if stop is not None and self.now >= next_check:
                    if stop():
                        return True
                    next_check = self.now + check_every_ns
                at, _, kind, target, data = heapq.heappop(heap)
                self.now = at
                self.events += 1
                if kind == _DELIVER:
                    self._deliver(target, data)  # type: ignore[arg-type]
                elif kind == _TICK_REPLICA:
                    self._tick_replica(target)
                elif kind == _TICK_CLIENT:
                    self._tick_client(target)
                else:
                    data()  # type: ignore[operator]
        except SimFailure:
            return False
        self.now = max(self.now, until_ns)
        return True

    def _deliver(self, node: int, data: bytes) -> None:
        self.hash.update(_STAMP.pack(self.now, node))
        self.hash.update(data)
        message = self.decode_wire(data)
        if node < self.n:
            replica = self.replicas[node]
            if replica is not None:
                self._run_replica(node, lambda: replica.on_message(
                    message, self.clocks[node].local(self.now)))
            return
        client = node - self.n
        if isinstance(message, self.reply_type):
            reply = self.clients[client].on_reply(
                message, self.client_clocks[client].local(self.now))
            if reply is not None:
                self.checker.on_reply(reply)
                self.latencies_ns.append(self.now - self.sent_true[reply.client_id])
                self.after(self._think(), lambda: self._client_next(client))

    def _tick_replica(self, node: int) -> None:
        self._push(self.now + self.options.tick_ns, _TICK_REPLICA, node, None)
        replica = self.replicas[node]
        if replica is not None:
            self._run_replica(node, lambda: replica.on_tick(self.clocks[node].local(self.now)))

    def _tick_client(self, client: int) -> None:
        self._push(self.now + self.options.tick_ns, _TICK_CLIENT, client, None)
        out = self.clients[client].on_tick(self.client_clocks[client].local(self.now))
        self._route(self.n + client, out)

    def _run_replica(self, node: int, step: Callable[[], list[Outbox]]) -> None:
        try:
            out = step()
        except Exception as error:
            where = traceback.extract_tb(error.__traceback__)[-1]
            self.failures.append(f"replica {node} raised {type(error).__name__}: {error} "
                                 f"({where.filename.rsplit('/', 1)[-1]}:{where.lineno})")
            raise SimFailure from error
        self._route(node, out)
        if self.app_rng.random() < APP_RELEASE_CHANCE:
            self._app_release(node)

    def _app_release(self, node: int) -> None:
        """The application of ``node`` persists a random prefix of what it received and says
        so (``Replica.release``): a restart resumes at or after that point, never before."""
        replica = self.replicas[node]
        received = self.checker.next_index.get(node, 1) - 1
        if replica is None or received <= self.app_durable[node]:
            return
        self.app_durable[node] = self.app_rng.randint(self.app_durable[node], received)
        replica.release(self.app_durable[node])

    def _route(self, source: int, out: list[Outbox]) -> None:
        for item in out:
            if (source >= self.n and self.options.request_batch_ns
                    and isinstance(item, Send | Broadcast) and isinstance(item.message, Request)):
                self._hold(item.message, [item.to] if isinstance(item, Send) else range(self.n))
            elif isinstance(item, Send):
                self._transmit(source, item.to, encode(item.message))
            elif isinstance(item, Broadcast):
                data = encode(item.message)
                for replica in range(self.n):
                    if replica != source:
                        self._transmit(source, replica, data)
            elif isinstance(item, ToClient):
                client = item.client_id - 1
                if 0 <= client < len(self.clients):
                    self._transmit(source, self.n + client, encode(item.message))
            elif isinstance(item, Committed):
                self.hash.update(_STAMP.pack(item.index, source))
                self.hash.update(item.payload)
                self.checker.on_committed(source, item)

    def _hold(self, request: Request, targets: range | list[int]) -> None:
        """Batch clients' requests like the UDP client does per loop turn, over a window."""
        if not self.outgoing:
            self.after(self.options.request_batch_ns, self._send_held)
        for target in targets:
            self.outgoing.setdefault(target, []).append(request)

    def _send_held(self) -> None:
        outgoing, self.outgoing = self.outgoing, {}
        for target, requests in sorted(outgoing.items()):
            message = (requests[0] if len(requests) == 1
                       else RequestBatch(requests[0].cluster, tuple(requests)))
            self._transmit(self.n, target, encode(message))

    def _transmit(self, source: int, target: int, data: bytes) -> None:
        for delay in self.network.delays(source, target):
            self._push(self.now + delay, _DELIVER, target, data)
