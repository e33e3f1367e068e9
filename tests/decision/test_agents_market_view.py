"""Market view: microprice, imbalances and fair value on small books computed by hand."""

from __future__ import annotations

from fractions import Fraction

import pytest

from agora.core.events import FairValue
from agora.decision.agents import MarketViewAgent, MarketViewConfig
from agora.decision.agents.market_view import depth_imbalance, fair_value, imbalance, microprice
from agora.decision.signing import AgentKey, verify
from agora.feed.book import BookView, Level

KEY = AgentKey.generate("test-market-view")

# bid 100.0000 x 300 over 99.9900 x 500; ask 100.0200 x 100 under 100.0300 x 700
BIDS = [Level(1_000_000, 300, 2), Level(999_900, 500, 3)]
ASKS = [Level(1_000_200, 100, 1), Level(1_000_300, 700, 4)]
BOOK = BookView("AAA", 1_000, BIDS, ASKS)


def test_microprice_and_imbalances_by_hand():
    # (1_000_000 * 100 + 1_000_200 * 300) / 400 = 400_060_000 / 400
    assert microprice(BIDS[0], ASKS[0]) == 1_000_150
    assert imbalance(300, 100) == Fraction(1, 2)  # (300 - 100) / 400
    assert imbalance(0, 0) == 0
    assert depth_imbalance(BIDS, ASKS, 1) == Fraction(1, 2)
    assert depth_imbalance(BIDS, ASKS, 2) == 0  # 800 a side


@pytest.mark.parametrize(
    "weight, expected",
    [
        (0, 1_000_150),  # microprice: mid 1_000_100 + half spread 100 x I1 1/2
        (50, 1_000_125),  # mid + 100 x (1/2 x 1/2 + 1/2 x 0)
        (100, 1_000_100),  # depth balanced: the mid
    ],
)
def test_fair_value_blends_microprice_and_depth(weight, expected):
    config = MarketViewConfig(depth=2, depth_weight_pct=weight)
    assert fair_value(BOOK, config) == FairValue("AAA", expected, 100)  # 200 spread / 2


def test_rounding_to_the_nearest_unit_ties_to_even():
    thirds = BookView("X", 0, [Level(1_000_000, 1, 1)], [Level(1_000_100, 2, 1)])
    assert fair_value(thirds, MarketViewConfig()).price == 1_000_033  # 3_000_100 / 3
    half_down = BookView("X", 0, [Level(100, 1, 1)], [Level(101, 1, 1)])
    half_up = BookView("X", 0, [Level(101, 1, 1)], [Level(102, 1, 1)])
    assert fair_value(half_down, MarketViewConfig()) == FairValue("X", 100, 1)  # 100.5 -> 100
    assert fair_value(half_up, MarketViewConfig()) == FairValue("X", 102, 1)  # 101.5 -> 102


def test_one_sided_crossed_and_locked_books():
    config = MarketViewConfig()
    assert fair_value(BookView("X", 0, BIDS, []), config) is None
    assert fair_value(BookView("X", 0, [], ASKS), config) is None
    crossed = BookView("X", 0, [Level(101, 1, 1)], [Level(100, 1, 1)])
    assert fair_value(crossed, config) is None
    locked = BookView("X", 0, [Level(100, 5, 1)], [Level(100, 1, 1)])
    assert fair_value(locked, config) == FairValue("X", 100, 0)


def test_fair_value_always_within_the_touch():
    for bid_qty in (1, 7, 1000):
        for ask_qty in (1, 3, 999):
            for w in (0, 30, 100):
                view = BookView(
                    "X", 0, [Level(1_000_000, bid_qty, 1), Level(990_000, 1, 1)],
                    [Level(1_000_300, ask_qty, 1), Level(1_010_000, 5_000, 1)],
                )  # fmt: skip
                fair = fair_value(view, MarketViewConfig(depth_weight_pct=w))
                assert 1_000_000 <= fair.price <= 1_000_300 and fair.uncertainty == 150


def test_agent_proposes_signed_fair_values_only_when_they_move():
    agent = MarketViewAgent("view", KEY, MarketViewConfig(min_change=30))
    first = agent.on_book(BOOK)
    assert [p.action for p in first] == [FairValue("AAA", 1_000_150, 100)]
    assert verify(first[0], {"view": KEY.public_bytes})
    nudged = BookView("AAA", 2_000, [Level(1_000_000, 250, 1)], ASKS)  # 1_000_143: a 7 move
    assert agent.on_book(nudged) == []
    moved = BookView("AAA", 3_000, [Level(1_000_000, 100, 1)], ASKS)  # mid 1_000_100
    assert [p.action.price for p in agent.on_book(moved)] == [1_000_100]
    assert agent.on_book(BookView("AAA", 4_000, [], ASKS)) == []
    assert agent.on_book(BookView("BBB", 5_000, BIDS, ASKS))[0].action.symbol == "BBB"
    assert [p.seq for p in agent.on_book(BOOK)] == [4]  # back to 1_000_150: 50 >= 30


@pytest.mark.parametrize(
    "bad", [{"depth": 0}, {"depth_weight_pct": 101}, {"depth_weight_pct": -1}, {"min_change": 0}]
)
def test_config_refuses_bad_values(bad):
    with pytest.raises(ValueError):
        MarketViewConfig(**bad)
