"""A node hosting agents saves their state with its own: a restart from it gives the agents a
full replay of the session would give them, and a state whose agents.log was cut, or that
other agents saved, is refused (the node then replays everything)."""

from __future__ import annotations

import asyncio
import json
import random
from pathlib import Path

import msgspec
import pytest

from agora.bench.echo_floor import free_port
from agora.core.clock import SimClock
from agora.core.enums import Side, TimeInForce
from agora.core.events import CancelIntent, FairValue, OrderDone, OrderIntent, Proposal
from agora.decision.consensus.messages import Committed
from agora.decision.rules import RulesConfig, decision_id
from agora.decision.signing import AgentKey, sign
from agora.decision.venue_bridge import DecisionApplier
from agora.protocols.fix44 import enums as fx
from agora.protocols.fix44.messages import ExecutionReport
from agora.trading.agent_host import AgentHost, agent_state, load_specs, roster
from agora.trading.clients.fix_client import FixClient
from agora.trading.decision_node import DecisionNode, read_node_log
from agora.trading.node_log import NodeLog
from tests.trading.test_node_state import record

FIRM, SYMBOL, SESSION = "FIRM1", "AAPL", "AS"
SPECS = [
    {"kind": "market_view", "name": "mv0", "seed": "agent-state:mv0"},
    {"kind": "market_maker", "name": "mm0", "seed": "agent-state:mm0",
     "config": {"half_spread": 200, "qty": 100}},
    {"kind": "risk", "name": "risk0", "seed": "agent-state:risk0"},
    {"kind": "reporter", "name": "rep0", "seed": "agent-state:rep0"},
]
KEYS = {s["name"]: AgentKey.generate(s["seed"]) for s in SPECS}


def agents_file(directory: Path, specs: list = SPECS) -> Path:
    path = directory / "agents.json"
    path.write_text(json.dumps(specs))
    return path


def rules(directory: Path) -> RulesConfig:
    return RulesConfig(roster([agents_file(directory)]), session=SESSION, collar_bps=None)


def session_log(count: int, seed: int = 5) -> list[Committed]:
    """Fair values, the maker's orders, their cancels and reports that some filled."""
    rng, seqs, orders, log = random.Random(seed), dict.fromkeys(KEYS, 0), [], []
    for index in range(1, count + 1):
        roll = rng.random()
        if roll < 0.3:
            agent, action = "mv0", FairValue(SYMBOL, 1_900_000 + rng.randrange(-9, 9) * 100, 100)
        elif roll < 0.5 and orders:
            agent, action = "mm0", CancelIntent(orders.pop(rng.randrange(len(orders))))
        elif roll < 0.6 and orders:
            agent, action = "rep0", OrderDone(orders.pop(rng.randrange(len(orders))), "filled")
        else:
            agent = "mm0"
            action = OrderIntent(SYMBOL, rng.choice((Side.BUY, Side.SELL)), 100,
                                 1_900_000 + rng.randrange(-5, 5) * 100, TimeInForce.DAY)
            orders.append(decision_id(SESSION, index))
        seqs[agent] += 1
        payload = msgspec.msgpack.encode(sign(Proposal(agent, seqs[agent], 0, action),
                                              KEYS[agent]))
        log.append(Committed(index, 0, 1, index, payload, False))
    return log


def fill(exec_id: str, cl_ord_id: str, side: fx.Side) -> ExecutionReport:
    return ExecutionReport(
        order_id="1", exec_id=exec_id, exec_type=fx.ExecType.TRADE,
        ord_status=fx.OrdStatus.PARTIALLY_FILLED, side=side, leaves_qty=60, cum_qty=40,
        avg_px=1_900_000, cl_ord_id=cl_ord_id, symbol=SYMBOL, last_qty=40, last_px=1_900_000)


