"""Agents inside the decision nodes, end to end: a venue process, 3 decision node processes each
hosting a market view and a market maker (node 0 also a risk agent), fed by the venue's ITCH feed
and their own FIX sessions.

A seeding participant rests a two-sided book; the views commit a fair value, the makers (2 of 3
votes decide) quote around it, and the quotes must reach the venue exactly once each (the venue's
journal against a fresh applier over a node's committed log). Then the seeding participant sells
into the bid: the fill must reach every node's agents (the makers' inventory and the risk agent's
position, from ``agents.log``) and the makers must requote (cancels and new quotes, also exactly
once). The venue publishes ITCH to one unicast port, so the test relays each datagram to the three
nodes' ports; retransmission requests go from each node straight to the venue. With
``reporters`` each node also hosts a reporter agent and the seller takes the makers' whole bid:
the reporters must tell the log that the bid is done, so the rules forget it.

:func:`run` and :func:`check` also serve the Byzantine mode's version of this test
(``test_bft_decision_nodes.py``: four nodes, one of them faulty).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

import msgspec
import pytest
import uvloop

from agora.core.clock import WallClock
from agora.core.enums import Side, TimeInForce
from agora.core.events import Execution, FairValue, NewOrder
from agora.core.ports import unused_ports
from agora.decision.agents import MarketMakerConfig
from agora.decision.agents.market_maker import quotes
from agora.decision.consensus.messages import Committed
from agora.decision.rules import CommittedProposal, Outcome, RulesConfig
from agora.decision.transport.client import ClusterClient
from agora.decision.transport.cluster import ProcessCluster
from agora.decision.venue_bridge import DecisionApplier
from agora.trading.agent_host import roster
from agora.trading.clients.fix_client import FixClient
from agora.trading.decision_node import NodeEvent, read_node_log
from tests.e2e.test_consensus_processes import settle
from tests.e2e.test_decision_venue import FIRM, Venue, node_sessions
from tests.e2e.test_venue_process import start_venue, venue_toml

pytestmark = pytest.mark.e2e
CLOCK = WallClock()
SYMBOL, SESSION, N = "AAPL", "AN", 3
# The views see the makers' own quotes (ITCH is anonymous): a quote half in the book moves the
# microprice by up to 15 cents, so a lower requote threshold makes the makers chase their own
# quotes. 50 cents: they requote on fills only.
MM = MarketMakerConfig(half_spread=200, qty=100, tick=100, requote_threshold=5_000)
BID, ASK = 1_890_000, 1_910_000  # the seeded book: 189.00 x 500 / 191.00 x 500, fair 190.00
SOLD = 40  # what the seeding participant sells into the makers' bid


def venue_config(tmp_path: Path, n: int) -> tuple[Path, int, int, int]:
    """(config, FIX port, ITCH port, retransmission port): FIRM1 with a session per node, and
    SEED; ITCH heartbeats every 50 ms, so a node that joins late finds its gap at once."""
    seed = """
[[participants]]
participant = "SEED"
username = "seed"
password = "pw"
fix_comp_id = "SEED"
"""
    path, tcp, udp = venue_toml(tmp_path, seed + node_sessions(n), fsync="none")
    path.write_text(path.read_text().replace('fsync = "none"', 'fsync = "none"\nheartbeat_ms = 50'))
    return path, tcp[1], udp[0], udp[1]


def agents_file(tmp_path: Path, i: int, reporters: bool = False) -> Path:
    mm = msgspec.structs.asdict(MM)
    specs = [{"kind": "market_view", "name": f"mv{i}", "seed": f"agent-nodes:mv{i}",
              "budget_ms": 1_000},
             {"kind": "market_maker", "name": f"mm{i}", "seed": f"agent-nodes:mm{i}",
              "budget_ms": 1_000, "config": mm}]
    if i == 0:
        specs.append({"kind": "risk", "name": "risk0", "seed": "agent-nodes:risk0",
                      "budget_ms": 1_000})
    if reporters:  # no repeat within the run: check_reporters counts each reporter's verdicts
        specs.append({"kind": "reporter", "name": f"rep{i}", "seed": f"agent-nodes:rep{i}",
                      "budget_ms": 1_000, "config": {"repeat_ms": 60_000}})
    path = tmp_path / f"agents{i}.json"
    path.write_text(json.dumps(specs))
    return path


class Relay(asyncio.DatagramProtocol):
    """The venue's unicast ITCH feed, copied to every node's feed port."""

    def __init__(self, to: list[int]) -> None:
        self.to = to
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport) -> None:  # type: ignore[override]
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:  # type: ignore[override]
        assert self.transport is not None
        for port in self.to:
            self.transport.sendto(data, ("127.0.0.1", port))

    def error_received(self, exc: Exception) -> None:
        """A node not listening yet: it recovers the gap by retransmission."""


def node_log(cluster: ProcessCluster, i: int, name: str = "venue.log") -> list[NodeEvent]:
    return read_node_log(cluster.directory(i) / name)


async def wait_for(what: str, check: Callable[[], bool], cluster: ProcessCluster,
                   timeout_s: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not check():
        if loop.time() > deadline:
            seen = [[e for e in node_log(cluster, i) + node_log(cluster, i, "agents.log")
                     if e.event not in ("stats", "connected")] for i in range(cluster.n)]
            pytest.fail(f"timed out waiting for {what}; node logs: {seen}")
        await asyncio.sleep(0.05)


def accepted(cluster: ProcessCluster) -> set[str]:
    """Decided orders some node saw accepted (ExecType NEW)."""
    return {e.id for i in range(cluster.n) for e in node_log(cluster, i)
            if e.event == "report" and e.kind == "NEW"}


def states(cluster: ProcessCluster, i: int) -> dict[str, dict]:
    """The last ``state`` line per agent in node ``i``'s agents.log."""
    return {e.id: json.loads(e.detail) for e in node_log(cluster, i, "agents.log")
            if e.event == "state"}


