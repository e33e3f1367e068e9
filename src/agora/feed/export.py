"""Feed output for research: core events and L2 book samples to Parquet, numpy and polars.

Parquet layout (hive partitioning, one file per symbol and day, readable by ``pyarrow.dataset``,
``polars.scan_parquet(..., hive_partitioning=True)``, DuckDB, Spark)::

    out_dir/events/date=YYYY-MM-DD/symbol=XYZ/events.parquet   (EventParquetWriter)
    out_dir/books/date=YYYY-MM-DD/symbol=XYZ/l2.parquet        (BookSampleParquetWriter)

Symbols are percent-encoded in the path (``BRK A`` -> ``symbol=BRK%20A``, ``#12`` -> ``%2312``);
both readers decode them back.

Event schema, one for every kind (null where a kind has no such field), :data:`EVENT_SCHEMA`:
``ts`` int64 ns, ``seq`` int64 (position in the writer's input, across symbols), ``kind``
(dictionary string: the core event class name), ``order_id``, ``old_order_id`` (BookReplace),
``side`` (dictionary "B"/"S"; a Trade's side may be null), ``price`` int64 Price(4) (a
TradingStatus's reference price), ``qty``, ``trade_id``, ``cross`` bool (BookExecute, Trade) and
``state`` (dictionary, TradingStatus only: agora's TradingState value, which the schema would
otherwise lose). Money stays integer end to end: no float column exists.

Memory is bounded: rows are buffered per symbol and written as one row group when a symbol's
buffer reaches ``row_group_rows``, or, when all buffers together reach ``max_buffered_rows``, the
largest buffers are written until half of that remains. Each symbol's ``ParquetWriter`` opens
lazily and stays open until :meth:`close` (a Parquet file cannot be appended to once closed), so
thousands of symbols mean thousands of open files: the soft ``RLIMIT_NOFILE`` is raised towards
the hard limit as needed, and :class:`TooManyOpenFiles` says so when even that is not enough.

``events_to_polars`` / ``events_to_numpy`` give the same columns (plus ``symbol`` first) in
memory. numpy has no nulls: missing integers are :data:`NULL_INT` (-1), missing strings ``""``,
a missing ``cross`` is False.
"""

from __future__ import annotations

import abc
import datetime
import os
import resource
from collections.abc import Callable, Iterable
from pathlib import Path
from urllib.parse import quote

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from agora.core import events as ev
from agora.core.enums import Side, TradingState
from agora.feed.book import BookView, Level

NULL_INT = -1  # numpy export: an integer field the event kind does not have
KINDS = ("BookAdd", "BookExecute", "BookCancel", "BookDelete", "BookReplace", "Trade",
         "TradingStatus")
SIDES = (Side.BUY.value, Side.SELL.value)
STATES = tuple(state.value for state in TradingState)
_INT_COLUMNS = ("order_id", "old_order_id", "price", "qty", "trade_id")


EVENT_SCHEMA = pa.schema([
    pa.field("ts", pa.int64(), nullable=False),
    pa.field("seq", pa.int64(), nullable=False),
    pa.field("kind", pa.dictionary(pa.int8(), pa.string()), nullable=False),
    pa.field("order_id", pa.int64()),
    pa.field("old_order_id", pa.int64()),
    pa.field("side", pa.dictionary(pa.int8(), pa.string())),
    pa.field("price", pa.int64()),
    pa.field("qty", pa.int64()),
    pa.field("trade_id", pa.int64()),
    pa.field("cross", pa.bool_()),
    pa.field("state", pa.dictionary(pa.int8(), pa.string())),
])
# The dictionaries are fixed, so every row group (and every file) encodes codes the same way.
_DICTIONARIES = {"kind": pa.array(KINDS), "side": pa.array(SIDES), "state": pa.array(STATES)}

_SIDE_CODE = {Side.BUY: 0, Side.SELL: 1, None: None}
_STATE_CODE = {state: i for i, state in enumerate(TradingState)}
_FD_RESERVE = 64  # descriptors left for everything else the process opens

