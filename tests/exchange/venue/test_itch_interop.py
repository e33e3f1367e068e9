"""Interoperability: a third-party ITCH 5.0 parser (itchfeed, PyPI) decodes agora's feed.

The feed of a seeded session (adds, executions, cancels, deletes, replaces, icebergs, hidden
prints, a halt and a reopening cross) is written with BinaryFILE framing and parsed by
``itch.parser.MessageParser``; every message must come back with the same type and the same value
in every field both sides name alike.
"""

from __future__ import annotations

from collections import Counter

import pytest

from agora.bench.workload import engine_workload, setup_commands
from agora.core.enums import Side, TimeInForce, TradingState
from agora.core.events import (
    AddSymbol,
    CancelOrder,
    NewOrder,
    ReplaceOrder,
    SetTradingState,
    SymbolSpec,
)
from agora.exchange.engine import MatchingEngine
from agora.exchange.venue.itch_feed import ItchMapper
from agora.protocols import itch50

itch_parser = pytest.importorskip("itch.parser", reason="itchfeed is not installed")


def session_messages() -> list:
    engine, mapper = MatchingEngine(), ItchMapper()
    messages = [mapper.start_of_messages(1)]
    clock = iter(range(1_000_000, 10**12, 1_000_000))

    def run(command) -> list:
        events = engine.process(command, next(clock))
        messages.extend(mapper.map_events(events))
        return events

    for command in setup_commands(2) + engine_workload(3_000, seed=9, symbols=2):
        run(command)
    # what the workload lacks: reduce, replace, a hidden print, an iceberg refill, a cross
    low = run(NewOrder("P01", "low", "AAPL", Side.BUY, 500, 900_000))[0].order_id
    run(CancelOrder("P01", low, leaves_qty=200))  # X
    run(ReplaceOrder("P01", low, "low2", 899_000, 200))  # U
    run(SetTradingState("AAPL", TradingState.HALTED))
    run(NewOrder("P02", "dark", "AAPL", Side.BUY, 300, 1_090_000, display_qty=0))
    run(NewOrder("P03", "ice", "AAPL", Side.SELL, 900, 1_090_000, display_qty=100))
    run(SetTradingState("AAPL", TradingState.OPEN))  # reopening cross: Q
    run(NewOrder("P04", "hit", "AAPL", Side.BUY, 250, 1_090_000, tif=TimeInForce.IOC))
    run(AddSymbol(SymbolSpec("DARK", 1_000_000)))
    run(SetTradingState("DARK", TradingState.OPEN))
    run(NewOrder("P05", "dark2", "DARK", Side.BUY, 100, 1_000_000, display_qty=0))
    run(NewOrder("P06", "take", "DARK", Side.SELL, 100, 1_000_000, tif=TimeInForce.IOC))  # P
    return messages


def comparable(value):
    """Alpha fields without their space padding (bytes on their side, str on ours)."""
    if isinstance(value, bytes):
        value = value.decode("ascii")
    return value.rstrip(" ") if isinstance(value, str) else value


def test_itchfeed_parses_every_message_of_our_feed():
    ours = session_messages()
    kinds = Counter(m.MESSAGE_TYPE for m in ours)
    assert {"S", "R", "H", "A", "E", "X", "D", "U", "P", "Q"} <= set(kinds), kinds
    data = itch50.write_file_records(ours)
    theirs = list(itch_parser.MessageParser().parse_stream(data))
    assert len(theirs) == len(ours)
    compared = 0
    for mine, other in zip(ours, theirs, strict=True):
        assert other.message_type.decode() == mine.MESSAGE_TYPE
        assert other.timestamp == mine.timestamp
        for field in mine.__struct_fields__:
            if hasattr(other, field) and field != "timestamp":
                assert comparable(getattr(other, field)) == comparable(getattr(mine, field)), field
                compared += 1
    assert compared > 5 * len(ours)