def filled(cluster: ProcessCluster, live: Sequence[int], sold: int) -> bool:
    """The fill reached the agents of every node of ``live`` (node 0's risk agent too)."""
    for i in live:
        state = states(cluster, i)
        if state.get(f"mm{i}", {}).get("inventory") != {SYMBOL: sold}:
            return False
    return 0 not in live or states(cluster, 0).get("risk0", {}).get("position") == {SYMBOL: sold}


class Replay:
    """A fresh applier over one node's committed log: decided orders, cancels, fair values."""

    def __init__(self, rules: RulesConfig, records: list) -> None:
        self.fair: list[FairValue] = []
        self.orders: dict[str, NewOrder] = {}
        self.cancels: dict[str, str] = {}
        self.ended: list[str] = []  # orders the reporters ended
        applier = DecisionApplier(rules, FIRM, hold_cancels=False, on_outcome=self._outcome)
        for record in records:
            if isinstance(record.item, Committed):
                for o in applier.apply(record.item):
                    if isinstance(o.command, NewOrder):
                        self.orders[o.command.client_order_id] = o.command
                    else:
                        self.cancels[o.command.client_order_id] = o.target

    def _outcome(self, _entry: CommittedProposal, outcome: Outcome) -> None:
        if outcome.fair_value is not None:
            self.fair.append(outcome.fair_value)
        if outcome.ended is not None:
            self.ended.append(outcome.ended)


async def cft_client(cluster: ProcessCluster) -> ClusterClient:
    return await ClusterClient.connect(cluster.cluster, cluster.peers, CLOCK, pool=4)


