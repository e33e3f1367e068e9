"""``agora bench feed``: a whole ITCH 5.0 day into L3 books, the numba fast path against baselines.

Input: a day-sized BinaryFILE made by ``agora.bench.itch_synth.synthesize`` (agora's own exchange
engine; default 20,000,000 messages over 3,000 symbols) and cached under
``$XDG_CACHE_HOME/agora/feed/`` (default ``~/.cache``) keyed by (messages, symbols, seed), or any
day file given with ``--file`` (plain or gzip, e.g. a real NASDAQ ``*.NASDAQ_ITCH50.gz``).

Contenders, each in its own fresh ``python`` process so that its peak RSS
(``getrusage(RUSAGE_SELF).ru_maxrss``) is its own; RSS is also sampled after imports/warm-up
(``start``) and after the run (``end``):

- fast: :class:`agora.feed.fast.FastBookBuilder` over the whole file, the median of ``runs``
  processes; numba's cache load / first compile runs first on a tiny buffer (``warm_up``) and
  is reported apart, never in the throughput;
- reference: :class:`agora.feed.handler.FeedHandler` (``itch50.decode`` + ``L3Book``, no event
  output, no per-message crossed check) on the first ``prefix`` messages;
- meatpy 0.5: its ``ITCH50MessageReader`` and one ``ITCH50MarketProcessor`` per Stock Directory
  entry (meatpy's processor follows one instrument; messages are routed to it by locate), on
  the same prefix;
- floor: :class:`agora.feed.fast.FrameWalker`, the fast path's own reading and framing with a
  kernel that only sums the type bytes: what decoding and book building add on top of I/O.

The fast path is also run on the prefix, and the L2 books of fast, reference and meatpy after the
prefix are compared (a digest each): the table says whether they agree.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from itertools import islice
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

console = Console()
Worker = Callable[[Path, int], dict]


def cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "agora" / "feed"


def day_file(messages: int, symbols: int, seed: int) -> Path:
    """The cached synthetic day for these arguments, generated (atomically) if missing.

    The name also carries a hash of the generator's source, so a changed generator makes a new
    day instead of silently reusing one it would no longer produce.
    """
    from agora.bench import itch_synth

    version = hashlib.sha256(Path(itch_synth.__file__).read_bytes()).hexdigest()[:8]
    path = cache_dir() / f"itch50-{messages}msg-{symbols}sym-seed{seed}-synth{version}.itch"
    if path.exists():
        return path
    synthesize = itch_synth.synthesize

    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".partial-{os.getpid()}")
    columns = (TextColumn("synthesizing {task.description}"), BarColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task(f"{messages:,} messages, {symbols:,} symbols", total=messages)
        synthesize(partial, messages=messages, symbols=symbols, seed=seed,
                   progress=lambda done, total: bar.update(task, completed=done, total=total))
    partial.replace(path)
    return path


# ---------------------------------------------------------------------------------- workers
# Each runs in a fresh process (``python -m agora.bench.feed <worker> <path> <limit>``) and
# prints one JSON line.


def _rss_mib() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


class _Clock:
    """Wall and CPU seconds of one timed section: on a shared machine the two part ways."""

    def __enter__(self) -> _Clock:
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self.wall
        self.cpu = time.process_time() - self.cpu


def _measured(start_rss: float, messages: int, clock: _Clock, **extra) -> dict:
    return {"messages": messages, "seconds": clock.wall, "cpu_seconds": clock.cpu,
            "rss_start_mib": start_rss, "rss_end_mib": _rss_mib(), "peak_rss_mib": _peak_mib(),
            **extra}


def _digest(books: Iterable[tuple[str, list, list]]) -> str:
    """One hash of every non-empty book's L2: (symbol, [(price, qty, orders)] per side)."""
    rows = sorted((s, bids, asks) for s, bids, asks in books if bids or asks)
    return hashlib.sha256(repr(rows).encode()).hexdigest()[:16]


def _l2(levels: tuple[list, list]) -> tuple[list, list]:
    """agora's (bids, asks) of ``Level`` as plain tuples."""
    return tuple([(lv.price, lv.qty, lv.orders) for lv in side] for side in levels)


def _work_fast(path: Path, limit: int) -> dict:
    from agora.feed.fast import FastBookBuilder, warm_up

    jit_s = warm_up()
    start = _rss_mib()
    builder = FastBookBuilder()
    with _Clock() as clock:
        builder.process_file(path)
    return _measured(start, builder.records, clock, jit_load_s=jit_s,
                     peak_live_orders=builder.peak_live_orders,
                     table_mib=builder.table_bytes / 2**20, issues=builder.report.total)


