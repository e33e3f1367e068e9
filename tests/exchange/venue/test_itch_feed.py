"""ItchMapper: each agora event -> its exact ITCH 5.0 message; round trips through the codec."""

from __future__ import annotations

import inspect
import re

import pytest
from hypothesis import HealthCheck, given, settings

from agora.core.enums import CancelReason, Side, TradingState
from agora.core.events import (
    BookAdd,
    BookCancel,
    BookDelete,
    BookExecute,
    BookReplace,
    OrderCancelled,
    SymbolDirectory,
    SymbolSpec,
    Trade,
    TradingStatus,
)
from agora.exchange.engine import MatchingEngine
from agora.exchange.venue.itch_feed import _CARRIED, NS_PER_DAY, ItchMapper, ItchMappingError
from agora.protocols import itch50
from tests.exchange.streams import resolve, setup, streams

DAY = 19_000 * NS_PER_DAY  # some date, midnight UTC
TS = DAY + 34_200 * 10**9 + 123  # 09:30:00.000000123


def mapper_with(*symbols: str) -> ItchMapper:
    mapper = ItchMapper()
    for s in symbols:
        mapper.map_events([SymbolDirectory(TS, SymbolSpec(s, 1_900_000, 100, 10, 500))])
    return mapper


def test_directory_assigns_locates_and_starts_messages():
    mapper = ItchMapper()
    out = mapper.map_events([
        SymbolDirectory(TS, SymbolSpec("AAPL", 1_900_000, 100, 100, 500)),
        TradingStatus(TS, "AAPL", TradingState.PRE_OPEN, 1_900_000),
        SymbolDirectory(TS + 1, SymbolSpec("MSFT", 4_000_000)),
    ])
    assert out == [
        itch50.SystemEvent(0, 0, TS % NS_PER_DAY, "O"),
        itch50.StockDirectory(1, 0, TS % NS_PER_DAY, "AAPL", " ", " ", 100, "Y", "C", "Z", "P",
                              " ", " ", " ", "N", 0, "N"),
        itch50.StockTradingAction(1, 0, TS % NS_PER_DAY, "AAPL", "Q", " ", ""),
        itch50.StockDirectory(2, 0, TS % NS_PER_DAY + 1, "MSFT", " ", " ", 1, "Y", "C", "Z",
                              "P", " ", " ", " ", "N", 0, "N"),
    ]
    assert mapper.locates == {"AAPL": 1, "MSFT": 2}
    assert mapper.map_events([TradingStatus(TS, "AAPL", TradingState.OPEN, 1)]) == [
        itch50.StockTradingAction(1, 0, TS % NS_PER_DAY, "AAPL", "T", " ", "")
    ]


@pytest.mark.parametrize(
    ("state", "code"),
    [(TradingState.OPEN, "T"), (TradingState.HALTED, "H"), (TradingState.PRE_OPEN, "Q"),
     (TradingState.CLOSED, "H")],
)
def test_trading_states(state, code):
    mapper = mapper_with("AAPL")
    (msg,) = mapper.map_events([TradingStatus(TS, "AAPL", state, 1)])
    assert msg.trading_state == code and msg.stock_locate == 1


T = TS % NS_PER_DAY


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        (BookAdd(TS, "MSFT", 7, Side.SELL, 1_900_100, 300),
         itch50.AddOrder(2, 0, T, 7, "S", 300, "MSFT", 1_900_100)),
        (BookExecute(TS, "MSFT", 7, 100, 42, 1_900_100),
         itch50.OrderExecuted(2, 0, T, 7, 100, 42)),
        (BookExecute(TS, "MSFT", 7, 100, 43, 1_900_100, cross=True),
         itch50.OrderExecuted(2, 0, T, 7, 100, 43)),
        (BookCancel(TS, "MSFT", 7, 50), itch50.OrderCancel(2, 0, T, 7, 50)),
        (BookDelete(TS, "MSFT", 7), itch50.OrderDelete(2, 0, T, 7)),
        (BookReplace(TS, "MSFT", 7, 9, 1_899_900, 200),
         itch50.OrderReplace(2, 0, T, 7, 9, 200, 1_899_900)),
        (Trade(TS, "MSFT", 44, 1_900_000, 500, Side.SELL),
         itch50.Trade(2, 0, T, 0, "B", 500, "MSFT", 1_900_000, 44)),
    ],
)
def test_book_events(event, expected):
    mapper = mapper_with("AAPL", "MSFT")
    assert mapper.map_event(event) == expected
    assert itch50.decode(itch50.encode(expected)) == expected


def test_trade_side_option():
    mapper = ItchMapper(p_resting_side=True)
    mapper.map_events([SymbolDirectory(TS, SymbolSpec("AAPL", 1_900_000))])
    msg = mapper.map_event(Trade(TS, "AAPL", 1, 1_900_000, 5, Side.SELL))
    assert msg.buy_sell_indicator == "S"


