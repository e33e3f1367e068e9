"""The LOBSTER part of ``agora bench feed``: reading, book building and reconciliation rates.

A LOBSTER sample is small (the shared AAPL one has 999 rows), so each measure repeats the whole
pair ``repeats`` times with a fresh book and reports rows (or messages) per second over all of
them: reader + reference book (core events into :class:`FeedHandler`), the row-by-row
reconciliation against LOBSTER's orderbook file, and the pair converted to ITCH 5.0 through the
fast kernel. Peak memory is the process's RSS high-water mark (the pair is tiny; this shows the
handler does not grow with repetitions).
"""

from __future__ import annotations

import resource
import time
from pathlib import Path

from agora.feed.fast import FastBookBuilder, warm_up
from agora.feed.handler import FeedHandler
from agora.feed.lobster import read_lobster, reconcile
from agora.feed.lobster_itch import lobster_to_itch


def find_pair(directory: Path) -> tuple[Path, Path, str]:
    """The first ``<SYMBOL>_..._message_N.csv`` with its orderbook file in ``directory``."""
    for message in sorted(directory.glob("*_message_*.csv")):
        book = message.with_name(message.name.replace("_message_", "_orderbook_"))
        if book.exists():
            return message, book, message.name.split("_", 1)[0]
    raise FileNotFoundError(f"no LOBSTER message/orderbook pair in {directory}")


def _rate(count: int, seconds: float) -> int:
    return round(count / seconds) if seconds > 0 else 0


def measure(directory: Path, repeats: int = 200) -> dict:
    message, book, symbol = find_pair(directory)

    rows = 0
    start = time.perf_counter()
    for _ in range(repeats):
        handler = FeedHandler(emit=False)
        for step in read_lobster(message, book, symbol=symbol).steps():
            rows += 1
            for event in step.events:
                handler.on_event(event, step.row)
    read_s = time.perf_counter() - start
    read_rows = rows

    start = time.perf_counter()
    outcome = None
    for _ in range(max(1, repeats // 10)):
        outcome = reconcile(message, book, symbol=symbol)
    reconcile_s = time.perf_counter() - start
    assert outcome is not None
    rows = outcome.rows_compared

    data = lobster_to_itch(message, book, symbol=symbol)
    warm_up()
    start = time.perf_counter()
    for _ in range(repeats):
        builder = FastBookBuilder()
        builder.feed(data)
        builder.finish()
    fast_s = time.perf_counter() - start
    return {
        "lobster_symbol": symbol,
        "lobster_rows": rows,
        "lobster_repeats": repeats,
        "lobster_read_book_rows_per_s": _rate(read_rows, read_s),
        "lobster_reconcile_rows_per_s": _rate(rows * max(1, repeats // 10), reconcile_s),
        "lobster_rows_equal": outcome.rows_equal,
        "lobster_rows_compared": outcome.rows_compared,
        "lobster_itch_fast_msgs_per_s": _rate(builder.messages * repeats, fast_s),
        "lobster_itch_messages": builder.messages,
        "lobster_peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