# One row per event: (ts, seq, kind, order_id, old_order_id, side, price, qty, trade_id, cross,
# state); kind/side/state as dictionary codes.
_ROW: dict[type, Callable[[object, int], tuple]] = {
    ev.BookAdd: lambda e, seq: (
        e.ts, seq, 0, e.order_id, None, _SIDE_CODE[e.side], e.price, e.qty, None, None, None),
    ev.BookExecute: lambda e, seq: (
        e.ts, seq, 1, e.order_id, None, None, e.price, e.qty, e.trade_id, e.cross, None),
    ev.BookCancel: lambda e, seq: (
        e.ts, seq, 2, e.order_id, None, None, None, e.qty, None, None, None),
    ev.BookDelete: lambda e, seq: (
        e.ts, seq, 3, e.order_id, None, None, None, None, None, None, None),
    ev.BookReplace: lambda e, seq: (
        e.ts, seq, 4, e.order_id, e.old_order_id, None, e.price, e.qty, None, None, None),
    ev.Trade: lambda e, seq: (
        e.ts, seq, 5, None, None, _SIDE_CODE[e.side], e.price, e.qty, e.trade_id, e.cross, None),
    ev.TradingStatus: lambda e, seq: (
        e.ts, seq, 6, None, None, None, e.reference_price, None, None, None,
        _STATE_CODE[e.state]),
}


assert tuple(kind.__name__ for kind in _ROW) == KINDS  # the kind codes above index KINDS
EVENT_TYPES = frozenset(_ROW)  # what the event exports take; filter a handler's output with it


class TooManyOpenFiles(OSError):
    """More symbols are open at once than the process may have files open."""


def _event_row(event: object, seq: int) -> tuple:
    row = _ROW.get(type(event))
    if row is None:
        raise TypeError(f"cannot export {type(event).__name__}: only {', '.join(KINDS)} events")
    return row(event, seq)


def _events_table(rows: list[tuple]) -> pa.Table:
    """Rows of :func:`_event_row` -> a table with :data:`EVENT_SCHEMA`."""
    columns = list(zip(*rows, strict=True)) if rows else [()] * len(EVENT_SCHEMA)
    arrays = []
    for field, values in zip(EVENT_SCHEMA, columns, strict=True):
        dictionary = _DICTIONARIES.get(field.name)
        if dictionary is None:
            arrays.append(pa.array(values, type=field.type))
        else:
            codes = pa.array(values, type=pa.int8())
            arrays.append(pa.DictionaryArray.from_arrays(codes, dictionary))
    return pa.Table.from_arrays(arrays, schema=EVENT_SCHEMA)


