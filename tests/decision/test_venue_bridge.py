"""The venue bridge: committed log -> exchange commands, and exactly-once at one venue.

The unit tests pin the mapping on a hand-built log. The property tests run the simulated cluster
(faults included) with signed strategy proposals, give every replica its own DecisionApplier, and
send every replica's commands to one MatchingEngine in several interleavings: each decision must
take effect once and every other copy must be refused.
"""

from __future__ import annotations

import heapq
import random
import tracemalloc
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

import msgspec
import pytest

from agora.core.enums import RejectReason, Side, TimeInForce, TradingState
from agora.core.events import (
    AddSymbol,
    CancelIntent,
    CancelOrder,
    Decision,
    NewOrder,
    OrderAccepted,
    OrderCancelled,
    OrderIntent,
    OrderRejected,
    ParticipantSpec,
    Proposal,
    SetParticipant,
    SymbolSpec,
)
from agora.decision import rules
from agora.decision.consensus import Committed, ReplicaConfig
from agora.decision.rules import Member, Role, RulesConfig, decide, decision_id
from agora.decision.signing import AgentKey, sign
from agora.decision.sim import Cluster, ClusterOptions, NetworkOptions, options_swarm, run
from agora.decision.sim.checker import Checker
from agora.decision.venue_bridge import DecisionApplier, Outgoing
from agora.exchange.engine import MatchingEngine

MS = 1_000_000
FIRM = "FIRM1"
SYMBOL = "AAPL"
AGENTS = [f"s{c}" for c in range(1, 7)]  # one strategy agent per simulated client (<= 6)
KEYS = {agent: AgentKey.generate(f"venue-bridge:{agent}") for agent in AGENTS}
CONFIG = RulesConfig(
    members={a: Member(Role.STRATEGY, KEYS[a].public_bytes) for a in AGENTS},
    session="VB",
    collar_bps=None,
)


def proposal(agent: str, seq: int, action: OrderIntent | CancelIntent) -> bytes:
    return msgspec.msgpack.encode(sign(Proposal(agent, seq, 0, action), KEYS[agent]))


def committed(index: int, payload: bytes = b"", *, client: int = 1,
              abandoned: bool = False) -> Committed:
    return Committed(index, 0, client if payload else 0, index if payload else 0, payload,
                     abandoned)


def venue() -> MatchingEngine:
    engine = MatchingEngine()
    engine.process(AddSymbol(SymbolSpec(SYMBOL, 1_000_000), TradingState.OPEN), 0)
    engine.process(SetParticipant(ParticipantSpec(FIRM)), 0)
    return engine


# ---------------------------------------------------------------- unit: the mapping


BUY = OrderIntent(SYMBOL, Side.BUY, 100, 990_000)
SELL = OrderIntent(SYMBOL, Side.SELL, 50, 1_010_000, TimeInForce.IOC)


def hand_log() -> list[Committed]:
    return [
        committed(1, proposal("s1", 1, BUY)),
        committed(2),  # a leader no-op
        committed(3, proposal("s2", 1, SELL)),
        committed(4, proposal("s1", 1, BUY)),  # same (agent, seq): rules say DUPLICATE
        committed(5, proposal("s1", 2, BUY), abandoned=True),  # deadline missed: nothing
        committed(6, b"\x93garbage"),
        committed(7, proposal("s2", 2, CancelIntent("VB1"))),
    ]


def test_hand_built_log_maps_to_commands() -> None:
    applier = DecisionApplier(CONFIG, FIRM)
    out: list[Outgoing] = []
    for item in hand_log()[:6]:
        out += applier.apply(item)
    assert [o.command for o in out] == [
        NewOrder(FIRM, "VB1", SYMBOL, Side.BUY, 100, 990_000),
        NewOrder(FIRM, "VB3", SYMBOL, Side.SELL, 50, 1_010_000, tif=TimeInForce.IOC),
    ]
    assert [o.decision.log_index for o in out] == [1, 3]
    assert applier.counts["noop"] == 1 and applier.counts["undecodable"] == 1
    # the venue accepts VB1 as order 17: the cancel decided at 7 can name it at once
    accepted = OrderAccepted(5, SYMBOL, 17, FIRM, "VB1", Side.BUY, 990_000, 100,
                             out[0].command.order_type, TimeInForce.DAY, None, False, 0)
    assert applier.on_event(accepted) == []
    # the same accept again (own reply and drop copy) changes nothing
    assert applier.on_event(msgspec.structs.replace(accepted, ts=6)) == []
    assert applier.order_id("VB1") == 17
    cancel = applier.apply(hand_log()[6])
    assert [o.command for o in cancel] == [CancelOrder(FIRM, 17, 0, "VB7")]
    assert applier.held == [] and applier.order_id("VB1") is None
    assert applier.counts["decided"] == 3


