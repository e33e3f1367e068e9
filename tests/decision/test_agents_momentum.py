"""Momentum: Cont-Kukanov-Stoikov OFI by hand, the rolling window, and the trading gates."""

from __future__ import annotations

import pytest

from agora.core.enums import Side, TimeInForce
from agora.core.events import Decision, OrderIntent
from agora.decision.agents import Fill, MomentumAgent, MomentumConfig
from agora.decision.agents.momentum import L1, ofi_event, top_of_book
from agora.decision.signing import AgentKey
from agora.feed.book import BookView, Level

KEY = AgentKey.generate("test-momentum")
B, S = Side.BUY, Side.SELL
PREV = L1(bid_price=100, bid_qty=10, ask_price=102, ask_qty=10)


@pytest.mark.parametrize(
    "cur, e",
    [
        (L1(100, 10, 102, 10), 0),  # nothing changed
        (L1(100, 15, 102, 10), 5),  # bid queue grew by 5
        (L1(100, 10, 102, 4), 6),  # ask queue shrank by 6: buying pressure
        (L1(101, 7, 102, 10), 7),  # bid improved: its whole new queue counts
        (L1(99, 4, 102, 10), -10),  # bid dropped: its whole old queue is gone
        (L1(100, 10, 101, 6), -6),  # ask improved: selling pressure of its new queue
        (L1(100, 10, 103, 8), 10),  # ask lifted: its old queue is gone
        (L1(101, 3, 101, 2), 3 - 2),  # both improved to lock at 101
    ],
)
def test_ofi_event_by_hand(cur, e):
    assert ofi_event(PREV, cur) == e


def view(ts: int, bid: tuple[int, int], ask: tuple[int, int], sym: str = "AAA") -> BookView:
    return BookView(sym, ts, [Level(bid[0], bid[1], 1)], [Level(ask[0], ask[1], 1)])


def test_top_of_book_needs_both_sides():
    assert top_of_book(view(0, (100, 1), (101, 2))) == L1(100, 1, 101, 2)
    assert top_of_book(BookView("AAA", 0, [Level(100, 1, 1)], [])) is None


def test_ofi_is_a_rolling_sum_over_the_window():
    agent = MomentumAgent("mo", KEY, MomentumConfig(window=3, threshold=1_000))
    for ts, bid_qty in enumerate([10, 20, 25, 22, 26]):  # e: +10, +5, -3, +4
        agent.on_book(view(ts, (100, bid_qty), (102, 10)))
    assert agent.ofi("AAA") == 5 - 3 + 4
    agent.on_book(BookView("AAA", 9, [], [Level(102, 10, 1)]))  # a gap breaks the chain
    agent.on_book(view(10, (100, 500), (102, 10)))
    assert agent.ofi("AAA") == 0 and agent.ofi("ZZZ") == 0


def test_signal_buys_the_ask_then_cooldown_outstanding_and_position_gate_it():
    config = MomentumConfig(window=5, threshold=20, qty=100, max_position=150, cooldown_ns=1_000)
    agent = MomentumAgent("mo", KEY, config)
    assert agent.on_book(view(0, (100, 10), (102, 10))) == []
    assert agent.on_book(view(1, (100, 20), (102, 10))) == []  # OFI 10
    signal = agent.on_book(view(2, (101, 15), (102, 10)))  # +15: OFI 25
    buy = OrderIntent("AAA", B, 100, 102, TimeInForce.IOC)
    assert [p.action for p in signal] == [buy] and agent.ofi("AAA") == 0  # window restarts
    assert agent.on_book(view(3, (101, 60), (102, 10))) == []  # cooling down
    assert agent.on_book(view(1_500, (101, 200), (102, 10))) == []  # buy still outstanding
    agent.on_decisions([Decision("T7", 7, buy, "T7")])
    agent.on_fill(Fill(1_600, "AAA", B, 100, 102, "T7", leaves_qty=0))
    assert agent.position == {"AAA": 100}
    assert agent.on_book(view(1_700, (101, 400), (102, 10))) == []  # 200 would pass 150
    sell = agent.on_book(view(1_800, (100, 5), (101, 50)))  # -400 bid dropped, -50 ask: -65
    assert [p.action for p in sell] == [OrderIntent("AAA", S, 100, 100, TimeInForce.IOC)]


def test_symbols_filter_and_config_checks():
    agent = MomentumAgent("mo", KEY, MomentumConfig(symbols=("AAA",), window=2, threshold=1))
    assert agent.on_book(view(0, (100, 1), (101, 1), "BBB")) == []
    assert agent.on_book(view(1, (100, 5), (101, 1), "BBB")) == [] and agent.ofi("BBB") == 0
    with pytest.raises(ValueError):
        MomentumConfig(window=0)
    with pytest.raises(ValueError):
        MomentumConfig(cooldown_ns=-1)