def run(tmp_path: Path, *, restart: bool = False, n: int = N,
        options: Callable[[int], list[str]] = lambda i: [], kill: int | None = None,
        connect: Callable[[ProcessCluster], Awaitable[ClusterClient]] = cft_client,
        before_stop: Callable[[], Awaitable[None]] | None = None,
        reporters: bool = False, done_quorum: int = 1) -> dict:
    """The scenario (module notes). ``options``: more options for node ``i``; ``kill``: a node
    SIGKILLed once the first quotes are accepted, and never restarted (the others carry on);
    ``connect``: the client that settles the cluster first; ``before_stop``: awaited after the
    requote, while the venue and the nodes still run; ``reporters``: see the module notes, with
    the rules' ``done_quorum``."""
    config, fix_port, itch_port, retransmit_port = venue_config(tmp_path, n)
    files = [agents_file(tmp_path, i, reporters) for i in range(n)]
    sold = MM.qty if reporters else SOLD
    rules = RulesConfig(members=roster(files), session=SESSION, view_quorum=2, vote_threshold=2,
                        done_quorum=done_quorum)
    rules_path = tmp_path / "rules.json"
    rules_path.write_bytes(msgspec.json.encode(rules))
    feed_ports = unused_ports(n)
    live = [i for i in range(n) if i != kill]

    def node_options(i: int) -> list[str]:
        return [*options(i), "--rules", str(rules_path), "--participant", FIRM,
                "--venue", f"127.0.0.1:{fix_port}", "--comp-id", f"NODE{i}",
                "--retry-max-ms", "200", "--agents", str(files[i]),
                "--itch", f"127.0.0.1:{feed_ports[i]}",
                "--retransmit", f"127.0.0.1:{retransmit_port}", "--symbols", SYMBOL]

    result: dict = {"live": live, "sold": sold}

    async def main() -> None:
        loop = asyncio.get_running_loop()
        relay, _ = await loop.create_datagram_endpoint(lambda: Relay(feed_ports),
                                                       local_addr=("127.0.0.1", itch_port))
        venue_proc = await asyncio.to_thread(start_venue, config)
        result["venue_proc"] = venue_proc
        seed = FixClient("127.0.0.1", fix_port, "SEED", timer_interval_s=0.05)
        try:
            with ProcessCluster(tmp_path / "nodes", n, module="agora.trading.decision_node",
                                per_replica=node_options) as cluster:
                cluster.start()
                client = await connect(cluster)
                try:
                    await settle(client)  # a settled cluster before the first fair value
                finally:
                    client.close()
                await seed.connect(timeout=5)
                seed.new_order("S1", SYMBOL, Side.BUY, 500, BID)
                seed.new_order("S2", SYMBOL, Side.SELL, 500, ASK)
                result["seeded_ns"] = CLOCK.now_ns()
                await wait_for("the makers' two quotes", lambda: len(accepted(cluster)) >= 2,
                               cluster)
                if kill is not None:
                    cluster.signal(kill, signal.SIGKILL)
                if restart:  # node 2 rebuilds its agents from its log, then sees the fill
                    cluster.signal(2, signal.SIGKILL)
                    cluster.start(2)
                    await wait_for("node 2 back on the venue", lambda: sum(
                        e.event == "connected" for e in node_log(cluster, 2)) == 2, cluster)
                bid, _ask = quotes(1_900_000, 0, MM)
                seed.new_order("S3", SYMBOL, Side.SELL, sold, bid, tif=TimeInForce.IOC)
                result["sold_ns"] = CLOCK.now_ns()
                await wait_for("the fill in every node's agents",
                               lambda: filled(cluster, live, sold), cluster)
                await wait_for("the requote", lambda: len(accepted(cluster)) >= 4,
                               cluster)
                await asyncio.sleep(0.5)  # the last reports reach every node
                if before_stop is not None:
                    await before_stop()
                codes = cluster.stop()
                assert all(codes[i] == 0 for i in live), f"a node failed: {codes}"
                result["replay"] = Replay(rules, cluster.records(live[0]))
                result["logs"] = [node_log(cluster, i) + node_log(cluster, i, "agents.log")
                                  for i in range(n)]
                result["states"] = [states(cluster, i) for i in range(n)]
                result["replicas"] = [cluster.stats(i) for i in range(n)]  # written at exit
                result["last_index"] = [cluster.last_index(i) for i in range(n)]
        finally:
            with contextlib.suppress(Exception):
                await seed.logout(timeout=1.0)
            seed.close_store()
            relay.close()

    try:
        uvloop.run(asyncio.wait_for(main(), 28))
    finally:
        proc = result.get("venue_proc")
        if proc is not None:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=10) == 0
    venue = Venue()
    venue.read(tmp_path / "venue")
    result["venue"] = venue
    return result


def latencies_ms(logs: list[list[NodeEvent]], replay: Replay) -> dict[str, list[float]]:
    """Per decided order: the deciding proposal's submission (on whichever node) to its commit
    reply, and to the first venue report naming the order."""
    proposed: dict[tuple[str, int], int] = {}
    committed: dict[int, tuple[int, str, int]] = {}  # log index -> (replied ns, agent, seq)
    first_report: dict[str, int] = {}
    for events in logs:
        for e in events:
            if e.event == "proposed":
                proposed[e.id, e.index] = e.at_ns
            elif e.event == "committed":
                committed[e.index] = (e.at_ns, e.id, int(e.detail.removeprefix("seq=")))
            elif e.event == "report" and (e.id not in first_report
                                          or e.at_ns < first_report[e.id]):
                first_report[e.id] = e.at_ns
    out: dict[str, list[float]] = {"commit": [], "venue": []}
    for order in replay.orders.values():
        index = int(order.client_order_id.removeprefix(SESSION), 36)
        if index in committed and order.client_order_id in first_report:
            replied, agent, seq = committed[index]
            start = proposed[agent, seq]
            out["commit"].append((replied - start) / 1e6)
            out["venue"].append((first_report[order.client_order_id] - start) / 1e6)
    return {k: sorted(v) for k, v in out.items()}