@pytest.mark.parametrize(
    ("previous", "cross_type"), [(TradingState.PRE_OPEN, "O"), (TradingState.HALTED, "H")]
)
def test_cross_type_follows_previous_state(previous, cross_type):
    mapper = mapper_with("AAPL")
    mapper.map_events([TradingStatus(TS, "AAPL", previous, 1_900_000)])
    out = mapper.map_events([
        BookExecute(TS, "AAPL", 1, 100, 5, 1_900_000, cross=True),
        Trade(TS, "AAPL", 5, 1_900_000, 100, None, cross=True),
        TradingStatus(TS, "AAPL", TradingState.OPEN, 1_900_000),
    ])
    assert out[1] == itch50.CrossTrade(1, 0, T, 100, "AAPL", 1_900_000, 5, cross_type)
    assert out[2].trading_state == "T"


def test_order_entry_events_produce_nothing():
    mapper = mapper_with("AAPL")
    cancelled = OrderCancelled(TS, "AAPL", 1, "P1", "c1", 100, 0, CancelReason.USER)
    assert mapper.map_events([cancelled]) == []


def test_price_that_does_not_fit_is_a_clear_error():
    mapper = mapper_with("AAPL")
    with pytest.raises(ItchMappingError, match="Price"):
        mapper.map_event(BookAdd(TS, "AAPL", 1, Side.BUY, 2**32, 100))
    with pytest.raises(ItchMappingError, match="no stock locate"):
        mapper.map_event(BookDelete(TS, "ZZZZ", 1))


def test_end_of_messages_and_round_trip_of_a_batch():
    mapper = ItchMapper()
    events = [
        SymbolDirectory(TS, SymbolSpec("AAPL", 1_900_000)),
        TradingStatus(TS, "AAPL", TradingState.OPEN, 1_900_000),
        BookAdd(TS, "AAPL", 1, Side.BUY, 1_890_000, 100),
        BookReplace(TS, "AAPL", 1, 2, 1_880_000, 100),
        BookDelete(TS, "AAPL", 2),
    ]
    out = mapper.map_events(events)
    assert [m.MESSAGE_TYPE for m in out] == ["S", "R", "H", "A", "U", "D"]
    for msg in out:
        wire = itch50.encode(msg)
        assert len(wire) == itch50.MESSAGE_LENGTHS[msg.MESSAGE_TYPE]
        assert itch50.decode(wire) == msg
    assert mapper.end_of_messages() == itch50.SystemEvent(0, 0, T, "C")


def _mapped_one_by_one(mapper: ItchMapper, events: list) -> list:
    """``map_events`` as the plain loop over ``map_event`` (its reference)."""
    out = []
    for event in events:
        msg = mapper.map_event(event)
        if msg is not None:
            if not mapper.started:
                mapper.started = True
                out.append(mapper.start_of_messages(event.ts))
            out.append(msg)
    return out


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(streams, streams)
def test_map_events_as_map_event_per_event_on_engine_streams(pre_open, continuous):
    """Every event type the engine emits (crosses, trades, replaces, rejects...): the batch
    path, which skips the private types up front, maps exactly as ``map_event`` one by one."""
    engine, fast, plain = MatchingEngine(), ItchMapper(), ItchMapper()
    commands = setup(open_symbols=False) + pre_open + setup()[-2:] + continuous
    for ts, command in enumerate(commands):
        events = engine.process(resolve(command, engine.orders), TS + ts)
        assert fast.map_events(events) == _mapped_one_by_one(plain, events)
        assert (fast.states, fast.last_ts) == (plain.states, plain.last_ts)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(streams, streams)
def test_encode_events_writes_what_map_events_then_encode_write(pre_open, continuous):
    """The publisher's path (the book's messages packed from their fields) against the
    messages path, on every event type the engine emits."""
    engine, packed, built = MatchingEngine(), ItchMapper(), ItchMapper()
    commands = setup(open_symbols=False) + pre_open + setup()[-2:] + continuous
    for ts, command in enumerate(commands):
        events = engine.process(resolve(command, engine.orders), TS + ts)
        assert packed.encode_events(events) == [itch50.encode(m) for m in
                                                built.map_events(events)]
        assert (packed.states, packed.last_ts) == (built.states, built.last_ts)


def test_encode_events_raises_the_mapping_errors():
    for event, match in ((BookAdd(TS, "AAPL", 1, Side.BUY, 2**32, 100), "Price"),
                         (BookDelete(TS, "ZZZZ", 1), "no stock locate")):
        mapper = mapper_with("AAPL")
        mapper.started = True
        with pytest.raises(ItchMappingError, match=match):
            mapper.encode_events([event])


def test_a_value_the_packer_refuses_is_explained_by_the_codec():
    mapper = mapper_with("AAPL")
    mapper.map_events([BookDelete(TS, "AAPL", 1)])  # started
    with pytest.raises(itch50.ItchError, match="shares"):
        mapper.encode_events([BookAdd(TS, "AAPL", 1, Side.BUY, 1_000_000, 2**32)])


def test_carried_types_are_the_ones_map_event_maps():
    source = inspect.getsource(ItchMapper.map_event) + inspect.getsource(ItchMapper._book_fields)
    assert {cls.__name__ for cls in _CARRIED} == set(re.findall(r"kind is ev\.(\w+)", source))