def fills(log: list[Committed], first: int) -> list[ExecutionReport]:
    """A fill of every third order decision of ``log``, ExecIDs from ``first``."""
    out = []
    for item in log:
        action = msgspec.msgpack.decode(item.payload, type=Proposal).action
        if isinstance(action, OrderIntent) and item.index % 3 == 0:
            side = fx.Side.BUY if action.side is Side.BUY else fx.Side.SELL
            out.append(fill(f"E{first + len(out)}", decision_id(SESSION, item.index), side))
    return out


class Node:
    """A decision node and the host of its agents, as ``decision_node.open_node`` makes them."""

    def __init__(self, directory: Path, *, state_every: int = 1, specs: list = SPECS) -> None:
        log = NodeLog(directory / "agents.log", SimClock())
        self.host = AgentHost(load_specs(agents_file(directory, specs)), SimClock(), log,
                              session=SESSION)
        client = FixClient("127.0.0.1", free_port(), "N0", store_dir=directory / "fix")
        applier = DecisionApplier(rules(directory), FIRM, hold_cancels=False,
                                  on_outcome=self.host.on_outcome)
        self.node = DecisionNode(applier, client, directory, on_report=self.host.on_report,
                                 state_every=state_every, agents=self.host)
        self.restored = self.host.restore_reports(self.node.agents_start)

    def close(self) -> None:
        self.node.state_every = 0  # closing here must not save over the state under test
        asyncio.run(self.node.close())
        self.host.log.close()

    def agents(self) -> list:
        return [(agent_state(a), sorted(a.orders), a.seq) for a in self.host.agents] + [
            {name: dict(c) for name, c in self.host.counts.items()}, len(self.host._exec_ids),
            sorted(self.host.agents[3].live)]


def saved_then_more(directory: Path, log: list[Committed], cut: int) -> None:
    """A node applied ``log[:cut]`` and heard fills of its orders, then saved; then its replica
    recorded the rest and more fills were logged."""
    record(directory / "committed.log", log[:cut])
    first = Node(directory)
    for msg in fills(log[:cut], 0):
        first.host.on_report(msg)
    first.node.save_state()
    first.close()
    record(directory / "committed.log", log[cut:])
    later = Node(directory, state_every=0)  # as the live node hears the later fills
    for msg in fills(log[cut:], 1_000):
        later.host.on_report(msg)
    later.close()


@pytest.mark.parametrize("cut", [1, 90, 250])
def test_agents_restarted_from_the_saved_state_are_the_agents_of_a_full_replay(tmp_path, cut):
    log = session_log(300)
    saved_then_more(tmp_path, log, cut)
    restarted = Node(tmp_path)  # from the saved state: the record's tail, the later fills
    assert [e.detail for e in read_node_log(tmp_path / "venue.log")
            if e.event == "state"][-1] == "loaded"
    replayed = Node(tmp_path, state_every=0)  # everything, as before agents saved state
    assert restarted.agents() == replayed.agents()
    # the fills heard before the save were in the state: only the later ones were read again
    assert restarted.restored == replayed.restored - len(fills(log[:cut], 0))
    maker = replayed.host.agents[1]
    assert maker.inventory and replayed.host.counts["rep0"]["applied"]  # not vacuous
    restarted.close()
    replayed.close()


def test_a_state_is_refused_when_agents_log_was_cut_or_other_agents_saved_it(tmp_path):
    log = session_log(120)
    saved_then_more(tmp_path, log, 60)
    other = [spec for spec in SPECS if spec["name"] != "risk0"]
    n = Node(tmp_path, specs=other)
    why = [e.detail for e in read_node_log(tmp_path / "venue.log") if e.event == "state"][-1]
    assert "other rules, participant, cancel mode or agents" in why
    n.close()
    agents_log = tmp_path / "agents.log"
    agents_log.write_bytes(agents_log.read_bytes()[:1_000])  # cut below the saved length
    n = Node(tmp_path)
    why = [e.detail for e in read_node_log(tmp_path / "venue.log") if e.event == "state"][-1]
    assert "agents.log no longer holds what it read" in why
    full = Node(tmp_path, state_every=0)
    assert n.agents() == full.agents()  # replayed from the start instead
    n.close()
    full.close()