def check(result: dict) -> dict:
    """The assertions every scenario shares (of a killed node: only its log's); the agents'
    stats."""
    replay, venue, logs, states, live, sold = (
        result[k] for k in ("replay", "venue", "logs", "states", "live", "sold"))
    # the views committed a fair value of the seeded book (and of the book with the quotes)
    assert replay.fair and all(BID <= f.price <= ASK for f in replay.fair)
    assert replay.fair[0].price == 1_900_000
    # the makers' quotes and requotes, decided by 2 of 3 votes, each reached the venue once
    sides = sorted((o.side.name, o.price) for o in replay.orders.values())
    assert len(replay.orders) >= 4 and len(replay.cancels) >= 1, sides
    assert ("BUY", 1_899_800) in sides and ("SELL", 1_900_200) in sides
    problems, copies = venue.problems(set(replay.orders), replay.cancels)
    assert problems == []
    # the cluster never traded with itself (a requote crossing its own resting quote)
    crossed = [(e.buy_order_id, e.sell_order_id, e.price) for e in venue.events
               if isinstance(e, Execution) and e.buy_participant == e.sell_participant == FIRM]
    assert crossed == [], f"self-trades {crossed}; fair values {[f.price for f in replay.fair]}"
    assert sum(copies.values()) >= 2 * len(replay.orders)  # several nodes sent each one
    # every commit reply names its own log entry (a reused consensus client id gets old replies)
    for events in logs:
        indices = [e.index for e in events if e.event in ("committed", "abandoned")]
        assert len(indices) == len(set(indices)), sorted(indices)
    # the fill reached every (live) node's agents
    for i in live:
        fills = [(e.id, e.kind, e.index) for e in logs[i] if e.event == "fill"]
        why = f"node {i}: fills {fills}; fair values {[f.price for f in replay.fair]}; {sides}"
        assert states[i][f"mm{i}"]["inventory"] == {SYMBOL: sold}, why
        assert [(kind, qty) for _, kind, qty in fills] == [("BUY", sold)], why
    assert 0 not in live or states[0]["risk0"]["position"] == {SYMBOL: sold}
    stats = {e.id: json.loads(e.detail) for events in logs for e in events if e.event == "stats"}
    assert all(stats[f"mm{i}"]["proposed"] >= 2 for i in live), stats
    lat = latencies_ms(logs, replay)
    reports = sorted(min(e.at_ns for events in logs for e in events
                         if e.event == "report" and e.id == k) for k in replay.orders)
    quoted_ms = (reports[0] - result["seeded_ns"]) / 1e6
    requoted_ms = (reports[2] - result["sold_ns"]) / 1e6
    print(f"seeded book -> first quote accepted {quoted_ms:.1f} ms; fill -> first requote "
          f"accepted {requoted_ms:.1f} ms; orders {len(replay.orders)} cancels "
          f"{len(replay.cancels)} fair values {len(replay.fair)}; proposal->commit ms "
          f"{lat['commit']}; proposal->first venue report ms {lat['venue']}; stats {stats}")
    return stats


def test_agents_quote_once_and_see_their_fill(tmp_path):
    check(run(tmp_path))


def check_reporters(result: dict, stats: dict, quorum: int) -> None:
    """The filled bid ended in the log once, at the ``quorum``-th report (the earlier ones
    pending, the later ones ORDER_ENDED), and no cancel was decided for it."""
    replay = result["replay"]
    bids = [k for k, o in replay.orders.items() if (o.side, o.price) == (Side.BUY, 1_899_800)]
    assert replay.ended == bids[:1], (replay.ended, bids)  # the first bid, the one filled
    assert bids[0] not in replay.cancels.values()
    verdicts = Counter()
    for name, counts in stats.items():
        if name.startswith("rep"):
            verdicts += Counter(counts)
    assert verdicts["applied"] == 1 and verdicts["pending"] == quorum - 1, stats


def test_reporters_end_a_filled_quote_in_the_log(tmp_path):
    """The seller takes the makers' whole bid: every node's reporter proposes its end, the log
    ends it once (the other reports read ORDER_ENDED), and no cancel is decided for it."""
    result = run(tmp_path, reporters=True)
    check_reporters(result, check(result), 1)


def test_a_restarted_node_rebuilds_its_agents_from_the_log(tmp_path):
    """Node 2 is killed and restarted with quotes live: from the state it saved (every 5 entries)
    and the committed log's tail, its maker claims the quotes again (so the fill counts as its
    own) and resumes above every seq it spent."""
    result = run(tmp_path, restart=True, options=lambda i: ["--state-every", "5"])
    stats = check(result)
    assert stats["mm2"].get("duplicate", 0) == 0 and stats["mm2"]["proposed"] >= 2
    states = [e.detail for e in result["logs"][2] if e.event == "state"]
    assert "loaded" in states, states  # the restart used the saved state