def _prefix_bytes(path: Path, limit: int) -> np.ndarray:
    """The first ``limit`` records of the (uncompressed) stream, as one array."""
    from agora.feed.fast import CHUNK, read_chunks
    from agora.feed.fast_kernels import walk_frames
    from agora.feed.source import open_binary

    parts, records = [], 0
    with open_binary(path) as stream:
        for chunk in read_chunks(stream, np.empty(CHUNK, np.uint8)):
            parts.append(chunk.copy())
            data = np.concatenate(parts)
            pos, records, _ = walk_frames(data, 0, len(data), limit)
            if records == limit:
                return data[:pos]
    return np.concatenate(parts) if parts else np.zeros(0, np.uint8)


def _work_fast_prefix(path: Path, limit: int) -> dict:
    from agora.feed.fast import FastBookBuilder, warm_up

    warm_up()
    data = _prefix_bytes(path, limit)
    start = _rss_mib()
    builder = FastBookBuilder()
    with _Clock() as clock:
        builder.feed(data)
    books = ((s, *_l2(builder.levels(s))) for s in builder.books())
    return _measured(start, builder.records, clock, digest=_digest(books))


def _work_reference(path: Path, limit: int) -> dict:
    from agora.feed.handler import FeedHandler
    from agora.feed.integrity import IssueKind
    from agora.feed.source import iter_records, open_binary

    start = _rss_mib()
    handler = FeedHandler(emit=False, check_crossed=False)
    with _Clock() as clock, open_binary(path) as stream:
        handler.process_records(islice(iter_records(stream, report=handler.report), limit))
    books = ((s, *_l2(book.levels())) for s, book in handler.books.items())
    return _measured(start, handler.messages + handler.report.counts.get(IssueKind.MALFORMED, 0),
                     clock, digest=_digest(books))


def _work_meatpy(path: Path, limit: int) -> dict:
    from meatpy.itch50 import ITCH50MarketProcessor, ITCH50MessageReader
    from meatpy.itch50 import itch50_market_message as mm

    book_types = (mm.AddOrderMessage, mm.AddOrderMPIDMessage, mm.OrderExecutedMessage,
                  mm.OrderExecutedPriceMessage, mm.OrderCancelMessage, mm.OrderDeleteMessage,
                  mm.OrderReplaceMessage)
    day = datetime.datetime(2000, 1, 3)
    processors: dict[int, ITCH50MarketProcessor] = {}
    start = _rss_mib()
    n = 0
    with _Clock() as clock, ITCH50MessageReader(path) as reader:
        for msg in islice(reader, limit):
            n += 1
            if isinstance(msg, book_types):
                processor = processors.get(msg.stock_locate)
                if processor is not None:
                    processor.process_message(msg)
            elif isinstance(msg, mm.StockDirectoryMessage):
                processors[msg.stock_locate] = ITCH50MarketProcessor(msg.stock, day)

    def side(levels) -> list:
        return [(lv.price, sum(o.volume for o in lv.queue), len(lv.queue)) for lv in levels]

    books = []
    for processor in processors.values():
        lob = processor.current_lob
        if lob is not None:
            symbol = processor.instrument.decode("ascii").rstrip(" ")
            bids = sorted(side(lob.bid_levels), reverse=True)
            books.append((symbol, bids, sorted(side(lob.ask_levels))))
    return _measured(start, n, clock, digest=_digest(books), version=_version("meatpy"))


def _work_floor(path: Path, limit: int) -> dict:
    from agora.feed.fast import FrameWalker, warm_up

    warm_up()
    start = _rss_mib()
    walker = FrameWalker()
    with _Clock() as clock:
        walker.process_file(path)
    return _measured(start, walker.records, clock, type_byte_sum=walker.type_byte_sum)


def _version(package: str) -> str:
    from importlib.metadata import version

    return version(package)


WORKERS: dict[str, Worker] = {
    "fast": _work_fast,
    "fast-prefix": _work_fast_prefix,
    "reference": _work_reference,
    "meatpy": _work_meatpy,
    "floor": _work_floor,
}


