"""The agent API: sequence numbers, signatures, time from the calls, own-order bookkeeping."""

from __future__ import annotations

import pytest

from agora.core.enums import Side, TimeInForce
from agora.core.events import CancelIntent, Decision, Execution, OrderIntent
from agora.decision.agents import Agent, Fill, fills_for
from agora.decision.rules import Member, Role
from agora.decision.signing import AgentKey, verify
from agora.feed.book import BookView, Level

KEY = AgentKey.generate("test-agents-base")
BUY = OrderIntent("AAA", Side.BUY, 100, 1_000_000)
SELL = OrderIntent("AAA", Side.SELL, 100, 1_000_200)


class Scripted(Agent):
    """Proposes what the test queues, and records what the hooks were told."""

    role = Role.STRATEGY

    def __init__(self, **kw) -> None:
        super().__init__("scripted", KEY, **kw)
        self.queue: list = []
        self.seen: list = []

    def _tick(self, now_ns):
        actions, self.queue = self.queue, []
        return actions

    def _decided(self, decision, mine):
        self.seen.append(("decided", decision.decision_id, mine))
        return []

    def _expired(self, action):
        self.seen.append(("expired", action))
        return []

    def _fill(self, fill, order):
        self.seen.append(("fill", fill.client_order_id, order is not None))
        return []


def decision(index: int, action) -> Decision:
    ident = f"T{index}"
    return Decision(ident, index, action, ident)


def test_proposals_carry_name_growing_seq_budget_and_a_valid_signature():
    agent = Scripted(budget_ns=7_000)
    agent.queue = [BUY, SELL]
    first = agent.on_tick(10)
    agent.queue = [CancelIntent("T1")]
    second = agent.on_tick(11)
    assert [p.seq for p in first + second] == [1, 2, 3]
    assert all(p.agent == "scripted" and p.budget_ns == 7_000 for p in first + second)
    assert [p.action for p in first] == [BUY, SELL]
    assert all(verify(p, {"scripted": KEY.public_bytes}) for p in first + second)
    assert agent.member(weight=3) == Member(Role.STRATEGY, KEY.public_bytes, 3)
    restarted = Scripted(last_seq=3)
    restarted.queue = [BUY]
    assert [p.seq for p in restarted.on_tick(12)] == [4]


def test_time_only_comes_from_the_calls_and_never_goes_back():
    agent = Scripted()
    agent.on_tick(500)
    agent.on_book(BookView("AAA", 300, [Level(1, 1, 1)], [Level(2, 1, 1)]))
    assert agent.now_ns == 500
    agent.on_fill(Fill(900, "AAA", Side.BUY, 1, 1, "X"))
    assert agent.now_ns == 900


def test_own_decisions_are_claimed_by_equal_action_first_in_first_out():
    agent = Scripted()
    agent.queue = [BUY, BUY, SELL]
    agent.on_tick(0)
    agent.on_decisions([decision(4, BUY), decision(5, OrderIntent("AAA", Side.BUY, 1, 1))])
    assert agent.seen == [("decided", "T4", True), ("decided", "T5", False)]
    assert list(agent.orders) == ["T4"] and agent.orders["T4"].leaves_qty == 100
    assert [a for _, a, _ in agent.outstanding] == [BUY, SELL]
    assert agent.outstanding_for("AAA") == [BUY, SELL] and agent.outstanding_for("BBB") == []


def test_a_voter_recognises_the_consolidated_order_of_a_vote_as_its_own():
    agent = Scripted()
    agent.queue = [BUY, SELL, OrderIntent("AAA", Side.BUY, 50, 999_900)]  # revised its bid
    agent.on_tick(0)
    # the vote agreed on a price and size neither ballot had; the agent is among its voters
    agreed = OrderIntent("AAA", Side.BUY, 40, 999_800)
    voted = Decision("T9", 9, agreed, "T9", ("other", "scripted"))
    not_voted = Decision("TA", 10, OrderIntent("AAA", Side.SELL, 1, 1), "TA", ("other",))
    agent.on_decisions([voted, not_voted])
    assert agent.seen == [("decided", "T9", True), ("decided", "TA", False)]
    assert agent.orders["T9"].intent == agreed and agent.orders["T9"].leaves_qty == 40
    # the oldest outstanding ballot of that key is settled; the rest still waits
    assert [a for _, a, _ in agent.outstanding] == [SELL, OrderIntent("AAA", Side.BUY, 50,
                                                                      999_900)]


