"""The reporter agent, and the log that learns from it when the venue is done with an order.

Unit: which reports become an OrderDone (once per order, none for a cancel decision's own end
or for orders not decided). Through the rules and the applier: the ended order leaves the
rules' live orders and the applier's memory, and a later cancel of it is refused as
ORDER_ENDED instead of being sent.
"""

from __future__ import annotations

import msgspec
import pytest

from agora.core.enums import Side
from agora.core.events import CancelIntent, Decision, OrderDone, OrderIntent, Proposal
from agora.decision.agents import Fill, ReporterAgent
from agora.decision.agents.reporter import ReporterConfig
from agora.decision.consensus import Committed
from agora.decision.rules import Member, Role, RulesConfig, Verdict, decision_id
from agora.decision.signing import AgentKey, sign, verify
from agora.decision.venue_bridge import DecisionApplier

SYMBOL = "AAPL"
BUY = OrderIntent(SYMBOL, Side.BUY, 100, 990_000)
REPORTER_KEY = AgentKey.generate("test-reporter")
STRATEGY_KEY = AgentKey.generate("test-reporter-strategy")


def order(index: int) -> Decision:
    ident = decision_id("R", index)
    return Decision(ident, index, BUY, ident, ("s1",))


def cancel(index: int, target: int) -> Decision:
    ident = decision_id("R", index)
    return Decision(ident, index, CancelIntent(decision_id("R", target)), ident, ("s1",))


def fill(index: int, leaves: int) -> Fill:
    return Fill(5, SYMBOL, Side.BUY, 50, 990_000, decision_id("R", index), leaves)


def actions(proposals: list[Proposal]) -> list:
    assert all(verify(p, {"rep": REPORTER_KEY.public_bytes}) for p in proposals)
    return [p.action for p in proposals]


def test_each_order_that_ends_at_the_venue_is_reported_once():
    rep = ReporterAgent("rep", REPORTER_KEY)
    assert actions(rep.on_decisions([order(1), order(2), order(3), cancel(4, 2)], 1)) == []
    assert actions(rep.on_fill(fill(1, 50))) == []  # still open
    assert actions(rep.on_fill(fill(1, 0))) == [OrderDone("R1", "filled")]
    assert actions(rep.on_fill(fill(1, 0))) == []  # a resend of the last fill
    assert actions(rep.on_order_done("R1", 6)) == []  # said already
    assert actions(rep.on_order_done("R2", 6)) == []  # its end is the cancel decision's
    assert actions(rep.on_order_done("XX9", 6)) == []  # no order of this log
    assert actions(rep.on_order_done("R3", 7)) == [OrderDone("R3", "ended")]
    assert rep.live == {} and rep._client_of == {}  # nothing left of three orders
    assert rep.seq == 2 and rep.outstanding == []  # reports are not awaited as decisions


def test_an_order_the_log_ended_is_not_reported_again():
    """Another reporter's word ended it, or this one's before a restart."""
    rep = ReporterAgent("rep", REPORTER_KEY)
    rep.on_decisions([order(1), order(2)], 1)
    rep.on_ended("R1")
    rep.on_ended("R7")  # not an order it knows: nothing happens
    assert actions(rep.on_fill(fill(1, 0))) == []
    assert list(rep.live) == ["R2"]


def test_a_report_is_proposed_again_until_the_log_ends_its_order():
    """Its proposal may be lost, or the quorum wait for reporters that are down: again after
    repeat_ms, then twice as long each time, up to 64 times; never once the log ended it."""
    rep = ReporterAgent("rep", REPORTER_KEY, ReporterConfig(repeat_ms=10))
    rep.on_decisions([order(1), order(2), order(3)], 0)
    ms = 1_000_000
    assert actions(rep.on_fill(fill(1, 0))) == [OrderDone("R1", "filled")]  # at 5 ns
    assert actions(rep.on_order_done("R2", 5)) == [OrderDone("R2", "ended")]
    repeated = []
    for now in range(ms, 2_000 * ms, ms):  # a tick a millisecond for two seconds
        repeated += [(now // ms, a.decision_id) for a in actions(rep.on_tick(now))]
    waits = [10, 20, 40, 80, 160, 320, 640, 640]  # capped at 64 x 10 ms
    due = [sum(waits[:k + 1]) + 1 for k in range(len(waits))]  # the first tick at or past 5 ns
    assert [t for t, d in repeated if d == "R1"] == [t for t in due if t < 2_000]
    assert [t for t, d in repeated if d == "R2"] == [t for t, d in repeated if d == "R1"]
    rep.on_ended("R1")  # the log ended it (this report, or another reporter's)
    rep.on_decisions([cancel(4, 2)], 2_000 * ms)  # a cancel decision ended R2
    assert actions(rep.on_tick(10_000 * ms)) == [] and rep.unconfirmed == {}
    assert actions(rep.on_fill(fill(3, 0))) == [OrderDone("R3", "filled")]
    assert list(rep.unconfirmed) == ["R3"]


def test_a_reporter_refuses_a_repeat_that_is_not_positive():
    with pytest.raises(ValueError, match="repeat_ms"):
        ReporterConfig(repeat_ms=0)


def entry(index: int, agent: str, seq: int, action, key: AgentKey) -> Committed:
    payload = msgspec.msgpack.encode(sign(Proposal(agent, seq, 0, action), key))
    return Committed(index, 0, 1, index, payload, False)


def test_a_reported_order_leaves_the_log_and_cannot_be_cancelled():
    config = RulesConfig(
        members={"s1": Member(Role.STRATEGY, STRATEGY_KEY.public_bytes),
                 "rep": Member(Role.REPORT, REPORTER_KEY.public_bytes)},
        session="R", collar_bps=None)
    verdicts: list[Verdict] = []
    applier = DecisionApplier(config, "FIRM1", hold_cancels=False,
                              on_outcome=lambda e, outcome: verdicts.append(outcome.verdict))
    rep = ReporterAgent("rep", REPORTER_KEY)
    out = applier.apply(entry(1, "s1", 1, BUY, STRATEGY_KEY))
    out += applier.apply(entry(2, "s1", 2, BUY, STRATEGY_KEY))
    rep.on_decisions([o.decision for o in out], 1)
    assert applier._orders.keys() == {"R1", "R2"}
    (done,) = rep.on_fill(fill(1, 0))
    index = 3
    for proposal in (done, done):  # the same report committed twice
        applier.apply(Committed(index, 0, 1, index, msgspec.msgpack.encode(proposal), False))
        index += 1
    assert applier._orders.keys() == {"R2"} and applier.counts["ended"] == 1
    assert applier.aggregator._live.keys() == {"R2"}
    assert applier.apply(entry(5, "s1", 3, CancelIntent("R1"), STRATEGY_KEY)) == []
    (cancelled,) = applier.apply(entry(6, "s1", 4, CancelIntent("R2"), STRATEGY_KEY))
    assert cancelled.order == out[1].command and cancelled.target == "R2"
    assert verdicts == [Verdict.DECIDED, Verdict.DECIDED, Verdict.APPLIED, Verdict.DUPLICATE,
                        Verdict.ORDER_ENDED, Verdict.DECIDED]
    assert applier._orders == {} and applier.aggregator._live == {}
