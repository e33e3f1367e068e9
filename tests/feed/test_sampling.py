"""Book states: every N events per symbol, and on an event-time grid (state as of the instant)."""

from __future__ import annotations

import io

import pytest

from agora.feed.book import Level
from agora.feed.handler import FeedHandler
from agora.feed.sampling import book_states
from agora.feed.source import iter_records
from agora.feed.timeofday import format_time_of_day, parse_duration, parse_time_of_day
from agora.protocols import itch50
from tests.feed.test_handler import add, directory


def records(messages: list):
    return iter_records(io.BytesIO(itch50.write_file_records(messages)))


MESSAGES = [
    directory(1, "AAA"),
    directory(2, "BBB"),
    add(1, ts=100, price=10_000),
    add(2, ts=150, locate=2),
    add(3, ts=250, price=10_100),
    itch50.OrderDelete(1, 0, 420, 1),
    add(4, ts=430, price=9_900),
]


def test_every_n_events_per_symbol():
    views = list(book_states(FeedHandler(), records(MESSAGES), ["AAA"], every_events=2))
    assert [(v.ts, v.bids) for v in views] == [
        (250, [Level(10_100, 100, 1), Level(10_000, 100, 1)]),
        (430, [Level(10_100, 100, 1), Level(9_900, 100, 1)]),
    ]


def test_time_grid_shows_the_book_as_of_each_instant():
    views = list(book_states(FeedHandler(), records(MESSAGES), ["AAA", "BBB"], every_ns=100))
    grid = [(v.symbol, v.ts, [lv.price for lv in v.bids]) for v in views]
    assert grid == [
        ("AAA", 100, []), ("BBB", 100, []),  # directory at ts 1 starts the grid; add at 100 not yet
        ("AAA", 200, [10_000]), ("BBB", 200, [100_000]),
        ("AAA", 300, [10_100, 10_000]), ("BBB", 300, [100_000]),
        ("AAA", 400, [10_100, 10_000]), ("BBB", 400, [100_000]),
    ]


def test_exactly_one_sampling_rule():
    with pytest.raises(ValueError, match="exactly one"):
        list(book_states(FeedHandler(), records(MESSAGES), ["AAA"]))
    with pytest.raises(ValueError, match="positive"):
        list(book_states(FeedHandler(), records(MESSAGES), ["AAA"], every_events=0))


def test_time_of_day_parsing_is_exact():
    assert parse_time_of_day("09:30:00.000000001") == 34_200_000_000_001
    assert parse_time_of_day("10:30") == 37_800 * 10**9
    assert format_time_of_day(34_200_000_000_001) == "09:30:00.000000001"
    assert parse_duration("250us") == 250_000 and parse_duration("1s") == 10**9
    for bad in ("24:00", "9:61", "10:30:00.1234567890", "noon"):
        with pytest.raises(ValueError):
            parse_time_of_day(bad)
    with pytest.raises(ValueError):
        parse_duration("1.5s")
