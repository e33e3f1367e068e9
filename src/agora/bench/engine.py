"""``agora bench engine``: the matching engine, its journal and replay, against baselines.

Workload: ``agora.bench.workload.engine_workload`` (seeded; ~45% passive adds, ~45% cancels, ~10%
aggressive IOC) over 8 symbols, after the session setup. Measured, each the median of ``runs``:

- per-order API throughput: ``engine.process`` in a bare loop, every event built;
- per-order latency p50/p99/p99.9: ``perf_counter_ns`` around each call, recorded in an
  HdrHistogram after the loop (the timer pair's own cost is reported beside it);
- the sequencer alone (stamping and the command validation round trip), then the journal's
  cost: sequencer + journal with fsync NONE (group commit = one write per 100
  orders), BATCH (one fsync per 100 orders) and ALWAYS (one fsync per order) on a prefix;
- replay: the NONE journal read, verified, decoded and applied to a fresh engine;
- baselines in the same run: the reference model (``agora.exchange.reference``) on a prefix,
  with the fast engine on the same prefix for the ratio; both again on one symbol holding 5,000
  resting orders (the reference re-sorts the book per match, so depth is where they part); and
  the interpreter's floor, a loop that makes one no-op method call per command.
"""

from __future__ import annotations

import json
import platform
import statistics
import tempfile
import time
from array import array
from collections.abc import Callable
from pathlib import Path

import msgspec
from hdrh.histogram import HdrHistogram
from rich.console import Console
from rich.table import Table

from agora.bench.workload import engine_workload, setup_commands
from agora.core.clock import SimClock
from agora.core.enums import Side
from agora.core.events import CancelOrder, NewOrder
from agora.exchange.engine import MatchingEngine
from agora.exchange.journal import FsyncPolicy, JournalWriter, replay
from agora.exchange.reference import ReferenceEngine
from agora.exchange.sequencer import Sequencer

console = Console()
COMMIT_EVERY = 100


def _ready(engine_cls: type = MatchingEngine):
    engine = engine_cls()
    for command in setup_commands():
        engine.process(command, 0)
    return engine


def _throughput(commands: list, engine_cls: type = MatchingEngine) -> tuple[float, int]:
    """Seconds for the bare per-order loop, and events produced."""
    engine = _ready(engine_cls)
    process = engine.process
    events = 0
    started = time.perf_counter()
    for ts, command in enumerate(commands):
        events += len(process(command, ts))
    return time.perf_counter() - started, events


def _latencies(commands: list) -> array:
    engine = _ready()
    process = engine.process
    clock = time.perf_counter_ns
    samples = array("q", bytes(8 * len(commands)))
    for i, command in enumerate(commands):
        t0 = clock()
        process(command, i)
        samples[i] = clock() - t0
    return samples


def _timer_overhead_ns(n: int = 200_000) -> int:
    clock = time.perf_counter_ns
    samples = []
    for _ in range(n):
        t0 = clock()
        samples.append(clock() - t0)
    return int(statistics.median(samples))


class _Noop:
    def process(self, command: object, ts: int) -> None:
        return None


def _floor(commands: list) -> float:
    process = _Noop().process
    started = time.perf_counter()
    for ts, command in enumerate(commands):
        process(command, ts)
    return time.perf_counter() - started


def _sequenced(commands: list) -> float:
    """The sequencer without a journal: stamping plus the command validation round trip."""
    sequencer = Sequencer(_ready(), SimClock(step_ns=1_000))
    submit = sequencer.submit
    started = time.perf_counter()
    for command in commands:
        submit(command)
    return time.perf_counter() - started


