"""The synthetic ITCH day: reproducible to the byte, well formed, NASDAQ-like in its message mix
and activity skew, and rebuilt exactly by the reference feed handler."""

from __future__ import annotations

import gzip
import random
import re
from collections import Counter

import polars as pl
import pytest

from agora.bench import itch_synth
from agora.bench.itch_synth import (
    MARKET_CLOSE_NS,
    MARKET_OPEN_NS,
    DaySynthesizer,
    synthesize,
)
from agora.bench.itch_writer import FastItchPacker
from agora.core.enums import Side
from agora.exchange.venue.itch_feed import displayed_book
from agora.feed.export import EVENT_TYPES, EventParquetWriter
from agora.feed.handler import FeedHandler
from agora.protocols import itch50

SMALL = {"messages": 20_000, "symbols": 20}


@pytest.fixture(scope="module")
def day(tmp_path_factory):
    """One small day, kept with its engine: (path, summary, synthesizer)."""
    path = tmp_path_factory.mktemp("synth") / "day.itch"
    synth = DaySynthesizer(seed=1, **SMALL)
    return path, synth.run(path), synth


@pytest.fixture(scope="module")
def messages(day):
    path, _summary, _synth = day
    return list(itch50.iter_file_messages(path.read_bytes()))


def _type(msg) -> str:
    """The ITCH type char of a decoded message."""
    return msg.MESSAGE_TYPE


def test_same_arguments_same_bytes_other_seed_other_bytes(day, tmp_path):
    path, summary, _synth = day
    again = synthesize(tmp_path / "again.itch", seed=1, **SMALL)
    other = synthesize(tmp_path / "other.itch", seed=2, **SMALL)
    assert (tmp_path / "again.itch").read_bytes() == path.read_bytes()
    assert again["by_type"] == summary["by_type"]
    assert (tmp_path / "other.itch").read_bytes() != path.read_bytes()
    assert other["messages"] >= SMALL["messages"]


def test_gzip_is_reproducible_and_holds_the_same_bytes(day, tmp_path):
    path, _summary, _synth = day
    first = synthesize(tmp_path / "a.itch.gz", seed=1, gzip=True, **SMALL)
    synthesize(tmp_path / "b.itch.gz", seed=1, gzip=True, **SMALL)
    packed = (tmp_path / "a.itch.gz").read_bytes()
    assert packed[:2] == b"\x1f\x8b"
    assert packed == (tmp_path / "b.itch.gz").read_bytes()
    assert gzip.decompress(packed) == path.read_bytes()
    assert first["file_bytes"] < first["bytes"]


def test_decodes_cleanly_and_the_summary_counts_it(day, messages):
    _path, summary, _synth = day
    assert len(messages) == summary["messages"]
    assert SMALL["messages"] <= summary["messages"] < SMALL["messages"] + 50
    assert dict(Counter(_type(m) for m in messages)) == summary["by_type"]
    assert summary["rejects"] == 0
    assert summary["symbols"] == SMALL["symbols"]


def test_day_opens_and_closes_like_nasdaq(messages):
    n = SMALL["symbols"]
    head = messages[: 2 + 2 * n]
    assert [(_type(m), m.event_code) for m in head[:2]] == [("S", "O"), ("S", "S")]
    assert [_type(m) for m in head[2:]] == ["R", "H"] * n
    assert {m.trading_state for m in head[2:] if _type(m) == "H"} == {"Q"}
    stocks = [m.stock for m in head[2:] if _type(m) == "R"]
    assert stocks == sorted(stocks) and len(set(stocks)) == n
    assert all(re.fullmatch(r"[A-Z]{3,5}", s) for s in stocks)
    assert [m.stock_locate for m in head[2:] if _type(m) == "R"] == list(range(1, n + 1))
    assert [(_type(m), m.event_code) for m in messages[-3:]] == [("S", "M"), ("S", "E"), ("S", "C")]
    market_open = [i for i, m in enumerate(messages) if _type(m) == "S" and m.event_code == "Q"]
    assert len(market_open) == 1
    assert messages[market_open[0]].timestamp == MARKET_OPEN_NS
    opened = [m for m in messages if _type(m) == "H" and m.trading_state == "T"]
    assert len(opened) == n and all(m.timestamp >= MARKET_OPEN_NS for m in opened)


def test_timestamps_never_go_back_and_trading_fills_the_session(messages):
    stamps = [m.timestamp for m in messages]
    assert stamps == sorted(stamps)
    flow = [m.timestamp for m in messages if _type(m) in "AEXDUP" and m.timestamp >= MARKET_OPEN_NS]
    assert flow[-1] < MARKET_CLOSE_NS
    session = MARKET_CLOSE_NS - MARKET_OPEN_NS
    assert flow[-1] - flow[0] > 0.99 * session
    # U-shaped intensity: the first and last half hours are busier than a midday half hour
    half_hour = session // 13

    def rate(start: int) -> int:
        return sum(1 for t in flow if start <= t < start + half_hour)
    midday = rate(MARKET_OPEN_NS + 6 * half_hour)
    assert rate(MARKET_OPEN_NS) > 2 * midday and rate(MARKET_CLOSE_NS - half_hour) > 2 * midday


def test_message_mix_looks_like_a_nasdaq_day(day):
    _path, summary, _synth = day
    by_type = summary["by_type"]
    total = summary["messages"]
    share = {c: by_type.get(c, 0) / total for c in "ADUEXPQ"}
    assert 0.35 < share["A"] < 0.55 and 0.30 < share["D"] < 0.50
    assert by_type["D"] > 0.75 * by_type["A"]  # most orders are cancelled...
    assert by_type["E"] < 0.2 * by_type["A"]  # ...few are executed
    assert 0.04 < share["U"] < 0.15
    assert 0.002 < share["X"] < 0.05
    assert 0.005 < share["E"] < 0.10
    assert by_type["P"] > 0  # hidden orders executed
    assert by_type["Q"] >= 1  # opening crosses traded