def test_an_order_costs_no_memory_once_cancelled(monkeypatch) -> None:
    """4,000 order and cancel pairs after 4,000 more: the applier (and its rules) hold nothing
    more (the decisions' history cost 726 bytes per pair before the applier stopped keeping
    it and forgot a cancelled order's ids). Signatures unchecked: their cache would blur it."""
    monkeypatch.setattr(rules, "verify", lambda proposal, keys: True)
    applier = DecisionApplier(msgspec.structs.replace(CONFIG, cancel_memory=64), FIRM)
    log, index = [], 0
    for k in range(8_000):
        order = Proposal("s1", 2 * k + 1, 0, BUY, b"s" * 64)
        cancel = Proposal("s1", 2 * k + 2, 0, CancelIntent(decision_id("VB", index + 1)),
                          b"s" * 64)
        for item in (order, cancel):
            index += 1
            log.append(committed(index, msgspec.msgpack.encode(item)))
    accepts = {i: OrderAccepted(5, SYMBOL, i, FIRM, decision_id("VB", i), Side.BUY, 990_000,
                                100, NewOrder(FIRM, "x", SYMBOL, Side.BUY, 1).order_type,
                                TimeInForce.DAY, None, False, 0) for i in range(1, index, 2)}

    def play(items: list[Committed]) -> None:
        for item in items:
            if item.index in accepts:  # the venue accepts each order before its cancel
                applier.apply(item)
                applier.on_event(accepts[item.index])
            else:
                applier.apply(item)

    tracemalloc.start()
    try:
        play(log[:8_000])
        half = tracemalloc.get_traced_memory()[0]
        play(log[8_000:])
        grown = tracemalloc.get_traced_memory()[0] - half
    finally:
        tracemalloc.stop()
    assert applier.counts["decided"] == 16_000 and applier.held == []
    assert grown < 16_384, grown


def test_cancel_before_the_accept_is_held_then_released() -> None:
    applier = DecisionApplier(CONFIG, FIRM)
    for item in hand_log()[:6]:
        applier.apply(item)
    assert applier.apply(hand_log()[6]) == []
    assert [d.decision_id for d in applier.held] == ["VB7"]
    # another participant's accept of the same id, or an unrelated event, releases nothing
    other = OrderAccepted(5, SYMBOL, 3, "OTHER", "VB1", Side.BUY, 990_000, 100,
                          NewOrder(FIRM, "x", SYMBOL, Side.BUY, 1).order_type, TimeInForce.DAY,
                          None, False, 0)
    assert applier.on_event(other) == []
    assert applier.on_event(OrderRejected(5, FIRM, "VB1", RejectReason.UNKNOWN_ORDER, "")) == []
    released = applier.on_event(msgspec.structs.replace(other, participant=FIRM, order_id=9))
    assert [o.command for o in released] == [CancelOrder(FIRM, 9, 0, "VB7")]
    assert released[0].decision.log_index == 7 and applier.held == []
    assert applier.order_id("VB1") is None  # its last command went out: its venue id dropped


def test_without_holding_a_cancel_names_its_target_at_once() -> None:
    applier = DecisionApplier(CONFIG, FIRM, hold_cancels=False)  # a FIX venue: OrigClOrdID
    out = [o for item in hand_log() for o in applier.apply(item)]
    assert [(o.command.client_order_id, o.target) for o in out] == [
        ("VB1", ""), ("VB3", ""), ("VB7", "VB1")]
    assert out[2].command == CancelOrder(FIRM, 0, 0, "VB7")  # venue order id not known yet
    assert applier.held == [] and applier.counts["held"] == 0
    # the held path names the target too
    holding = DecisionApplier(CONFIG, FIRM)
    for item in hand_log():
        holding.apply(item)
    accepted = OrderAccepted(5, SYMBOL, 4, FIRM, "VB1", Side.BUY, 990_000, 100,
                             out[0].command.order_type, TimeInForce.DAY, None, False, 0)
    assert [o.target for o in holding.on_event(accepted)] == ["VB1"]


