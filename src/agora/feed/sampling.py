"""Book states over time: after every event, every N events, or on a grid of event time.

:func:`book_states` drives a :class:`~agora.feed.handler.FeedHandler` over records and yields
:class:`~agora.feed.book.BookView` values for the chosen symbols:

* ``every_events=1`` streams the book after each book event of a symbol; ``every_events=N`` after
  every N-th (per symbol).
* ``every_ns=T`` samples every chosen symbol at each multiple of T of event time, showing the book
  as it stood at that instant (all messages stamped before it applied, none at or after it). The
  grid starts at the first multiple of T after the first message; empty stretches still yield
  their grid points, so the output is a regular time series.

Event time is the feed's own timestamp (ns since midnight for ITCH): no wall clock anywhere.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from agora.feed.book import BookView, L3Book
from agora.feed.handler import FeedHandler


def book_states(
    handler: FeedHandler,
    records: Iterable[tuple[int, bytes]],
    symbols: Iterable[str],
    *,
    every_events: int | None = None,
    every_ns: int | None = None,
    depth: int | None = 10,
    on_events: Callable[[list], None] | None = None,
) -> Iterator[BookView]:
    """Yield book views of ``symbols`` while ``handler`` consumes ``records``; every message's
    normalized events also go to ``on_events`` (so one pass can both export and sample)."""
    if (every_events is None) == (every_ns is None):
        raise ValueError("give exactly one of every_events and every_ns")
    if (every_events is not None and every_events < 1) or (every_ns is not None and every_ns < 1):
        raise ValueError("the sampling interval must be positive")
    chosen = list(symbols)
    wanted = set(chosen)
    seen: dict[str, int] = dict.fromkeys(chosen, 0)
    next_grid: int | None = None
    for offset, msg in handler.decoded(records):
        if every_ns is not None:
            ts = msg.timestamp
            if next_grid is None:
                next_grid = (ts // every_ns + 1) * every_ns
            while ts >= next_grid:
                for symbol in chosen:
                    yield _view(handler, symbol, next_grid, depth)
                next_grid += every_ns
        events = handler.on_message(msg, offset)
        if events and on_events is not None:
            on_events(events)
        if every_events is None:
            continue
        for event in events:
            symbol = getattr(event, "symbol", None)
            if symbol in wanted and symbol in handler.books:
                seen[symbol] += 1
                if seen[symbol] % every_events == 0:  # type: ignore[operator]
                    yield handler.books[symbol].view(event.ts, depth)


def _view(handler: FeedHandler, symbol: str, ts: int, depth: int | None) -> BookView:
    book = handler.books.get(symbol)
    return (book or L3Book(symbol)).view(ts, depth)