def _journalled(
    commands: list, directory: Path, policy: FsyncPolicy, commit_every: int
) -> tuple[float, Path]:
    path = directory / f"bench-{policy.value}-{time.perf_counter_ns()}.agj"
    engine = _ready()
    with JournalWriter(path, fsync=FsyncPolicy.NONE if policy is FsyncPolicy.BATCH else policy,
                       batch_size=commit_every) as writer:
        sequencer = Sequencer(engine, SimClock(step_ns=1_000), writer)
        submit = sequencer.submit
        started = time.perf_counter()
        for i, command in enumerate(commands, 1):
            submit(command)
            if i % commit_every == 0:
                writer.flush() if policy is FsyncPolicy.NONE else writer.sync()
        sequencer.commit()
        return time.perf_counter() - started, path


def _replay_seconds(path: Path) -> tuple[float, int]:
    engine = _ready()
    process = engine.process

    def apply(seq: int, ts: int, command: object) -> None:
        process(command, ts)

    started = time.perf_counter()
    report = replay(path, apply)
    return time.perf_counter() - started, report.records


DEPTH = 5_000


def _deep_book_rate(engine_cls: type, flow_orders: int) -> float:
    """Orders/s of the workload's mix on one symbol that already rests DEPTH orders."""
    engine = _ready(engine_cls)
    for i in range(DEPTH):
        buy = i % 2 == 1
        price = 900_000 - 100 * (i % 50) if buy else 1_100_000 + 100 * (i % 50)
        engine.process(NewOrder("P01", f"deep{i}", "AAPL", Side.BUY if buy else Side.SELL,
                                100, price), 0)
    flow = [
        msgspec.structs.replace(c, order_id=c.order_id + DEPTH) if type(c) is CancelOrder else c
        for c in engine_workload(flow_orders, seed=5, symbols=1)
    ]
    started = time.perf_counter()
    for ts, command in enumerate(flow):
        engine.process(command, ts)
    return len(flow) / (time.perf_counter() - started)


def _median(fn: Callable[[], float], runs: int) -> float:
    return statistics.median(fn() for _ in range(runs))