def test_undecided_actions_expire_after_the_ttl_and_are_handed_back():
    agent = Scripted(budget_ns=1_000)  # ttl: twice the budget
    agent.queue = [BUY]
    agent.on_tick(100)
    agent.on_tick(2_100)
    assert agent.seen == [] and agent.outstanding
    agent.on_tick(2_101)
    assert agent.seen == [("expired", BUY)] and not agent.outstanding
    assert Scripted(budget_ns=0).pending_ttl_ns == 1_000_000_000
    assert Scripted(pending_ttl_ns=5).pending_ttl_ns == 5
    with pytest.raises(ValueError):
        Scripted(budget_ns=-1)


def test_fills_update_and_close_own_orders_cancels_close_them_too():
    agent = Scripted()
    agent.queue = [BUY, SELL]
    agent.on_tick(0)
    agent.on_decisions([decision(1, BUY), decision(2, SELL)])
    agent.on_fill(Fill(1, "AAA", Side.BUY, 40, 1_000_000, "T1", leaves_qty=60))
    assert agent.orders["T1"].leaves_qty == 60
    agent.on_fill(Fill(2, "AAA", Side.BUY, 60, 1_000_000, "T1", leaves_qty=0))
    agent.on_fill(Fill(3, "AAA", Side.SELL, 5, 1_000_200, "OTHER", leaves_qty=0))
    assert list(agent.orders) == ["T2"]
    assert agent.seen[-3:] == [("fill", "T1", True), ("fill", "T1", True), ("fill", "OTHER", False)]
    agent.on_decisions([decision(3, CancelIntent("T2"))])  # anyone's cancel closes it
    assert agent.orders == {}


def test_a_cancelled_orders_late_fill_is_still_its_own_until_the_venue_is_done():
    agent = Scripted(closing_max=2)
    agent.queue = [BUY, SELL]
    agent.on_tick(0)
    agent.on_decisions([decision(1, BUY), decision(2, SELL), decision(3, CancelIntent("T1"))])
    assert list(agent.orders) == ["T2"]  # the strategy no longer counts on T1
    agent.on_fill(Fill(5, "AAA", Side.BUY, 30, 1_000_000, "T1", leaves_qty=70))  # made earlier
    assert agent.seen[-1] == ("fill", "T1", True)
    agent.on_order_done("T1", 6)  # the venue's answer: cancelled (or too late)
    agent.on_fill(Fill(7, "AAA", Side.BUY, 30, 1_000_000, "T1", leaves_qty=40))
    assert agent.seen[-1] == ("fill", "T1", False)
    agent.on_order_done("T2", 8)  # the venue ended an open order on its own (an expiry)
    assert agent.orders == {}
    # a driver that never says: only the newest ``closing_max`` cancelled orders are kept
    agent.queue = [BUY, BUY, BUY]
    agent.on_tick(9)
    agent.on_decisions([decision(i, BUY) for i in (10, 11, 12)])
    agent.on_decisions([decision(i + 3, CancelIntent(f"T{i}")) for i in (10, 11, 12)])
    assert list(agent._closing) == ["T11", "T12"]


def test_fills_for_takes_the_participants_side_of_a_trade():
    trade = Execution(
        ts=9, symbol="AAA", trade_id=1, price=1_000_100, qty=30, aggressor=Side.BUY,
        buy_order_id=1, buy_participant="us", buy_client_order_id="T1", buy_leaves=70,
        sell_order_id=2, sell_participant="them", sell_client_order_id="X", sell_leaves=0,
    )  # fmt: skip
    assert fills_for(trade, "us") == [Fill(9, "AAA", Side.BUY, 30, 1_000_100, "T1", 70)]
    assert fills_for(trade, "nobody") == []
    crossed = fills_for(
        Execution(
            **{**{f: getattr(trade, f) for f in trade.__struct_fields__}, "sell_participant": "us"}
        ),
        "us",
    )
    assert [f.side for f in crossed] == [Side.BUY, Side.SELL]


def test_default_hooks_propose_nothing():
    class Idle(Agent):
        role = Role.VIEW

    idle = Idle("idle", KEY)
    view = BookView("AAA", 1, [], [])
    assert idle.on_book(view) == idle.on_tick(2) == idle.on_decisions([]) == []
    assert idle.on_fill(Fill(3, "AAA", Side.BUY, 1, 1, "X")) == []
    assert OrderIntent("A", Side.BUY, 1, 1).tif is TimeInForce.DAY