def _spawn(worker: str, path: Path, limit: int) -> dict:
    """Run one worker in a fresh interpreter; its last stdout line is its JSON result."""
    done = subprocess.run(
        [sys.executable, "-m", "agora.bench.feed", worker, str(path), str(limit)],
        capture_output=True, text=True, check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"bench feed worker {worker!r} failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------------- run


def run(
    *, messages: int, symbols: int, seed: int, runs: int, prefix: int, file: Path | None = None,
    lobster: Path | None = None, lobster_repeats: int = 100,
) -> dict:
    path = Path(file) if file is not None else day_file(messages, symbols, seed)
    size_mib = path.stat().st_size / 2**20
    with console.status(f"fast path, {runs} run(s)"):
        fast_runs = [_spawn("fast", path, -1) for _ in range(runs)]
    fast = sorted(fast_runs, key=lambda r: r["seconds"])[len(fast_runs) // 2]
    n = fast["messages"]
    limit = min(prefix, n)
    results = {"fast": fast}
    for name in ("floor", "fast-prefix", "reference", "meatpy"):
        with console.status(f"{name} on {n if name == 'floor' else limit:,} messages"):
            results[name] = _spawn(name, path, -1 if name == "floor" else limit)
    rate = {name: r["messages"] / r["seconds"] for name, r in results.items()}
    fast_rate = statistics.median(r["messages"] / r["seconds"] for r in fast_runs)
    rate["fast"] = fast_rate
    agree = results["fast-prefix"]["digest"] == results["reference"]["digest"]
    meatpy_agrees = results["fast-prefix"]["digest"] == results["meatpy"]["digest"]

    table = Table(title=f"agora bench feed: {path.name} ({size_mib:,.0f} MiB, {n:,} messages), "
                        f"{platform.python_implementation()} {platform.python_version()}, "
                        f"{platform.machine()}, {os.cpu_count()} CPUs")
    for column in ("contender", "messages", "seconds", "CPU s", "msgs/s", "peak RSS MiB",
                   "RSS start-end MiB", "vs fast"):
        table.add_column(column, justify="left" if column == "contender" else "right")
    for name in ("fast", "floor", "fast-prefix", "reference", "meatpy"):
        r = results[name]
        table.add_row(name, f"{r['messages']:,}", f"{r['seconds']:.2f}", f"{r['cpu_seconds']:.2f}",
                      f"{rate[name]:,.0f}",
                      f"{r['peak_rss_mib']:,.0f}",
                      f"{r['rss_start_mib']:,.0f}-{r['rss_end_mib']:,.0f}",
                      f"{rate[name] / fast_rate:.3g}x")
    console.print(table)
    for line in (
        f"fast: median of {runs} process(es); numba cache load {fast['jit_load_s']:.2f} s, not "
        f"timed; peak {fast['peak_live_orders']:,} live orders, tables {fast['table_mib']:.0f} "
        "MiB; RSS start is after imports and warm-up",
        "floor: the fast path's reading and framing with a kernel that only sums type bytes",
        f"reference (FeedHandler), meatpy {results['meatpy']['version']} and fast-prefix: the "
        f"first {limit:,} messages; L2 books after them: reference "
        f"{'equal' if agree else 'DIFFERENT'}, meatpy {'equal' if meatpy_agrees else 'DIFFERENT'}",
    ):
        console.print(line)
    result = {
        "messages": n,
        "symbols": symbols if file is None else None,
        "file_mib": round(size_mib, 1),
        "runs": runs,
        "fast_msgs_per_s": round(fast_rate),
        "fast_seconds": round(fast["seconds"], 3),
        "fast_cpu_seconds": round(fast["cpu_seconds"], 3),
        "fast_msgs_per_cpu_s": round(n / fast["cpu_seconds"]),
        "fast_peak_rss_mib": round(fast["peak_rss_mib"], 1),
        "fast_rss_start_mib": round(fast["rss_start_mib"], 1),
        "fast_peak_live_orders": fast["peak_live_orders"],
        "jit_load_s": round(fast["jit_load_s"], 3),
        "frame_walk_msgs_per_s": round(rate["floor"]),
        "reference_msgs_per_s": round(rate["reference"]),
        "reference_messages": results["reference"]["messages"],
        "reference_peak_rss_mib": round(results["reference"]["peak_rss_mib"], 1),
        "meatpy_msgs_per_s": round(rate["meatpy"]),
        "meatpy_messages": results["meatpy"]["messages"],
        "meatpy_peak_rss_mib": round(results["meatpy"]["peak_rss_mib"], 1),
        "ratio_vs_reference": round(fast_rate / rate["reference"], 1),
        "ratio_vs_meatpy": round(fast_rate / rate["meatpy"], 1),
        "fast_share_of_floor": round(fast_rate / rate["floor"], 3),
        "books_equal_reference": agree,
        "books_equal_meatpy": meatpy_agrees,
    }
    if lobster is not None:
        from agora.bench.feed_lobster import measure

        with console.status("LOBSTER sample"):
            result.update(measure(lobster, lobster_repeats))
        console.print(
            f"LOBSTER {result['lobster_symbol']} ({result['lobster_rows']:,} rows x "
            f"{result['lobster_repeats']}): reader + reference book "
            f"{result['lobster_read_book_rows_per_s']:,} rows/s; reconcile with the orderbook "
            f"file {result['lobster_reconcile_rows_per_s']:,} rows/s "
            f"({result['lobster_rows_equal']}/{result['lobster_rows_compared']} rows equal); "
            f"converted to ITCH, fast kernel {result['lobster_itch_fast_msgs_per_s']:,} msgs/s"
        )
    else:
        console.print("LOBSTER: not measured (give --lobster DIR with a message/orderbook pair)")
    print("RESULT " + json.dumps(result), flush=True)
    return result


if __name__ == "__main__":
    name, file_arg, limit_arg = sys.argv[1:4]
    print(json.dumps(WORKERS[name](Path(file_arg), int(limit_arg))), flush=True)
