"""Risk agent: exact position accounting, and vetoes on and off around each limit."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agora.core.enums import Side
from agora.core.events import CancelIntent, Decision, OrderIntent, Veto
from agora.decision.agents import Fill, RiskAgent, RiskLimits
from agora.decision.agents.risk import Book
from agora.decision.signing import AgentKey
from agora.feed.book import BookView, Level

KEY = AgentKey.generate("test-risk")
B, S = Side.BUY, Side.SELL


def decision(index: int, action) -> Decision:
    return Decision(f"T{index}", index, action, f"T{index}")


def vetoes(proposals) -> list[tuple[str, Side | None, bool]]:
    return [(p.action.symbol, p.action.side, p.action.active) for p in proposals]


def test_average_cost_accounting_by_hand():
    book = Book()
    book.fill(B, 100, 1_000_000)
    book.fill(B, 100, 1_010_000)
    assert (book.qty, book.cost) == (200, 201_000_000)  # average 100.50
    book.fill(S, 150, 1_020_000)  # closes 150 at 102.00: 1.50 x 150 = 225.00
    assert (book.qty, book.cost, book.realized) == (50, 50_250_000, 2_250_000)
    book.fill(S, 100, 1_000_000)  # closes 50 at 100.00 (-0.50 x 50), opens 50 short at 100
    assert (book.qty, book.cost, book.realized) == (-50, -50_000_000, 2_250_000 - 250_000)
    book.mark = 990_000
    assert book.unrealized == -50 * 990_000 + 50_000_000 == 500_000  # short gains 1.00 x 50
    book.fill(B, 50, 980_000)  # covers at 98.00: 2.00 x 50 = 100.00
    assert (book.qty, book.cost, book.realized) == (0, 0, 2_000_000 + 1_000_000)


def test_uneven_closes_keep_the_remainder_in_the_cost():
    book = Book()
    for price in (1, 1, 2):  # cost 4 for 3 shares: no exact average
        book.fill(B, 1, price)
    book.fill(S, 1, 10)
    assert (book.qty, book.cost, book.realized) == (2, 3, 9)  # removes 4 * 1 // 3 = 1
    book.fill(S, 2, 10)
    assert (book.qty, book.cost, book.realized) == (0, 0, 26)  # net cash: 30 - 4


fills = st.lists(
    st.tuples(st.sampled_from([B, S]), st.integers(1, 500), st.integers(1, 2_000_000)),
    max_size=30,
)


@settings(max_examples=200, deadline=None)
@given(fills=fills, flat_price=st.integers(1, 2_000_000))
def test_realized_equals_net_cash_once_flat(fills, flat_price):
    book = Book()
    cash = 0
    for side, qty, price in fills:
        book.fill(side, qty, price)
        cash += -qty * price if side is B else qty * price
        assert book.realized - book.cost == cash  # every share's cost is in one or the other
    if book.qty:
        side = S if book.qty > 0 else B
        cash += abs(book.qty) * flat_price if side is S else -abs(book.qty) * flat_price
        book.fill(side, abs(book.qty), flat_price)
    assert (book.qty, book.cost) == (0, 0)
    assert book.realized == cash


def test_position_limit_counts_open_orders_and_lifts_below_release():
    agent = RiskAgent("risk", KEY, RiskLimits(max_position=1_000, release_pct=90))
    buy = OrderIntent("AAA", B, 600, 1_000_000)
    assert agent.on_decisions([decision(1, buy)]) == []
    out = agent.on_decisions([decision(2, OrderIntent("AAA", B, 400, 1_000_000))])
    assert vetoes(out) == [("AAA", B, True)]  # 600 + 400 open: one more share would breach
    assert out[0].action.reason == "position 1000 >= 1000"
    assert agent.on_decisions([decision(3, OrderIntent("BBB", S, 10, 1_000_000))]) == []
    assert vetoes(agent.on_fill(Fill(5, "AAA", B, 50, 1_000_000, "T2", leaves_qty=350))) == []
    out = agent.on_decisions([decision(4, CancelIntent("T2"))])  # worst now 650
    assert vetoes(out) == [("AAA", B, False)]
    assert agent.books["AAA"].qty == 50 and agent.books["AAA"].open_buy == 600


def test_at_a_position_limit_only_the_side_that_adds_to_it_is_vetoed():
    agent = RiskAgent("risk", KEY, RiskLimits(max_position=1_000, release_pct=90))
    agent.on_fill(Fill(1, "AAA", B, 1_000, 1_000_000, "X"))  # long 1000: at the limit
    assert agent.vetoes[("AAA", B)].active and ("AAA", S) not in agent.vetoes
    # selling 1,500 would reduce the long and then go short 500: no veto of either side
    out = agent.on_decisions([decision(1, OrderIntent("AAA", S, 1_500, 1_000_000))])
    assert vetoes(out) == []
    out = agent.on_fill(Fill(2, "AAA", S, 1_500, 1_000_000, "T1", leaves_qty=0))
    assert vetoes(out) == [("AAA", B, False)]  # short 500: the long side is far from its limit
    out = agent.on_decisions([decision(2, OrderIntent("AAA", S, 500, 1_000_000))])
    assert vetoes(out) == [("AAA", S, True)]  # short 500 + 500 open to sell: the other side


def test_release_gap_keeps_a_veto_until_usage_falls_far_enough():
    agent = RiskAgent("risk", KEY, RiskLimits(max_position=1_000, release_pct=90))
    agent.on_decisions([decision(1, OrderIntent("AAA", S, 1_000, 1_000_000))])
    assert agent.vetoes[("AAA", S)].active and ("AAA", B) not in agent.vetoes
    out = agent.on_fill(Fill(1, "AAA", S, 1_000, 1_000_000, "T1", leaves_qty=0))
    assert out == []  # still short 1000
    assert agent.on_fill(Fill(2, "AAA", B, 50, 1_000_000, "X")) == []  # 950: inside the gap
    assert vetoes(agent.on_fill(Fill(3, "AAA", B, 51, 1_000_000, "X"))) == [("AAA", S, False)]


def test_notional_limit_uses_the_mark():
    agent = RiskAgent("risk", KEY, RiskLimits(max_notional=100 * 1_000_000))
    agent.on_book(BookView("AAA", 1, [Level(999_900, 5, 1)], [Level(1_000_100, 5, 1)]))
    assert agent.books["AAA"].mark == 1_000_000
    assert agent.on_decisions([decision(1, OrderIntent("AAA", B, 99, 1_000_000))]) == []
    book = BookView("AAA", 2, [Level(1_020_000, 5, 1)], [Level(1_020_200, 5, 1)])
    out = agent.on_book(book)  # 99 x 1_020_100 >= 100 x 1_000_000
    assert vetoes(out) == [("AAA", B, True)] and out[0].action.reason.startswith("notional")


def test_loss_limit_vetoes_every_symbol_and_reasserts():
    limits = RiskLimits(max_loss=100_000, release_pct=50, reassert_ns=1_000)
    agent = RiskAgent("risk", KEY, limits)
    agent.on_fill(Fill(10, "AAA", B, 100, 1_000_000, "T1"))
    down = BookView("AAA", 20, [Level(998_900, 1, 1)], [Level(999_100, 1, 1)])  # mark 999_000
    out = agent.on_book(down)  # unrealized -100 x 1_000 = -100_000
    assert vetoes(out) == [("", None, True)] and agent.pnl == -100_000
    assert agent.on_tick(500) == []
    again = agent.on_tick(1_020)
    assert [p.action for p in again] == [Veto("", "loss 100000 >= 100000", True)]
    up = BookView("AAA", 1_100, [Level(999_500, 1, 1)], [Level(999_700, 1, 1)])  # -40_000
    assert vetoes(agent.on_book(up)) == [("", None, False)]
    assert agent.on_tick(5_000)[0].action == Veto("", "within limits", False)  # lifts repeat too


@pytest.mark.parametrize(
    "bad", [{"max_position": 0}, {"max_loss": -1}, {"release_pct": 0}, {"release_pct": 101}]
)
def test_limits_refuse_bad_values(bad):
    with pytest.raises(ValueError):
        RiskLimits(**bad)