def test_replays_are_skipped_and_gaps_raise() -> None:
    applier = DecisionApplier(CONFIG, FIRM)
    log = hand_log()
    first = applier.apply(log[0])
    assert len(first) == 1
    assert applier.apply(log[0]) == []  # a restarted replica re-emits index 1
    assert applier.counts["replayed"] == 1
    with pytest.raises(ValueError, match="gap"):
        applier.apply(log[2])  # index 3 after 1
    assert applier.applied_index == 1
    with pytest.raises(ValueError):
        DecisionApplier(CONFIG, "")


# ---------------------------------------------------------------- the simulated cluster


class RecordingChecker(Checker):
    """The checker, plus what each replica's application received, in emission order."""

    def __init__(self) -> None:
        super().__init__()
        self.streams: dict[int, list[Committed]] = defaultdict(list)
        self.emitted: list[int] = []  # replica of each Committed, in simulation order

    def on_committed(self, replica: int, item: Committed) -> None:
        super().on_committed(replica, item)
        self.streams[replica].append(item)
        self.emitted.append(replica)


class TradingCluster(Cluster):
    """The simulator with signed strategy proposals: orders that never cross, and cancels of
    earlier log entries (some are not orders: the rules then decide nothing)."""

    checker: RecordingChecker
    view_changes = 0

    def _new_checker(self) -> Checker:
        return RecordingChecker()

    def _client_next(self, client: int) -> None:
        o, rng = self.options, self.rng
        if not self.workload or self.submitted >= o.requests or self.clients[client].busy:
            return
        budget = 0
        if o.budget_prob and rng.random() < o.budget_prob:
            budget = rng.randint(o.budget_min_ns, o.budget_max_ns)
        node = self.clients[client]
        action: OrderIntent | CancelIntent
        if self.checker.committed and rng.random() < 0.3:
            target = rng.choice(list(self.checker.committed))
            action = CancelIntent(decision_id(CONFIG.session, target))
        elif rng.random() < 0.5:  # bids below 99.50, asks above 100.50: nothing fills
            action = OrderIntent(SYMBOL, Side.BUY, rng.randint(1, 500),
                                 rng.randint(9_800, 9_950) * 100)
        else:
            action = OrderIntent(SYMBOL, Side.SELL, rng.randint(1, 500),
                                 rng.randint(10_050, 10_200) * 100)
        agent = AGENTS[node.client_id - 1]
        signed = sign(Proposal(agent, node.request_number + 1, budget, action), KEYS[agent])
        self.submit(client, msgspec.msgpack.encode(signed), budget)


def swarm_streams(seed: int, n: int | None) -> TradingCluster:
    made: list[TradingCluster] = []

    def factory(options: ClusterOptions, s: int) -> Cluster:
        made.append(TradingCluster(options, s))
        return made[-1]

    result = run(options_swarm(seed, n=n, requests=60), make_cluster=factory)
    assert result.ok, result.failures
    made[0].view_changes = result.view_changes
    return made[0]


def leader_crash_streams() -> TradingCluster:
    """The leader dies with entries prepared but not committed; replica 0 restarts on heal."""
    options = ClusterOptions(n=3, clients=4, requests=80, think_ns_mean=500_000,
                             replica=ReplicaConfig(cluster=42, replica=0, n=3),
                             network=NetworkOptions())
    cluster = TradingCluster(options, 3)

    def until(condition: Callable[[], bool]) -> None:
        end = cluster.now + 500 * MS
        while not condition():
            assert cluster.now < end
            assert cluster.run_until(cluster.now + 20_000), cluster.failures

    leader = cluster.replicas[0]
    assert leader is not None
    until(lambda: leader.op - leader.commit >= 2
          and max(cluster.checker.committed, default=0) >= 10)
    cluster.crash(0)
    until(lambda: cluster.leader() not in (None, 0)
          and max(cluster.checker.committed, default=0) > 40)
    cluster.workload = False
    cluster.heal()

    def done() -> bool:
        return cluster.checker.converged(cluster.n, any(c.busy for c in cluster.clients))

    assert cluster.run_until(cluster.now + 3_000 * MS, stop=done), cluster.failures
    assert done() and cluster.checker.ok, cluster.checker.failures
    return cluster


# ---------------------------------------------------------------- one venue, many senders


