"""``agora feed ...``: census, books and exports of ITCH 5.0 day files; the synthetic day."""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from agora.core.price import format_price
from agora.feed.book import L3Book
from agora.feed.handler import FeedHandler
from agora.feed.integrity import IntegrityReport
from agora.feed.source import (
    FeedFileError,
    RecordFilter,
    iter_records,
    open_binary,
    stream_position,
)
from agora.feed.timeofday import format_time_of_day, parse_time_of_day

feed_app = typer.Typer(help="Feed handling: ITCH 5.0 day files, books, exports.",
                       no_args_is_help=True)
console = Console(stderr=False)
err = Console(stderr=True)


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), DownloadColumn(),
        TransferSpeedColumn(), TimeRemainingColumn(), console=err, transient=True,
    )


@contextlib.contextmanager
def _records(path: Path, report: IntegrityReport, label: str) -> Iterator[Iterator]:
    """The file's records, with a progress bar over the bytes read from disk."""
    size = os.path.getsize(path)
    with open_binary(path) as stream, _progress() as bar:
        task = bar.add_task(label, total=size)

        def tracked() -> Iterator[tuple[int, bytes]]:
            for n, record in enumerate(iter_records(stream, report=report), 1):
                if n % 65_536 == 0:
                    bar.update(task, completed=stream_position(stream))
                yield record

        yield tracked()


def _check_file(path: Path) -> None:
    if not path.is_file():
        raise typer.BadParameter(f"{path} is not a file", param_hint="FILE")


def _print_report(report: IntegrityReport) -> None:
    if not report:
        console.print("[green]no integrity issues[/green]")
        return
    console.print(f"[yellow]{report.summary()}[/yellow]")
    for issue in report.examples[:10]:
        console.print(f"  [yellow]{issue.kind.value}[/yellow] at byte {issue.offset}: "
                      f"{issue.detail}")


@feed_app.command()
def stats(
    file: Path = typer.Argument(..., help="ITCH 5.0 BinaryFILE (plain or gzip)."),
    top: int = typer.Option(20, min=1, help="Symbols listed, busiest first."),
    as_json: bool = typer.Option(False, "--json", help="Print the census as JSON."),
) -> None:
    """Messages by type and symbol, time span and framing problems, from record headers."""
    from agora.feed.stats import file_stats

    _check_file(file)
    with _progress() as bar:
        task = bar.add_task("reading", total=os.path.getsize(file))
        try:
            result = file_stats(file, lambda done, total: bar.update(task, completed=done))
        except FeedFileError as exc:
            raise typer.BadParameter(str(exc), param_hint="FILE") from None
    if as_json:
        import msgspec

        console.print_json(msgspec.json.encode(result).decode())
        return
    span = "-"
    if result.first_ts is not None:
        span = f"{format_time_of_day(result.first_ts)} .. {format_time_of_day(result.last_ts)}"
    console.print(f"{file}: {result.messages:,} messages, {result.payload_bytes:,} payload bytes, "
                  f"{len(result.by_symbol):,} locates, time {span}")
    types = Table(title="messages by type")
    types.add_column("type")
    types.add_column("messages", justify="right")
    for char, n in result.by_type.items():
        types.add_row(char, f"{n:,}")
    console.print(types)
    symbols = Table(title=f"busiest {min(top, len(result.by_symbol))} symbols")
    symbols.add_column("symbol")
    symbols.add_column("messages", justify="right")
    for name, n in list(result.by_symbol.items())[:top]:
        symbols.add_row(name, f"{n:,}")
    console.print(symbols)
    if result.issues:
        console.print(f"[yellow]framing issues: {json.dumps(result.issues)}[/yellow]")


def _level_table(book: L3Book, depth: int, at: str) -> Table:
    table = Table(title=f"{book.symbol} at {at}: {len(book):,} live orders")
    for name in ("bid orders", "bid qty", "bid", "ask", "ask qty", "ask orders"):
        table.add_column(name, justify="right")
    bids, asks = book.levels(depth)
    for i in range(max(len(bids), len(asks))):
        b = bids[i] if i < len(bids) else None
        a = asks[i] if i < len(asks) else None
        bid = (str(b.orders), f"{b.qty:,}", format_price(b.price)) if b else ("", "", "")
        ask = (format_price(a.price), f"{a.qty:,}", str(a.orders)) if a else ("", "", "")
        table.add_row(*bid, *ask)
    return table


def _order_table(book: L3Book, depth: int) -> Table:
    table = Table(title=f"{book.symbol}: orders in queue order (L3)")
    for name in ("side", "price", "position", "order id", "qty"):
        table.add_column(name, justify="right")
    for side_name, levels in zip(("bid", "ask"), book.orders_by_level(depth), strict=True):
        for price, orders in levels:
            for position, order in enumerate(orders):
                table.add_row(side_name, format_price(price), str(position), str(order.order_id),
                              f"{order.qty:,}")
    return table


