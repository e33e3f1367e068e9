"""Execution (TWAP): the slice schedule, size caps, catch-up, and re-release after expiry."""

from __future__ import annotations

import pytest

from agora.core.enums import Side, TimeInForce
from agora.core.events import Decision, OrderIntent
from agora.decision.agents import ExecutionAgent, Fill
from agora.decision.signing import AgentKey

KEY = AgentKey.generate("test-execution")
PARENT = OrderIntent("AAA", Side.BUY, 1_000, 1_000_000, TimeInForce.DAY)


def child(qty: int) -> OrderIntent:
    return OrderIntent("AAA", Side.BUY, qty, 1_000_000, TimeInForce.DAY)


def qtys(proposals) -> list[int]:
    return [p.action.qty for p in proposals]


def agent(**kw) -> ExecutionAgent:
    worker = ExecutionAgent("twap", KEY, slice_ns=1_000, max_child_qty=150, **kw)
    worker.start(PARENT, start_ns=10_000, end_ns=20_000)  # 10 slices of 100
    return worker


def test_one_child_per_slice_capped_and_caught_up():
    twap = agent()
    assert twap.on_tick(9_999) == []  # not started
    first = twap.on_tick(10_000)
    assert [p.action for p in first] == [child(100)]  # symbol, side, price, tif kept
    assert twap.on_tick(10_500) == []  # same slice
    assert qtys(twap.on_tick(11_000)) == [100]
    assert qtys(twap.on_tick(15_000)) == [150]  # target 600 - 200 released: capped
    assert qtys(twap.on_tick(16_000)) == [150]  # 700 - 350
    assert qtys(twap.on_tick(25_000)) == [150]  # after the end: the rest, 150 a slice
    assert twap.released == 650


def test_schedule_partitions_the_parent_exactly():
    worker = ExecutionAgent("twap", KEY, slice_ns=3, max_child_qty=10**9)
    worker.start(OrderIntent("AAA", Side.SELL, 1_001, 5), start_ns=0, end_ns=20)  # 7 slices
    released = [sum(qtys(worker.on_tick(t))) for t in range(0, 21, 3)]
    assert sum(released) == 1_001 and max(released) - min(released) <= 1
    assert worker.slices == 7


def test_decided_children_complete_the_parent_expired_ones_are_released_again():
    twap = agent(budget_ns=100)  # undecided children expire after 200 ns
    assert qtys(twap.on_tick(10_000)) == [100]
    second = twap.on_tick(11_000)[0].action  # the first expired undecided: 200 due, capped
    assert second == child(150) and twap.released == 150
    twap.on_decisions([Decision("T1", 1, second, "T1")])
    assert twap.decided == 150 and twap.outstanding == []
    twap.on_fill(Fill(11_050, "AAA", Side.BUY, 40, 1_000_000, "T1", leaves_qty=60))
    twap.on_fill(Fill(11_060, "AAA", Side.BUY, 40, 1_000_000, "OTHER", leaves_qty=0))
    assert twap.filled == 40
    for t in range(12_000, 30_000, 1_000):
        for p in twap.on_tick(t):
            twap.on_decisions([Decision(f"T{t}", t, p.action, f"T{t}")])
    assert twap.done and twap.decided == 1_000
    assert twap.on_tick(40_000) == []


def test_start_refuses_bad_parents_and_a_second_parent_while_working():
    twap = agent()
    with pytest.raises(ValueError, match="still working"):
        twap.start(PARENT, 0, 10)
    fresh = ExecutionAgent("twap", KEY, slice_ns=1, max_child_qty=1)
    with pytest.raises(ValueError):
        fresh.start(OrderIntent("AAA", Side.BUY, 0, 1), 0, 10)
    with pytest.raises(ValueError):
        fresh.start(PARENT, 10, 10)
    with pytest.raises(ValueError):
        ExecutionAgent("twap", KEY, slice_ns=0, max_child_qty=1)
    assert fresh.on_tick(5) == []  # nothing to work