@dataclass
class Venue:
    """One MatchingEngine fed by every replica's applier; venue events go back to every applier
    (the drop copy), after a random delay when ``delay_rng`` is set."""

    appliers: list[DecisionApplier]
    delay_rng: random.Random | None = None
    engine: MatchingEngine = field(default_factory=venue)
    decided: dict[int, list[Decision]] = field(default_factory=dict)  # by replica, log order
    sent: dict[int, list[Outgoing]] = field(default_factory=lambda: defaultdict(list))
    results: list[tuple[int, Outgoing, list]] = field(default_factory=list)
    _feedback: list[tuple[int, int, int, object]] = field(default_factory=list)
    _step: int = 0
    _seq: int = 0

    def send(self, replica: int, outgoing: list[Outgoing]) -> None:
        for item in outgoing:
            self._step += 1
            events = self.engine.process(item.command, self._step)
            self.sent[replica].append(item)
            self.results.append((replica, item, events))
            for event in events:
                for target in range(len(self.appliers)):
                    delay = self.delay_rng.randint(0, 40) if self.delay_rng else 0
                    self._seq += 1
                    heapq.heappush(self._feedback,
                                   (self._step + delay, self._seq, target, event))

    def deliver(self, until: int | None = None) -> None:
        """Hand due venue events to the appliers; what they release is sent too."""
        while self._feedback and (until is None or self._feedback[0][0] <= until):
            _, _, target, event = heapq.heappop(self._feedback)
            self.send(target, self.appliers[target].on_event(event))

    def step(self, replica: int, item: Committed) -> None:
        self.deliver(self._step)
        self.send(replica, self.appliers[replica].apply(item))


def schedules(cluster: TradingCluster, seed: int) -> dict[str, list[int]]:
    streams = cluster.checker.streams
    by_replica = [r for r in sorted(streams) for _ in streams[r]]
    shuffled = list(by_replica)
    random.Random(seed).shuffle(shuffled)
    backwards = [r for r in sorted(streams, reverse=True) for _ in streams[r]]
    return {"by-replica": by_replica, "backwards": backwards,
            "as-simulated": list(cluster.checker.emitted), "random": shuffled}


def play(cluster: TradingCluster, schedule: list[int], *, delay_seed: int | None = None,
         configs: dict[int, RulesConfig] | None = None) -> Venue:
    configs = configs or {}
    decided: dict[int, list[Decision]] = {r: [] for r in range(cluster.n)}

    def keeper(replica: int) -> Callable:  # the applier keeps no history: its observer does
        return lambda entry, outcome: outcome.decision and decided[replica].append(
            outcome.decision)

    appliers = [DecisionApplier(configs.get(r, CONFIG), FIRM, on_outcome=keeper(r))
                for r in range(cluster.n)]
    delay_rng = random.Random(delay_seed) if delay_seed is not None else None
    bridge = Venue(appliers, delay_rng, decided=decided)
    cursor = Counter[int]()
    for replica in schedule:
        bridge.step(replica, cluster.checker.streams[replica][cursor[replica]])
        cursor[replica] += 1
    bridge.deliver()
    return bridge


def exactly_once_problems(bridge: Venue, n: int) -> list[str]:
    """Every order decision accepted once, its other copies refused as duplicates; every cancel
    decision removes its order once, its other copies find no open order."""
    problems: list[str] = []
    copies: dict[int, list[tuple[Decision, list]]] = defaultdict(list)
    for _replica, item, events in bridge.results:  # a decision is its log index
        copies[item.decision.log_index].append((item.decision, events))
    for ident, outcomes in copies.items():
        decision = outcomes[0][0]
        if len(outcomes) != n:
            problems.append(f"{ident}: sent {len(outcomes)} times, not {n}")
        firsts = [events[0] for _d, events in outcomes]
        if isinstance(decision.action, OrderIntent):
            ok = [e for e in firsts if isinstance(e, OrderAccepted)]
            dup = RejectReason.DUPLICATE_CLIENT_ORDER_ID
        else:
            ok = [e for e in firsts if isinstance(e, OrderCancelled)]
            dup = RejectReason.UNKNOWN_ORDER
        refused = [e for e in firsts if isinstance(e, OrderRejected) and e.reason is dup]
        if len(ok) != 1 or len(refused) != len(firsts) - 1:
            problems.append(f"{ident}: {len(ok)} took effect, {len(refused)} refused of "
                            f"{len(firsts)}: {[type(e).__name__ for e in firsts]}")
    return problems