def run(orders: int, runs: int, seed: int) -> dict:
    with console.status(f"generating {orders:,} orders (seed {seed})"):
        commands = engine_workload(orders, seed=seed)
    n = len(commands)
    rows: list[tuple[str, str, str]] = []
    with console.status("per-order API throughput"):
        timings = [_throughput(commands) for _ in range(runs)]
    api_seconds = statistics.median(t for t, _ in timings)
    events = timings[0][1]
    orders_per_s = n / api_seconds
    events_per_s = events / api_seconds
    rows.append(("per-order API", f"{orders_per_s:,.0f} orders/s",
                 f"{events_per_s:,.0f} events/s, {events / n:.2f} events/order"))

    with console.status("per-order latency"):
        samples = _latencies(commands)
        histogram = HdrHistogram(1, 60_000_000_000, 3)
        for value in samples:
            histogram.record_value(max(1, value))
        overhead = _timer_overhead_ns()
    p50, p99, p999 = (histogram.get_value_at_percentile(p) / 1_000 for p in (50, 99, 99.9))
    rows.append(("latency per order", f"p50 {p50:.2f} us  p99 {p99:.2f} us  p99.9 {p999:.2f} us",
                 f"max {histogram.get_max_value() / 1_000:,.0f} us; timer pair {overhead} ns"))

    with console.status("sequencer without journal"):
        sequenced = n / _median(lambda: _sequenced(commands), runs)
    rows.append(("sequencer, no journal", f"{sequenced:,.0f} orders/s",
                 "stamp + validate (encode, typed decode) + engine"))

    with tempfile.TemporaryDirectory(prefix="agora-bench-") as tmp:
        directory = Path(tmp)
        with console.status("journal, fsync none"):
            timings = [_journalled(commands, directory, FsyncPolicy.NONE, COMMIT_EVERY)
                       for _ in range(runs)]
            journal_none = n / statistics.median(t for t, _ in timings)
            journal_path = timings[0][1]
        rows.append(("sequencer + journal, fsync none", f"{journal_none:,.0f} orders/s",
                     f"write per {COMMIT_EVERY} orders; "
                     f"{journal_path.stat().st_size / n:.0f} B/record"))
        prefix = commands[: min(n, 50_000)]
        with console.status("journal, fsync batch"):
            seconds, _ = _journalled(prefix, directory, FsyncPolicy.BATCH, COMMIT_EVERY)
        journal_batch = len(prefix) / seconds
        rows.append(("sequencer + journal, fsync batch", f"{journal_batch:,.0f} orders/s",
                     f"fsync per {COMMIT_EVERY} orders, first {len(prefix):,} orders"))
        prefix = commands[: min(n, 3_000)]
        with console.status("journal, fsync always"):
            seconds, _ = _journalled(prefix, directory, FsyncPolicy.ALWAYS, 1)
        journal_always = len(prefix) / seconds
        rows.append(("sequencer + journal, fsync always", f"{journal_always:,.0f} orders/s",
                     f"fsync per order ({1e6 / journal_always:,.0f} us each), "
                     f"first {len(prefix):,} orders"))
        with console.status("replay"):
            replays = [_replay_seconds(journal_path) for _ in range(runs)]
        records = replays[0][1]
        replay_rate = records / statistics.median(s for s, _ in replays)
        rows.append(("journal replay into a fresh engine", f"{replay_rate:,.0f} records/s",
                     f"{records:,} records: read, crc-verified, decoded, applied"))

    prefix = commands[: min(n, 20_000)]
    with console.status("reference model baseline"):
        reference = len(prefix) / _median(lambda: _throughput(prefix, ReferenceEngine)[0], runs)
        fast_prefix = len(prefix) / _median(lambda: _throughput(prefix)[0], runs)
    ratio = fast_prefix / reference
    rows.append(("baseline: reference model", f"{reference:,.0f} orders/s",
                 f"first {len(prefix):,} orders; engine {fast_prefix:,.0f}/s there, {ratio:.1f}x"))
    with console.status(f"deep book ({DEPTH:,} resting orders)"):
        deep_fast = _median(lambda: _deep_book_rate(MatchingEngine, 5_000), runs)
        deep_reference = _deep_book_rate(ReferenceEngine, 500)
    rows.append((f"deep book: {DEPTH:,} resting orders", f"{deep_fast:,.0f} orders/s",
                 f"reference {deep_reference:,.0f}/s there, {deep_fast / deep_reference:,.0f}x"))
    floor = n / _median(lambda: _floor(commands), runs)
    rows.append(("floor: one no-op call per order", f"{floor:,.0f} calls/s",
                 f"engine at {orders_per_s / floor:.1%} of the interpreter's bare loop"))

    table = Table(title=f"agora bench engine: {n:,} orders, median of {runs}, "
                        f"{platform.python_implementation()} {platform.python_version()}")
    for name in ("measure", "result", "notes"):
        table.add_column(name)
    for row in rows:
        table.add_row(*row)
    console.print(table)
    result = {
        "orders": n,
        "runs": runs,
        "orders_per_s": round(orders_per_s),
        "events_per_s": round(events_per_s),
        "p50_us": round(p50, 2),
        "p99_us": round(p99, 2),
        "p999_us": round(p999, 2),
        "sequencer_no_journal_orders_per_s": round(sequenced),
        "journal_fsync_none_orders_per_s": round(journal_none),
        "journal_fsync_batch_orders_per_s": round(journal_batch),
        "journal_fsync_always_orders_per_s": round(journal_always),
        "replay_records_per_s": round(replay_rate),
        "baseline_reference_orders_per_s": round(reference),
        "ratio": round(ratio, 1),
        "deep_book_orders_per_s": round(deep_fast),
        "deep_book_baseline_reference_orders_per_s": round(deep_reference),
        "deep_book_ratio": round(deep_fast / deep_reference),
        "floor_noop_calls_per_s": round(floor),
    }
    print("RESULT " + json.dumps(result), flush=True)
    return result