def test_activity_is_zipf_skewed_and_prices_span_the_market(tmp_path):
    path = tmp_path / "wide.itch"
    synthesize(path, messages=30_000, symbols=60, seed=7)
    adds: Counter = Counter()
    prices = {}
    for m in itch50.iter_file_messages(path.read_bytes()):
        if _type(m) == "A":
            adds[m.stock] += 1
            prices.setdefault(m.stock, m.price)
    counts = sorted(adds.values(), reverse=True)
    assert sum(counts[:6]) > 0.4 * sum(counts)  # top 10% of symbols: over 40% of adds
    assert counts[0] > 20 * counts[len(counts) // 2]
    dollars = sorted(p / 10_000 for p in prices.values())
    assert dollars[0] < 15 and dollars[-1] > 80  # cheap and expensive names
    assert all(p % 100 == 0 for p in prices.values())  # one-cent tick


def _handler_l3(handler: FeedHandler) -> dict:
    """The handler's books in ``displayed_book``'s shape."""
    out = {}
    for symbol, book in handler.books.items():
        for side, levels in zip((Side.BUY, Side.SELL), book.orders_by_level(), strict=True):
            if levels:
                out[symbol, side.value] = [
                    (price, tuple((o.order_id, o.qty) for o in queue)) for price, queue in levels
                ]
    return out


def test_feed_handler_rebuilds_the_engine_book_with_no_issue(day):
    path, summary, synth = day
    handler = FeedHandler()
    out_of_line: list = []

    def check(events: list) -> None:
        """The displayed book never crosses or locks, before the open too (where the handler
        itself does not check, because real quotation periods may cross)."""
        for event in events:
            book = handler.books.get(getattr(event, "symbol", None))
            if book is not None and (book.is_crossed() or book.is_locked()):
                out_of_line.append(event)

    handler.process_file(path, on_events=check)
    assert handler.report.summary() == "no integrity issues"
    assert out_of_line == []
    assert handler.messages == summary["messages"]
    expected = displayed_book(synth.engine)
    assert sum(len(q) for levels in expected.values() for _p, q in levels) > 100
    assert _handler_l3(handler) == expected


def test_day_to_parquet_through_the_feed_handler(day, tmp_path):
    """The research path end to end: ITCH day -> FeedHandler events -> Parquet -> polars."""
    path, _summary, _synth = day
    handler = FeedHandler()
    kinds: Counter = Counter()
    with EventParquetWriter(tmp_path, date="2024-01-02", row_group_rows=1_000) as writer:

        def export(events: list) -> None:
            for event in events:
                if type(event) in EVENT_TYPES:
                    kinds[type(event).__name__] += 1
                    writer.write(event)

        handler.process_file(path, on_events=export)
    frame = pl.scan_parquet(str(tmp_path / "events" / "**" / "*.parquet"),
                            hive_partitioning=True).collect()
    assert frame.height == sum(kinds.values()) == writer.seq
    assert dict(Counter(frame["kind"].cast(pl.String).to_list())) == dict(kinds)
    assert frame["symbol"].n_unique() == SMALL["symbols"]
    assert frame["seq"].sort().to_list() == list(range(frame.height))


def test_gzip_file_through_the_feed_handler(tmp_path):
    path = tmp_path / "day.itch.gz"
    summary = synthesize(path, seed=3, gzip=True, **SMALL)
    handler = FeedHandler(emit=False)
    handler.process_file(path)
    assert not handler.report
    assert handler.counts == summary["by_type"]


def test_fast_packer_is_byte_equal_to_mapper_and_encode(day, tmp_path, monkeypatch):
    """The differential test of the struct fast path: every event through ItchMapper instead."""
    path, _summary, _synth = day

    def reference(self, events, parts, counts):
        written = 0
        for event in events:
            msg = self.mapper.map_event(event)
            if msg is not None:
                body = itch50.encode(msg)
                parts.append(len(body).to_bytes(2, "big") + body)
                counts[body[0]] += 1
                written += 1
        return written

    monkeypatch.setattr(FastItchPacker, "pack_into", reference)
    synthesize(tmp_path / "reference.itch", seed=1, **SMALL)
    assert (tmp_path / "reference.itch").read_bytes() == path.read_bytes()


def test_progress_reports_up_to_the_total(tmp_path):
    calls: list[tuple[int, int]] = []
    summary = synthesize(tmp_path / "p.itch", messages=80_000, symbols=10,
                         progress=lambda done, total: calls.append((done, total)))
    assert len(calls) >= 2
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)
    assert {t for _, t in calls} == {80_000}
    assert calls[-1][0] == summary["messages"]


def test_arguments_are_checked(tmp_path):
    with pytest.raises(ValueError, match="too few"):
        synthesize(tmp_path / "x.itch", messages=500, symbols=100)
    with pytest.raises(ValueError, match="65535"):
        DaySynthesizer(messages=10**9, symbols=70_000)
    synth = DaySynthesizer(messages=2_000, symbols=5)
    synth.run(tmp_path / "once.itch")
    with pytest.raises(RuntimeError):
        synth.run(tmp_path / "twice.itch")


def test_ticker_and_weight_helpers_are_seeded():
    names = itch_synth.make_tickers(500, random.Random(5))
    assert names == itch_synth.make_tickers(500, random.Random(5))
    assert len(set(names)) == 500 and names == sorted(names)
    weights = itch_synth.zipf_weights(100, random.Random(5))
    assert sorted(weights, reverse=True)[:3] == [1.0, 0.5, 1 / 3]