def check_exactly_once(cluster: TradingCluster, bridge: Venue) -> None:
    assert exactly_once_problems(bridge, cluster.n) == []
    # every replica sent byte-identical commands, one per decision (sorted by log index:
    # a held cancel goes out when its target's accept arrives, which differs per replica)
    lists = {
        r: [(o.decision.log_index, msgspec.msgpack.encode(o.command))
            for o in sorted(bridge.sent[r], key=lambda o: o.decision.log_index)]
        for r in range(cluster.n)
    }
    assert all(lists[r] == lists[0] for r in lists)
    # ... and they are the rules' decisions over the committed log, all carried out
    log = sorted(cluster.checker.committed.values(), key=lambda c: c.index)
    entries = [(c.index, msgspec.msgpack.decode(c.payload, type=Proposal), c.abandoned)
               for c in log if c.client_id]
    expected = decide(entries, CONFIG)
    assert [index for index, _ in lists[0]] == [d.log_index for d in expected]
    assert all(bridge.decided[r] == expected for r in range(cluster.n))
    assert all(a.counts["decided"] == len(expected) and a.held == [] for a in bridge.appliers)
    # the book holds exactly the decided orders that no decision cancelled
    cancelled = {d.action.decision_id for d in expected if isinstance(d.action, CancelIntent)}
    live = {d.client_order_id for d in expected
            if isinstance(d.action, OrderIntent) and d.action.tif is TimeInForce.DAY
            and d.decision_id not in cancelled}
    resting = {o.client_order_id for o in bridge.engine.orders.values()}
    assert resting == live


# (seed, n): quiet runs, crash-heavy runs (replays), partition-heavy runs (view changes)
SWARM = ((1, None), (2, None), (7, 5), (14, None), (16, None), (18, None), (21, 5), (22, None))


@pytest.fixture(scope="module")
def clusters() -> dict[str, TradingCluster]:
    made = {f"swarm {seed}/{n}": swarm_streams(seed, n) for seed, n in SWARM}
    made["leader crash"] = leader_crash_streams()
    return made


def test_the_runs_exercise_decisions_cancels_and_replays(
    clusters: dict[str, TradingCluster],
) -> None:
    orders = cancels = replayed = 0
    for cluster in clusters.values():
        bridge = play(cluster, schedules(cluster, 0)["by-replica"])
        decisions = bridge.decided[0]
        orders += sum(isinstance(d.action, OrderIntent) for d in decisions)
        cancels += sum(isinstance(d.action, CancelIntent) for d in decisions)
        replayed += sum(a.counts["replayed"] for a in bridge.appliers)
    assert orders > 200 and cancels > 40
    assert replayed > 20  # restarted replicas re-emitted entries the applier had consumed
    assert sum(c.crashes for c in clusters.values()) > 30
    assert sum(c.view_changes for c in clusters.values()) > 20
    assert {c.n for c in clusters.values()} == {3, 5}
    assert clusters["leader crash"].crashes == 1


@pytest.mark.parametrize("mode", ["by-replica", "backwards", "as-simulated", "random"])
def test_each_decision_reaches_the_venue_exactly_once(
    clusters: dict[str, TradingCluster], mode: str
) -> None:
    for seed, cluster in enumerate(clusters.values()):
        bridge = play(cluster, schedules(cluster, seed)[mode],
                      delay_seed=seed if mode == "random" else None)
        check_exactly_once(cluster, bridge)


def test_delayed_feedback_holds_cancels_and_still_cancels_once(
    clusters: dict[str, TradingCluster],
) -> None:
    held = 0
    for seed, cluster in enumerate(clusters.values()):
        bridge = play(cluster, schedules(cluster, seed)["random"], delay_seed=100 + seed)
        check_exactly_once(cluster, bridge)
        held += sum(a.counts["held"] for a in bridge.appliers)
        assert all(a.counts["held"] == a.counts["released"] for a in bridge.appliers)
    assert held > 0  # the hold-then-release path ran


def test_the_check_fails_when_one_replica_derives_other_ids(
    clusters: dict[str, TradingCluster],
) -> None:
    """Control: a replica with another session sends the same orders under other ids; the venue
    accepts them twice and the exactly-once check must say so."""
    cluster = clusters["swarm 7/5"]
    wrong = msgspec.structs.replace(CONFIG, session="XX")
    bridge = play(cluster, schedules(cluster, 0)["by-replica"], configs={2: wrong})
    problems = exactly_once_problems(bridge, cluster.n)
    assert problems and any("2 took effect" in p for p in problems)
