"""Market maker: quote prices by hand, requote on fair-value moves and fills, no piling up."""

from __future__ import annotations

import pytest

from agora.core.enums import Side
from agora.core.events import CancelIntent, Decision, FairValue, OrderIntent
from agora.decision.agents import Fill, MarketMakerAgent, MarketMakerConfig
from agora.decision.agents.market_maker import quotes
from agora.decision.signing import AgentKey

KEY = AgentKey.generate("test-market-maker")
CONFIG = MarketMakerConfig(half_spread=200, qty=100, tick=100, skew_per_share=1)
B, S = Side.BUY, Side.SELL


def decision(index: int, action) -> Decision:
    return Decision(f"T{index}", index, action, f"T{index}")


def actions(proposals) -> list:
    return [p.action for p in proposals]


@pytest.mark.parametrize(
    "fair, inventory, expected",
    [
        (1_000_050, 0, (999_800, 1_000_300)),  # 999_850 down, 1_000_250 up to the cent
        (1_000_000, 0, (999_800, 1_000_200)),  # on the tick: no rounding
        (1_000_050, 300, (999_500, 1_000_000)),  # long 300: centre 999_750
        (1_000_050, -300, (1_000_100, 1_000_600)),  # short 300: centre 1_000_350
        (1_000_050, 1_000, (None, 999_300)),  # at max inventory: no bid
        (1_000_050, -1_000, (1_000_800, None)),  # at max short: no ask
        (150, 0, (None, 400)),  # a bid at or below zero is not quoted
    ],
)
def test_quote_prices_by_hand(fair, inventory, expected):
    assert quotes(fair, inventory, CONFIG) == expected


def test_quotes_never_touch():
    tight = MarketMakerConfig(half_spread=0, tick=100)
    assert quotes(1_000_000, 0, tight) == (1_000_000, 1_000_100)


def test_quotes_then_requotes_on_a_big_enough_move_only_when_nothing_is_in_flight():
    mm = MarketMakerAgent("mm", KEY, CONFIG)
    first = mm.on_fair_value(FairValue("AAA", 1_000_050, 100))
    bid, ask = OrderIntent("AAA", B, 100, 999_800), OrderIntent("AAA", S, 100, 1_000_300)
    assert actions(first) == [bid, ask]
    assert mm.on_fair_value(FairValue("AAA", 1_000_300, 100)) == []  # first batch in flight
    caught_up = actions(mm.on_decisions([decision(1, bid), decision(2, ask)]))
    assert set(mm.orders) == {"T1", "T2"}  # the batch landed: now catch up with the move
    assert caught_up == [
        CancelIntent("T1"),
        CancelIntent("T2"),
        OrderIntent("AAA", B, 100, 1_000_100),
        OrderIntent("AAA", S, 100, 1_000_500),
    ]


def test_requote_cancels_live_quotes_and_follows_inventory():
    mm = MarketMakerAgent("mm", KEY, CONFIG)
    bid, ask = actions(mm.on_fair_value(FairValue("AAA", 1_000_050, 100)))
    assert mm.on_fair_value(FairValue("AAA", 1_000_120, 100)) == []  # in flight
    assert mm.on_decisions([decision(1, bid), decision(2, ask)]) == []  # 70 < 100: stays
    moved = actions(mm.on_fair_value(FairValue("AAA", 1_000_200, 100)))
    new_bid, new_ask = OrderIntent("AAA", B, 100, 1_000_000), OrderIntent("AAA", S, 100, 1_000_400)
    assert moved == [CancelIntent("T1"), CancelIntent("T2"), new_bid, new_ask]
    mm.on_decisions([decision(3, moved[0]), decision(4, moved[1])])
    mm.on_decisions([decision(5, new_bid), decision(6, new_ask)])
    assert set(mm.orders) == {"T5", "T6"} and mm.outstanding == []
    filled = actions(mm.on_fill(Fill(9, "AAA", B, 100, 1_000_000, "T5", leaves_qty=0)))
    assert mm.inventory == {"AAA": 100}  # centre 1_000_100
    assert filled == [
        CancelIntent("T6"),
        OrderIntent("AAA", B, 100, 999_900),
        OrderIntent("AAA", S, 100, 1_000_300),
    ]
    assert mm.on_fill(Fill(10, "AAA", S, 5, 1_000_000, "SOMEONE", leaves_qty=0)) == []


def test_expired_quotes_are_requoted_on_the_next_fair_value():
    mm = MarketMakerAgent("mm", KEY, CONFIG, budget_ns=1_000)
    assert len(mm.on_fair_value(FairValue("AAA", 1_000_000, 100))) == 2
    mm.on_tick(10_000)  # both quotes vetoed or abandoned: never decided
    assert mm.outstanding == [] and mm.quoted == {}
    assert len(mm.on_fair_value(FairValue("AAA", 1_000_010, 100))) == 2  # a 10 move suffices


def test_only_configured_symbols_are_quoted():
    mm = MarketMakerAgent("mm", KEY, MarketMakerConfig(symbols=("AAA",)))
    assert mm.on_fair_value(FairValue("BBB", 1_000_000, 100)) == []
    assert len(mm.on_fair_value(FairValue("AAA", 1_000_000, 100))) == 2


@pytest.mark.parametrize(
    "bad", [{"qty": 0}, {"tick": 0}, {"half_spread": -1}, {"max_inventory": 0}]
)
def test_config_refuses_bad_values(bad):
    with pytest.raises(ValueError):
        MarketMakerConfig(**bad)
