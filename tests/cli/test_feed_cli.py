"""``agora feed stats|book`` as a user runs them, on an ITCH file from agora's own exchange."""

from __future__ import annotations

import gzip
import json
import re

import pytest

from agora.bench.workload import engine_workload, setup_commands
from tests.cli.test_cli import agora
from tests.feed.test_handler import run_exchange

pytestmark = pytest.mark.e2e


def flat(text: str) -> str:
    """Rich error boxes wrap long lines: compare on the words alone."""
    return re.sub(r"[\s│]+", " ", text)


@pytest.fixture(scope="module")
def day_file(tmp_path_factory):
    engine, data, _ = run_exchange(setup_commands(3) + engine_workload(3_000, symbols=3))
    path = tmp_path_factory.mktemp("feed") / "day.itch.gz"
    path.write_bytes(gzip.compress(data))
    return path, engine


def test_stats_counts_messages_by_type_and_symbol(day_file):
    path, _ = day_file
    result = agora("feed", "stats", str(path), "--json")
    assert result.returncode == 0, result.stderr
    census = json.loads(result.stdout)
    assert census["by_type"]["R"] == 3 and census["by_type"]["A"] > 1000
    assert set(census["by_symbol"]) == {"AAPL", "MSFT", "NVDA", "(system)"}
    assert census["messages"] == sum(census["by_type"].values()) and census["issues"] == {}


def test_book_prints_the_level_table_and_orders(day_file):
    path, engine = day_file
    result = agora("feed", "book", str(path), "--symbol", "MSFT", "--orders", "--depth", "2")
    assert result.returncode == 0, result.stderr
    live = sum(1 for o in engine.orders.values() if o.symbol == "MSFT")
    assert f"MSFT at end of file: {live:,} live orders" in result.stdout
    assert "orders in queue order" in result.stdout and "no integrity issues" in result.stdout


def test_book_at_a_time_before_any_order_and_clear_errors(day_file, tmp_path):
    path, _ = day_file
    early = agora("feed", "book", str(path), "--symbol", "MSFT", "--at", "00:00:00.000010")
    assert early.returncode == 0 and "has no orders by then" in early.stdout
    unknown = agora("feed", "book", str(path), "--symbol", "ZZZZ")
    assert "is not in the file's stock directory" in unknown.stdout
    bad_time = agora("feed", "book", str(path), "--symbol", "MSFT", "--at", "25:00")
    assert bad_time.returncode != 0 and "not a time of day" in flat(bad_time.stderr)
    missing = agora("feed", "stats", str(tmp_path / "nope.itch"))
    assert missing.returncode != 0 and "is not a file" in flat(missing.stderr)


def test_truncated_file_reports_and_still_prints(day_file, tmp_path):
    path, _ = day_file
    cut = tmp_path / "cut.itch"
    cut.write_bytes(gzip.decompress(path.read_bytes())[:-5])
    result = agora("feed", "book", str(cut), "--symbol", "AAPL")
    assert result.returncode == 0, result.stderr
    assert "truncated=1" in result.stdout and "file ends inside a record" in result.stdout


def test_export_writes_events_and_book_samples_readable_by_polars(day_file, tmp_path):
    import polars as pl

    path, engine = day_file
    out = tmp_path / "out"
    result = agora("feed", "export", str(path), "--out", str(out), "--date", "2026-11-25",
                   "--symbol", "AAPL", "--books-every", "1ms")
    assert result.returncode == 0, result.stderr
    events = pl.scan_parquet(out / "events/**/*.parquet", hive_partitioning=True).collect()
    assert set(events["symbol"]) == {"AAPL"} and events["kind"][0] == "TradingStatus"
    adds = events.filter(pl.col("kind") == "BookAdd")
    assert adds.height > 100 and adds["price"].dtype == pl.Int64
    books = pl.scan_parquet(out / "books/**/*.parquet", hive_partitioning=True).collect()
    assert books.height > 0 and (books["ts"] % 1_000_000 == 0).all()
    last = books.sort("ts")[-1]
    bid = max(o.price for o in engine.orders.values() if o.symbol == "AAPL" and o.side == "B")
    assert last["bid_px_1"][0] <= bid  # the last grid point is at or before the end


def test_export_needs_a_date_it_can_trust(day_file, tmp_path):
    path, _ = day_file
    result = agora("feed", "export", str(path), "--out", str(tmp_path / "o"))
    assert result.returncode != 0 and "give --date" in flat(result.stderr)
    samples = agora("feed", "export", str(path), "--out", str(tmp_path / "o"), "--date",
                    "2026-11-25", "--books-every", "1s")
    assert samples.returncode != 0 and "need --symbol" in flat(samples.stderr)
