"""Parquet/polars/numpy export of feed output: hive layout, the same rows back from pyarrow and
polars, bounded memory with many symbols, integer money throughout."""

from __future__ import annotations

import random
import resource

import msgspec
import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from agora.core import events as ev
from agora.core.enums import Side, TradingState
from agora.feed import export
from agora.feed.book import L3Book
from agora.feed.export import (
    NULL_INT,
    BookSampleParquetWriter,
    EventParquetWriter,
    TooManyOpenFiles,
    events_to_numpy,
    events_to_polars,
)

DATE = "2024-01-02"
COLUMNS = ["ts", "seq", "kind", "order_id", "old_order_id", "side", "price", "qty", "trade_id",
           "cross", "state"]


def random_events(n: int, symbols: list[str], seed: int = 1) -> list:
    """Every exportable kind, random fields, prices up to the Price(4) maximum and beyond."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        symbol = rng.choice(symbols)
        price = rng.choice((1, 100, 1_234_567, 2**32 - 1, 2**40 + 7))
        oid = rng.randrange(1, 10**12)
        side = rng.choice((Side.BUY, Side.SELL))
        kind = rng.randrange(7)
        out.append((
            ev.BookAdd(i, symbol, oid, side, price, rng.randrange(1, 10**6)),
            ev.BookExecute(i, symbol, oid, 100, rng.randrange(1, 10**9), price, rng.random() < .5),
            ev.BookCancel(i, symbol, oid, 37),
            ev.BookDelete(i, symbol, oid),
            ev.BookReplace(i, symbol, oid, oid + 1, price, 200),
            ev.Trade(i, symbol, rng.randrange(10**9), price, 300, rng.choice((side, None)),
                     rng.random() < 0.5),
            ev.TradingStatus(i, symbol, rng.choice(list(TradingState)), price),
        )[kind])
    return out


def expected_row(seq: int, e) -> dict:
    """The row an event should become, written out field by field (independent of export)."""
    row = dict.fromkeys(COLUMNS)
    row.update(ts=e.ts, seq=seq, kind=type(e).__name__, symbol=e.symbol)
    for name in ("order_id", "old_order_id", "price", "qty", "trade_id", "cross"):
        if hasattr(e, name):
            row[name] = getattr(e, name)
    if getattr(e, "side", None) is not None:
        row["side"] = e.side.value
    if isinstance(e, ev.TradingStatus):
        row["price"], row["state"] = e.reference_price, e.state.value
    return row


def read_back_pyarrow(out_dir) -> list[dict]:
    table = ds.dataset(out_dir / "events", format="parquet", partitioning="hive").to_table()
    rows = table.to_pylist()
    for row in rows:
        assert row.pop("date") == DATE
    return sorted(rows, key=lambda r: r["seq"])


def write_events(out_dir, events, **kwargs) -> EventParquetWriter:
    with EventParquetWriter(out_dir, date=DATE, **kwargs) as writer:
        for event in events:
            writer.write(event)
    return writer


def test_hive_layout_one_file_per_symbol(tmp_path):
    events = random_events(200, ["AAPL", "BRK A", "#12"])
    write_events(tmp_path, events)
    day = tmp_path / "events" / f"date={DATE}"
    assert sorted(p.name for p in day.iterdir()) == ["symbol=%2312", "symbol=AAPL",
                                                      "symbol=BRK%20A"]
    for folder in day.iterdir():
        assert [p.name for p in folder.iterdir()] == ["events.parquet"]
    assert {r["symbol"] for r in read_back_pyarrow(tmp_path)} == {"AAPL", "BRK A", "#12"}


def test_pyarrow_dataset_gives_back_every_row(tmp_path):
    events = random_events(3_000, ["AAPL", "MSFT", "NVDA", "BRK A"], seed=2)
    writer = write_events(tmp_path, events, row_group_rows=100)
    assert writer.rows_written == len(events)
    assert read_back_pyarrow(tmp_path) == [expected_row(i, e) for i, e in enumerate(events)]


def test_polars_scan_with_hive_partitioning_gives_the_same_rows(tmp_path):
    events = random_events(2_000, ["AAPL", "MSFT", "ZVZZT"], seed=3)
    write_events(tmp_path, events, row_group_rows=64)
    scanned = (
        pl.scan_parquet(str(tmp_path / "events" / "**" / "*.parquet"), hive_partitioning=True)
        .sort("seq")
        .collect()
    )
    assert scanned["date"].cast(pl.String).unique().to_list() == [DATE]
    in_memory = events_to_polars(events)
    assert in_memory.columns == ["symbol", *COLUMNS]
    as_text = {"kind": pl.String, "side": pl.String, "state": pl.String}
    left = scanned.select(in_memory.columns).cast(as_text)
    assert left.equals(in_memory.cast(as_text))
    assert left.to_dicts() == [expected_row(i, e) for i, e in enumerate(events)]


def test_many_symbols_small_thresholds_bounded_memory(tmp_path):
    symbols = [f"S{i:03d}" for i in range(300)]
    rng = random.Random(4)
    weights = [1 / (r + 1) for r in range(300)]  # skewed, as on a real day
    events = random_events(8_000, ["X"], seed=4)
    events = [ev_replace(e, rng.choices(symbols, weights)[0]) for e in events]
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    low = 150  # below what 300 open files need: the writer must raise it
    if hard != resource.RLIM_INFINITY and hard < 300 + 64:
        pytest.skip(f"hard RLIMIT_NOFILE {hard} is too low for this test")
    resource.setrlimit(resource.RLIMIT_NOFILE, (low, hard))
    try:
        peak = 0
        with EventParquetWriter(tmp_path, date=DATE, row_group_rows=40,
                                max_buffered_rows=1_500) as writer:
            for event in events:
                writer.write(event)
                peak = max(peak, writer.buffered_rows)
            assert writer.open_files > low  # (files open lazily, at a symbol's first flush)
            assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] > low
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert writer.open_files == len({e.symbol for e in events}) > 250
    assert peak < 1_500
    assert writer.row_groups > len({e.symbol for e in events})
    busiest = writer.path_of(symbols[0])
    assert pq.ParquetFile(busiest).metadata.num_row_groups >= 5
    assert read_back_pyarrow(tmp_path) == [expected_row(i, e) for i, e in enumerate(events)]


def ev_replace(event, symbol: str):
    return msgspec.structs.replace(event, symbol=symbol)


def test_too_many_open_files_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(export.resource, "getrlimit", lambda _which: (100, 100))
    events = [ev.BookDelete(i, f"S{i}", i + 1) for i in range(80)]
    writer = EventParquetWriter(tmp_path, date=DATE, row_group_rows=1)
    with pytest.raises(TooManyOpenFiles, match="hard limit 100"):
        for event in events:
            writer.write(event)
    assert writer.open_files == 100 - export._FD_RESERVE  # the reserve stays free
    with pytest.raises(TooManyOpenFiles):  # what is still buffered cannot be written either
        writer.close()


def test_money_stays_integer_everywhere(tmp_path):
    events = random_events(500, ["AAPL", "MSFT"], seed=5)
    write_events(tmp_path, events)
    schema = ds.dataset(tmp_path / "events", format="parquet", partitioning="hive").schema
    assert not [f.name for f in schema if pa.types.is_floating(f.type)]
    assert schema.field("price").type == pa.int64()
    frame = events_to_polars(events)
    assert not [c for c, t in frame.schema.items() if t.is_float()]
    array = events_to_numpy(events)
    assert not [n for n in array.dtype.names if array.dtype[n].kind == "f"]
    assert array["price"].dtype == np.int64
    assert set(array["price"][array["price"] != NULL_INT].tolist()) <= {
        1, 100, 1_234_567, 2**32 - 1, 2**40 + 7}


def test_numpy_export_matches_with_sentinels():
    events = random_events(400, ["AAPL", "BRK A"], seed=6)
    array = events_to_numpy(events)
    assert array.dtype.names == ("symbol", *COLUMNS)
    for row, (i, e) in zip(array.tolist(), enumerate(events), strict=True):
        want = expected_row(i, e)
        got = dict(zip(array.dtype.names, row, strict=True))
        for name, value in want.items():
            if value is None:
                value = False if name == "cross" else "" if name in ("side", "state") else NULL_INT
            assert got[name] == value, (name, e)


def test_empty_inputs():
    assert events_to_polars([]).height == 0
    assert events_to_numpy([]).shape == (0,)


def test_bad_inputs_are_refused(tmp_path):
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        EventParquetWriter(tmp_path, date="2024-1-2")
    writer = EventParquetWriter(tmp_path, date=DATE)
    spec = ev.SymbolSpec("AAPL", 1_000_000)
    with pytest.raises(TypeError, match="SymbolDirectory"):
        writer.write(ev.SymbolDirectory(0, spec))
    writer.close()
    with pytest.raises(ValueError, match="closed"):
        writer.write(ev.BookDelete(0, "AAPL", 1))
    with pytest.raises(TypeError, match="SymbolDirectory"):
        events_to_polars([ev.SymbolDirectory(0, spec)])


def _book() -> L3Book:
    book = L3Book("AAPL")
    for i, (side, price, qty) in enumerate([
        (Side.BUY, 1_000_000, 100), (Side.BUY, 1_000_000, 200), (Side.BUY, 999_900, 300),
        (Side.BUY, 999_800, 50), (Side.SELL, 1_000_100, 400),
    ], 1):
        book.add(i, side, price, qty)
    return book


def test_book_samples_wide_rows_with_nulls(tmp_path):
    book = _book()
    with BookSampleParquetWriter(tmp_path, date=DATE, depth=2) as writer:
        writer.write(book.view(10))
        book.delete(5)
        writer.write(book.view(20))
        writer.write(L3Book("MSFT").view(30))
    path = tmp_path / "books" / f"date={DATE}" / "symbol=AAPL" / "l2.parquet"
    table = pq.read_table(path)
    assert table.column_names == ["ts", "bid_px_1", "bid_px_2", "bid_qty_1", "bid_qty_2",
                                  "bid_n_1", "bid_n_2", "ask_px_1", "ask_px_2", "ask_qty_1",
                                  "ask_qty_2", "ask_n_1", "ask_n_2"]
    assert all(f.type == pa.int64() for f in table.schema)
    first, second = table.to_pylist()
    assert (first["bid_px_1"], first["bid_qty_1"], first["bid_n_1"]) == (1_000_000, 300, 2)
    assert (first["bid_px_2"], first["bid_qty_2"], first["bid_n_2"]) == (999_900, 300, 1)
    assert (first["ask_px_1"], first["ask_qty_1"], first["ask_n_1"]) == (1_000_100, 400, 1)
    assert first["ask_px_2"] is None and first["ask_n_2"] is None
    assert second["ts"] == 20 and second["ask_px_1"] is None
    scanned = pl.scan_parquet(str(tmp_path / "books" / "**" / "*.parquet"),
                              hive_partitioning=True).collect()
    assert sorted(scanned["symbol"].to_list()) == ["AAPL", "AAPL", "MSFT"]
    empty = scanned.filter(pl.col("symbol") == "MSFT")
    assert empty["bid_px_1"].to_list() == [None] and empty["ts"].to_list() == [30]


def test_book_samples_refuse_l3_views(tmp_path):
    book = _book()
    bids, asks = book.orders_by_level()
    writer = BookSampleParquetWriter(tmp_path, date=DATE)
    with pytest.raises(TypeError, match="Level"):
        writer.write(export.BookView("AAPL", 1, bids[0][1], asks[0][1]))
    with pytest.raises(ValueError, match="depth"):
        BookSampleParquetWriter(tmp_path, date=DATE, depth=0)
    writer.close()
