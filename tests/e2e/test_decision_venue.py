"""Decisions reach a real venue exactly once: a venue process, 3 decision node processes (each a
replica with its own FIX session of one participant) and a client submitting signed proposals.

The oracle is outside the nodes: a fresh DecisionApplier over a surviving replica's committed log
says what was decided; the venue's journal, replayed after the run, says what happened. Every
decided order must be accepted exactly once under its client_order_id, every other copy refused
as a duplicate, nothing undecided may exist, and every decided cancel must apply once. The
control run gives each node its own id prefix and shows the same check failing.
"""

from __future__ import annotations

import asyncio
import signal
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import msgspec
import pytest
import uvloop

from agora.core.clock import WallClock
from agora.core.enums import CancelReason, RejectReason, Side
from agora.core.events import (
    CancelIntent,
    NewOrder,
    OrderAccepted,
    OrderCancelled,
    OrderIntent,
    OrderRejected,
    Proposal,
)
from agora.decision.rules import Member, Role, RulesConfig, decision_id
from agora.decision.signing import AgentKey, sign
from agora.decision.transport.client import ClusterClient
from agora.decision.transport.cluster import ProcessCluster
from agora.decision.venue_bridge import DecisionApplier
from agora.exchange.store import recover
from agora.trading.decision_node import read_node_log
from tests.e2e.test_consensus_processes import settle, wait_replies
from tests.e2e.test_venue_process import start_venue, venue_toml

pytestmark = pytest.mark.e2e
CLOCK = WallClock()
FIRM, SYMBOL, SESSION = "FIRM1", "AAPL", "DV"
AGENTS = ["s1", "s2", "s3"]
KEYS = {a: AgentKey.generate(f"decision-venue:{a}") for a in AGENTS}
RULES = RulesConfig(members={a: Member(Role.STRATEGY, KEYS[a].public_bytes) for a in AGENTS},
                    session=SESSION, collar_bps=None)


def node_sessions(n: int) -> str:
    """Venue config: participant FIRM1 with one FIX session per node (comp id NODE<i>)."""
    return "".join(f"""
[[participants]]
participant = "{FIRM}"
username = "node{i}"
password = "pw"
fix_comp_id = "NODE{i}"
""" for i in range(n))


def venue_config(tmp_path: Path, n: int) -> tuple[Path, int]:
    """The venue on ephemeral ports; participant FIRM1 with one FIX session per node."""
    path, tcp, _udp = venue_toml(tmp_path, node_sessions(n), fsync="none")
    return path, tcp[1]


@dataclass
class Load:
    """Orders from three strategies, and a cancel for every fourth order once it committed."""

    client: ClusterClient
    seqs: Counter[str] = field(default_factory=Counter)
    orders: list[asyncio.Future] = field(default_factory=list)
    cancels: list[asyncio.Future] = field(default_factory=list)

    def propose(self, agent: str, action: OrderIntent | CancelIntent) -> asyncio.Future:
        self.seqs[agent] += 1
        signed = sign(Proposal(agent, self.seqs[agent], 0, action), KEYS[agent])
        return self.client.submit(msgspec.msgpack.encode(signed))

    async def run(self, count: int, rate: int) -> None:
        for i in range(count):
            buy = i % 2 == 0
            price = 1_850_000 - (i % 50) * 100 if buy else 1_950_000 + (i % 50) * 100
            intent = OrderIntent(SYMBOL, Side.BUY if buy else Side.SELL, 10 + i % 7, price)
            self.orders.append(self.propose(AGENTS[i % 3], intent))
            if i % 4 == 3:
                target = self.orders[i - 2]  # an order submitted a little earlier
                await target
                index = target.result().reply.index
                self.cancels.append(self.propose(AGENTS[i % 3],
                                                 CancelIntent(decision_id(SESSION, index))))
            await asyncio.sleep(1 / rate)
        await asyncio.gather(*self.orders, *self.cancels)


