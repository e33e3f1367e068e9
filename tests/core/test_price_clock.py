"""Fixed-point prices and clocks."""

import itertools
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agora.core.clock import SimClock, WallClock
from agora.core.price import PRICE_SCALE, format_price, parse_price


@pytest.mark.parametrize(
    ("text", "units"),
    [("12.34", 123_400), ("0.0001", 1), ("100", 1_000_000), (7, 70_000), ("-1.5", -15_000),
     (Decimal("3.1415"), 31_415), (" 2.50 ", 25_000)],
)
def test_parse_price(text, units):
    assert parse_price(text) == units


@pytest.mark.parametrize("text", ["12.345678", "abc", "", "nan", "inf", "1e-5"])
def test_parse_price_refuses_what_is_not_exact_money(text):
    with pytest.raises(ValueError):
        parse_price(text)


@given(st.integers(-(10**15), 10**15))
def test_format_parse_round_trip(units):
    assert parse_price(format_price(units)) == units


def test_format_price():
    assert format_price(1_234_500) == "123.4500"
    assert format_price(-1) == "-0.0001"
    assert PRICE_SCALE == 10_000


def test_sim_clock_is_deterministic_and_monotonic():
    clock = SimClock(100, step_ns=5)
    assert [clock.now_ns() for _ in range(3)] == [100, 105, 110]
    clock.advance(1_000)
    assert clock.now_ns() == 1_115
    with pytest.raises(ValueError):
        clock.set(0)
    with pytest.raises(ValueError):
        clock.advance(-1)


def test_wall_clock_never_goes_back():
    clock = WallClock()
    stamps = [clock.now_ns() for _ in range(10_000)]
    assert all(b > a for a, b in itertools.pairwise(stamps))