def ensure_open_files(count: int) -> None:
    """Make room for ``count`` open files (plus a reserve), raising the soft RLIMIT_NOFILE up to
    the hard limit if needed; :class:`TooManyOpenFiles` if even the hard limit is too low."""
    needed = count + _FD_RESERVE
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or needed <= soft:
        return
    if hard != resource.RLIM_INFINITY and needed > hard:
        raise TooManyOpenFiles(
            f"{count} Parquet files open at once need about {needed} file descriptors, above the "
            f"hard limit {hard} (RLIMIT_NOFILE): raise it (ulimit -Hn) or export fewer symbols "
            f"per writer"
        )
    target = max(needed, 2 * soft)
    if hard != resource.RLIM_INFINITY:
        target = min(target, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


class _PartitionedParquet(abc.ABC):
    """Rows buffered per symbol, flushed as row groups into one lazily opened file per symbol
    under ``out_dir/<table>/date=<date>/symbol=<symbol>/<filename>``."""

    def __init__(self, out_dir: str | os.PathLike[str], table: str, filename: str, *, date: str,
                 schema: pa.Schema, row_group_rows: int, max_buffered_rows: int,
                 compression: str) -> None:
        try:
            if datetime.date.fromisoformat(date).isoformat() != date:
                raise ValueError
        except ValueError:
            raise ValueError(f"date must be YYYY-MM-DD, got {date!r}") from None
        if row_group_rows < 1 or max_buffered_rows < 1:
            raise ValueError("row_group_rows and max_buffered_rows must be positive")
        self.base = Path(out_dir) / table / f"date={date}"
        self.filename = filename
        self.schema = schema
        self.row_group_rows = row_group_rows
        self.max_buffered_rows = max_buffered_rows
        self.compression = compression
        self.rows_written = 0
        self.row_groups = 0
        self._buffers: dict[str, list[tuple]] = {}
        self._buffered = 0
        self._writers: dict[str, pq.ParquetWriter] = {}
        self._closed = False

    def path_of(self, symbol: str) -> Path:
        return self.base / f"symbol={quote(symbol, safe='')}" / self.filename

    def _append(self, symbol: str, row: tuple) -> None:
        if self._closed:
            raise ValueError("writer is closed")
        buffer = self._buffers.get(symbol)
        if buffer is None:
            buffer = self._buffers[symbol] = []
        buffer.append(row)
        self._buffered += 1
        if len(buffer) >= self.row_group_rows:
            self._flush(symbol)
        elif self._buffered >= self.max_buffered_rows:
            for name in sorted(self._buffers, key=lambda s: -len(self._buffers[s])):
                self._flush(name)
                if self._buffered <= self.max_buffered_rows // 2:
                    break

    @abc.abstractmethod
    def _table(self, rows: list[tuple]) -> pa.Table:
        """The buffered rows of one symbol as a table of this writer's schema."""

    def _flush(self, symbol: str) -> None:
        rows = self._buffers.get(symbol)
        if not rows:
            return
        writer = self._writers.get(symbol)
        if writer is None:
            ensure_open_files(len(self._writers) + 1)
            path = self.path_of(symbol)
            path.parent.mkdir(parents=True, exist_ok=True)
            writer = self._writers[symbol] = pq.ParquetWriter(
                path, self.schema, compression=self.compression
            )
        writer.write_table(self._table(rows), row_group_size=len(rows))
        self.rows_written += len(rows)
        self.row_groups += 1
        self._buffered -= len(rows)
        self._buffers[symbol] = []

    @property
    def open_files(self) -> int:
        return len(self._writers)

    @property
    def buffered_rows(self) -> int:
        """Rows held in memory, not yet written (bounded by ``max_buffered_rows``)."""
        return self._buffered

    def close(self) -> None:
        """Write what is buffered and close every file (idempotent)."""
        if self._closed:
            return
        try:
            for symbol in list(self._buffers):
                self._flush(symbol)
        finally:
            self._closed = True
            for writer in self._writers.values():
                writer.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class EventParquetWriter(_PartitionedParquet):
    """Core book/trade/status events -> ``events/date=.../symbol=.../events.parquet``."""

    def __init__(self, out_dir: str | os.PathLike[str], *, date: str,
                 row_group_rows: int = 65_536, max_buffered_rows: int = 2_000_000,
                 compression: str = "zstd") -> None:
        super().__init__(out_dir, "events", "events.parquet", date=date, schema=EVENT_SCHEMA,
                         row_group_rows=row_group_rows, max_buffered_rows=max_buffered_rows,
                         compression=compression)
        self.seq = 0

    def write(self, event: object) -> None:
        """Buffer one event (its ``seq`` is its position in this writer's input)."""
        row = _event_row(event, self.seq)
        self.seq += 1
        self._append(event.symbol, row)  # type: ignore[attr-defined]

    def write_all(self, events: Iterable[object]) -> None:
        for event in events:
            self.write(event)

    def _table(self, rows: list[tuple]) -> pa.Table:
        return _events_table(rows)


def book_schema(depth: int) -> pa.Schema:
    """ts, then bid_px/qty/n_1..depth, then ask_px/qty/n_1..depth, all int64."""
    fields = [pa.field("ts", pa.int64(), nullable=False)]
    for side in ("bid", "ask"):
        for what in ("px", "qty", "n"):
            fields += [pa.field(f"{side}_{what}_{i}", pa.int64()) for i in range(1, depth + 1)]
    return pa.schema(fields)


class BookSampleParquetWriter(_PartitionedParquet):
    """L2 book samples (:class:`~agora.feed.book.BookView` of :class:`Level`) -> one wide row
    per sample in ``books/date=.../symbol=.../l2.parquet``; levels beyond ``depth`` are dropped,
    missing levels are null."""

    def __init__(self, out_dir: str | os.PathLike[str], *, date: str, depth: int = 10,
                 row_group_rows: int = 65_536, max_buffered_rows: int = 500_000,
                 compression: str = "zstd") -> None:
        if depth < 1:
            raise ValueError(f"depth must be positive, got {depth}")
        super().__init__(out_dir, "books", "l2.parquet", date=date, schema=book_schema(depth),
                         row_group_rows=row_group_rows, max_buffered_rows=max_buffered_rows,
                         compression=compression)
        self.depth = depth

    def write(self, view: BookView) -> None:
        depth = self.depth
        row: list = [view.ts]
        for levels in (view.bids[:depth], view.asks[:depth]):
            if levels and type(levels[0]) is not Level:
                raise TypeError(
                    f"book samples take L2 levels (Level), got {type(levels[0]).__name__}"
                )
            pad = [None] * (depth - len(levels))
            row += [level.price for level in levels] + pad
            row += [level.qty for level in levels] + pad
            row += [level.orders for level in levels] + pad
        self._append(view.symbol, tuple(row))

    def _table(self, rows: list[tuple]) -> pa.Table:
        columns = zip(*rows, strict=True)
        return pa.Table.from_arrays(
            [pa.array(values, type=pa.int64()) for values in columns], schema=self.schema
        )


# ---------------------------------------------------------------------- in memory


def _symbols_and_table(events: Iterable[object]) -> tuple[list[str], pa.Table]:
    symbols: list[str] = []
    rows: list[tuple] = []
    for seq, event in enumerate(events):
        rows.append(_event_row(event, seq))
        symbols.append(event.symbol)  # type: ignore[attr-defined]
    return symbols, _events_table(rows)


def events_to_polars(events: Iterable[object]) -> pl.DataFrame:
    """``symbol`` then the :data:`EVENT_SCHEMA` columns (dictionaries as Categorical)."""
    symbols, table = _symbols_and_table(events)
    table = table.add_column(0, "symbol", pa.array(symbols, type=pa.string()))
    return pl.from_arrow(table)  # type: ignore[return-value]


def events_to_numpy(events: Iterable[object]) -> np.ndarray:
    """A structured array: ``symbol`` then the :data:`EVENT_SCHEMA` columns; int64 money,
    :data:`NULL_INT` / ``""`` / False where the event kind has no such field."""
    symbols, table = _symbols_and_table(events)
    width = max((len(s) for s in symbols), default=1)
    dtype = np.dtype([
        ("symbol", f"U{width}"), ("ts", "i8"), ("seq", "i8"), ("kind", f"U{max(map(len, KINDS))}"),
        ("order_id", "i8"), ("old_order_id", "i8"), ("side", "U1"), ("price", "i8"),
        ("qty", "i8"), ("trade_id", "i8"), ("cross", "?"), ("state", f"U{max(map(len, STATES))}"),
    ])
    out = np.zeros(len(symbols), dtype=dtype)
    out["symbol"] = symbols
    for name in ("ts", "seq", *_INT_COLUMNS):
        out[name] = table.column(name).fill_null(NULL_INT).to_numpy()
    for name in ("kind", "side", "state"):
        out[name] = [v or "" for v in table.column(name).cast(pa.string()).to_pylist()]
    out["cross"] = table.column("cross").fill_null(False).to_numpy(zero_copy_only=False)
    return out