def decided(cluster: ProcessCluster, replica: int) -> tuple[set[str], dict[str, str]]:
    """From one replica's committed log: decided order ids, and cancel id -> target order id."""
    applier = DecisionApplier(RULES, FIRM, hold_cancels=False)
    orders, cancels = set(), {}
    for record in cluster.records(replica):
        if record.item is None:
            continue
        for o in applier.apply(record.item):
            if isinstance(o.command, NewOrder):
                orders.add(o.command.client_order_id)
            else:
                cancels[o.command.client_order_id] = o.target
    return orders, cancels


def resolved(cluster: ProcessCluster, replica: int) -> set[str]:
    return {e.id for e in read_node_log(cluster.directory(replica) / "venue.log")
            if e.event == "report"}


async def converge(cluster: ProcessCluster, survivor: int, timeout_s: float = 15.0) -> None:
    """Until every node saw a report for every decision of the survivor's log."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        orders, cancels = decided(cluster, survivor)
        want = orders | set(cancels)
        missing = {r: len(want - resolved(cluster, r)) for r in range(cluster.n)}
        if want and not any(missing.values()):
            return
        if loop.time() > deadline:
            pytest.fail(f"reports still missing per node: {missing}")
        await asyncio.sleep(0.1)


@dataclass
class Venue:
    events: list = field(default_factory=list)

    def read(self, directory: Path) -> None:
        recover(directory, truncate=False, use_snapshots=False,
                on_events=lambda _seq, events: self.events.extend(events))

    def problems(self, orders: set[str], cancels: dict[str, str]) -> tuple[list[str], Counter]:
        """What breaks exactly-once, and how many copies of each decided order arrived."""
        mine = [e for e in self.events if getattr(e, "participant", None) == FIRM]
        accepted = Counter(e.client_order_id for e in mine if isinstance(e, OrderAccepted))
        by_order_id = {e.order_id: e.client_order_id for e in mine
                       if isinstance(e, OrderAccepted)}
        problems = [f"{k} accepted {n} times" for k, n in accepted.items() if n > 1]
        problems += [f"{k} exists but was not decided" for k in accepted if k not in orders]
        problems += [f"{k} decided, never accepted" for k in orders if k not in accepted]
        copies = Counter(accepted)
        for e in mine:
            if isinstance(e, OrderRejected) and e.client_order_id in orders:
                copies[e.client_order_id] += 1
                if e.reason is not RejectReason.DUPLICATE_CLIENT_ORDER_ID:
                    problems.append(f"copy of {e.client_order_id} refused: {e.reason.name}")
        cancelled = Counter(by_order_id.get(e.order_id) for e in mine
                            if isinstance(e, OrderCancelled) and e.reason is CancelReason.USER)
        if cancelled != Counter(cancels.values()):
            problems.append(f"cancelled {dict(cancelled)} != decided {sorted(cancels.values())}")
        return problems, copies


def run_scenario(tmp_path: Path, *, sessions: list[str] | None = None,
                 kill: bool = False) -> tuple[Venue, set[str], dict[str, str], Counter,
                                              list[str], list[float]]:
    config, fix_port = venue_config(tmp_path, 3)
    rules = tmp_path / "rules.json"
    rules.write_bytes(msgspec.json.encode(RULES))

    def options(i: int) -> list[str]:
        own = ["--session", sessions[i]] if sessions else []
        # the killed node restarts from the state it saved (every 20 entries: several by then),
        # and every node compacts its replica's log as it goes (checkpoints every 10 entries)
        state = ["--state-every", "20", "--checkpoint-every", "10"] if kill else []
        return ["--rules", str(rules), "--participant", FIRM, "--venue", f"127.0.0.1:{fix_port}",
                "--comp-id", f"NODE{i}", "--retry-max-ms", "200", *own, *state]

    venue_proc = start_venue(config)
    killed: list[int] = []

    async def main() -> int:
        with ProcessCluster(tmp_path / "nodes", 3, module="agora.trading.decision_node",
                            per_replica=options) as cluster:
            cluster.start()
            client = await ClusterClient.connect(cluster.cluster, cluster.peers, CLOCK, pool=16,
                                                 keep_log=True)
            try:
                await settle(client)
                load = Load(client)
                task = asyncio.ensure_future(load.run(160, rate=200))
                if kill:
                    await wait_replies(client, 70)
                    killed.append(client.view % cluster.n)
                    cluster.signal(killed[0], signal.SIGKILL)  # the leader, mid-load
                    await wait_replies(client, 140)
                    cluster.start(killed[0])
                await task
                survivor = (killed[0] + 1) % cluster.n if killed else 0
                if sessions is None:
                    await converge(cluster, survivor)
                else:
                    await asyncio.sleep(1.0)  # the control has nothing to converge to
            finally:
                client.close()
            codes = cluster.stop()
            assert all(code == 0 for code in codes.values()), f"a node failed: {codes}"
            if killed:  # the killed leader came back, from its saved state, and caught up
                starts = [r for r in cluster.records(killed[0]) if r.item is None]
                assert len(starts) == 2 and cluster.last_index(killed[0]) == \
                    cluster.last_index(survivor)
                states = [e for e in read_node_log(cluster.directory(killed[0]) / "venue.log")
                          if e.event == "state"]
                loaded = [e for e in states if e.detail == "loaded"]
                assert len(loaded) == 1 and loaded[0].index >= 20, states
            result.extend(decided(cluster, survivor))
            result.append(latencies_ms(cluster))
            return survivor

    result: list = []
    try:
        uvloop.run(asyncio.wait_for(main(), 35))
    finally:
        venue_proc.send_signal(signal.SIGTERM)
        assert venue_proc.wait(timeout=10) == 0
    venue = Venue()
    venue.read(tmp_path / "venue")
    orders, cancels, latency = result
    problems, copies = venue.problems(orders, cancels)
    return venue, orders, cancels, copies, problems, latency


def latencies_ms(cluster: ProcessCluster) -> list[float]:
    """Per decided order: first 'decided' line (any node) to the first report naming it."""
    first_decided: dict[str, int] = {}
    first_report: dict[str, int] = {}
    for r in range(cluster.n):
        for e in read_node_log(cluster.directory(r) / "venue.log"):
            table = (first_decided if e.event == "decided" and e.kind == "new"
                     else first_report if e.event == "report" else None)
            if table is not None and (e.id not in table or e.at_ns < table[e.id]):
                table[e.id] = e.at_ns
    return sorted((first_report[k] - t) / 1e6 for k, t in first_decided.items()
                  if k in first_report)


def test_leader_killed_mid_load_every_decision_reaches_the_venue_once(tmp_path):
    _venue, orders, cancels, copies, problems, latency = run_scenario(tmp_path, kill=True)
    assert len(orders) == 160 and len(cancels) == 40
    assert problems == []
    # several replicas' copies reached the venue, and the venue kept one of each
    assert sum(copies.values()) >= 2 * len(orders), copies.most_common(3)
    nodes = tmp_path / "nodes"
    assert all((nodes / f"r{r}" / "storage" / "compacted").exists() for r in range(3))
    resent = sum(1 for r in range(3) for e in read_node_log(nodes / f"r{r}" / "venue.log")
                 if e.event == "sent" and e.detail == "resend")
    p50, worst = latency[len(latency) // 2], latency[-1]
    print(f"decided->first report ms: p50 {p50:.2f} max {worst:.2f}; copies "
          f"{sum(copies.values())} for {len(orders)} orders; re-sent {resent}")


def test_control_different_id_prefixes_break_exactly_once(tmp_path):
    venue, orders, _cancels, _copies, problems, _ = run_scenario(
        tmp_path, sessions=["DA", "DB", "DC"])
    accepted = [e for e in venue.events if isinstance(e, OrderAccepted)]
    assert len(accepted) == 3 * len(orders) > 0  # each replica's copy became its own order
    assert any("not decided" in p for p in problems)
    assert any("never accepted" in p for p in problems)