@feed_app.command()
def book(
    file: Path = typer.Argument(..., help="ITCH 5.0 BinaryFILE (plain or gzip)."),
    symbol: str = typer.Option(..., "--symbol", "-s", help="Ticker, as in the Stock Directory."),
    at: str = typer.Option(None, help="Time of day HH:MM[:SS[.fraction]]; default end of file."),
    depth: int = typer.Option(10, min=1, help="Price levels per side."),
    orders: bool = typer.Option(False, "--orders", help="Also list every order (L3)."),
) -> None:
    """Print one symbol's book as it stood at a time of day (L2, optionally L3)."""
    _check_file(file)
    try:
        end_ns = parse_time_of_day(at) if at else None
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--at") from None
    handler = FeedHandler([symbol], emit=False)
    try:
        with _records(file, handler.report, f"building {symbol}") as records:
            handler.process_records(records, RecordFilter(symbols=[symbol], end_ns=end_ns))
    except FeedFileError as exc:
        raise typer.BadParameter(str(exc), param_hint="FILE") from None
    found = handler.books.get(symbol)
    if found is None:
        known = symbol in handler.symbol_of_locate.values()
        reason = "has no orders by then" if known else "is not in the file's stock directory"
        reason += "" if known or not at else " by then"
        console.print(f"[yellow]{symbol} {reason}[/yellow]")
        found = L3Book(symbol)
    label = at if at else "end of file"
    console.print(_level_table(found, depth, label))
    if orders:
        console.print(_order_table(found, depth))
    _print_report(handler.report)


@feed_app.command()
def synth(
    out: Path = typer.Argument(..., help="File to write (ITCH 5.0 BinaryFILE)."),
    messages: int = typer.Option(20_000_000, min=1_000, help="Messages, approximately."),
    symbols: int = typer.Option(3_000, min=1, help="Symbols."),
    seed: int = typer.Option(1),
    gz: bool = typer.Option(False, "--gzip", help="Write gzip-compressed."),
) -> None:
    """Write a reproducible day-sized ITCH 5.0 file produced by agora's own exchange."""
    from agora.bench.itch_synth import synthesize

    with Progress(
        TextColumn("[bold]synthesizing"), BarColumn(), TextColumn("{task.completed:,} msgs"),
        TimeRemainingColumn(), console=err, transient=True,
    ) as bar:
        task = bar.add_task("synth", total=messages)
        summary = synthesize(
            out, messages=messages, symbols=symbols, seed=seed, gzip=gz,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
    console.print(f"wrote {out}: {json.dumps(summary, default=str)}")


_NASDAQ_NAME = re.compile(r"^(\d{2})(\d{2})(\d{4})\.")  # 01302019.NASDAQ_ITCH50(.gz)


def _file_date(file: Path, date: str | None) -> str:
    """The trading day: ``--date``, else from a NASDAQ file name (MMDDYYYY.NASDAQ_ITCH50)."""
    if date:
        return date
    match = _NASDAQ_NAME.match(file.name)
    if match is None:
        raise typer.BadParameter(
            f"cannot tell the trading day from {file.name!r}; give --date YYYY-MM-DD",
            param_hint="--date",
        )
    return f"{match[3]}-{match[1]}-{match[2]}"


@feed_app.command()
def export(
    file: Path = typer.Argument(..., help="ITCH 5.0 BinaryFILE (plain or gzip)."),
    out: Path = typer.Option(..., "--out", help="Folder for the partitioned Parquet files."),
    symbol: list[str] = typer.Option(None, "--symbol", "-s", help="Tickers (repeat); all if none."),
    date: str = typer.Option(None, help="Trading day YYYY-MM-DD (default: from the file name)."),
    start: str = typer.Option(None, help="Export events from this time of day on."),
    end: str = typer.Option(None, help="Stop at this time of day."),
    books_every: str = typer.Option(None, help="Also sample L2 books, e.g. 1s or 250ms."),
    depth: int = typer.Option(10, min=1, help="Levels per side in book samples."),
) -> None:
    """Events (and sampled L2 books) to Parquet: one file per symbol and day, hive folders."""
    from agora.feed.export import EVENT_TYPES, BookSampleParquetWriter, EventParquetWriter
    from agora.feed.sampling import book_states
    from agora.feed.timeofday import parse_duration

    _check_file(file)
    day = _file_date(file, date)
    try:
        start_ns = parse_time_of_day(start) if start else 0
        end_ns = parse_time_of_day(end) if end else None
        every_ns = parse_duration(books_every) if books_every else None
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    if every_ns is not None and not symbol:
        raise typer.BadParameter("book samples need --symbol (one row per symbol per interval)",
                                 param_hint="--books-every")
    handler = FeedHandler(symbol or None)
    events = EventParquetWriter(out, date=day)
    books = BookSampleParquetWriter(out, date=day, depth=depth) if every_ns else None
    written = 0

    def keep(batch: list) -> None:
        nonlocal written
        for event in batch:
            if type(event) in EVENT_TYPES and event.ts >= start_ns:
                events.write(event)
                written += 1

    record_filter = RecordFilter(symbols=symbol or None, end_ns=end_ns)
    samples = 0
    try:
        with _records(file, handler.report, "exporting") as records:
            if books is None:
                handler.process_records(records, record_filter, keep)
            else:
                filtered = record_filter.filter(records)
                for view in book_states(handler, filtered, symbol, every_ns=every_ns,
                                        depth=depth, on_events=keep):
                    if view.ts >= start_ns:
                        books.write(view)
                        samples += 1
    except FeedFileError as exc:
        raise typer.BadParameter(str(exc), param_hint="FILE") from None
    finally:
        events.close()
        if books is not None:
            books.close()
    console.print(f"wrote {written:,} events for {len(handler.books):,} symbols"
                  + (f" and {samples:,} book samples" if books is not None else "")
                  + f" under {out} (date={day})")
    _print_report(handler.report)
