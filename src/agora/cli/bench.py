"""``agora bench ...``: benchmarks that end with a ``RESULT {json}`` line (DESIGN.md)."""

from __future__ import annotations

from pathlib import Path

import typer

bench_app = typer.Typer(help="Benchmarks: agora against its baselines, in one run.",
                        no_args_is_help=True)


@bench_app.command()
def engine(
    orders: int = typer.Option(1_000_000, min=1000, help="Orders in the seeded workload."),
    runs: int = typer.Option(3, min=1, help="Repetitions; medians are reported."),
    seed: int = typer.Option(1),
    quick: bool = typer.Option(False, help="A small run for CI smoke tests."),
) -> None:
    """Matching engine: per-order API, journal fsync off/on, replay, reference baseline."""
    from agora.bench.engine import run

    if quick:
        orders, runs = min(orders, 20_000), 1
    run(orders=orders, runs=runs, seed=seed)


@bench_app.command()
def gateway(
    round_trips: int = typer.Option(5_000, min=100, help="Timed OUCH round trips."),
    orders: int = typer.Option(5_000, min=100, help="Orders per client in the throughput run."),
    clients: int = typer.Option(4, min=1, max=16),
    runs: int = typer.Option(3, min=1, max=9,
                             help="Runs of each sustained phase; the median is reported."),
    quick: bool = typer.Option(False, help="A small run for CI smoke tests."),
) -> None:
    """Venue on the wire: OUCH round trip vs the raw TCP echo floor, sustained orders/s."""
    from agora.bench.gateway import run

    if quick:
        round_trips, orders, runs = 300, 300, 1
    run(round_trips=round_trips, orders=orders, clients=clients, runs=runs)


@bench_app.command()
def feed(
    messages: int = typer.Option(20_000_000, min=10_000, help="Messages in the synthetic day."),
    symbols: int = typer.Option(3_000, min=1, help="Symbols in the synthetic day."),
    seed: int = typer.Option(1),
    runs: int = typer.Option(3, min=1, help="Fast-path repetitions; the median is reported."),
    prefix: int = typer.Option(2_000_000, min=1_000,
                               help="Messages the slow baselines (reference, meatpy) run on."),
    file: Path | None = typer.Option(None, "--file", exists=True, dir_okay=False,
                                     help="An ITCH 5.0 BinaryFILE day (plain or gzip) to use "
                                          "instead of the synthetic one."),
    lobster: Path | None = typer.Option(None, "--lobster", exists=True, file_okay=False,
                                        help="A folder with a LOBSTER message/orderbook pair "
                                             "to measure too."),
    quick: bool = typer.Option(False, help="A small run for CI smoke tests."),
) -> None:
    """Feed: numba ITCH decode + L3 books vs the reference handler, meatpy and the read floor."""
    from agora.bench.feed import run

    if quick:
        messages, symbols, runs, prefix = 200_000, 50, 1, min(prefix, 100_000)
    run(messages=messages, symbols=symbols, seed=seed, runs=runs, prefix=prefix, file=file,
        lobster=lobster, lobster_repeats=10 if quick else 100)


@bench_app.command()
def consensus(
    n: str = typer.Option("3,5,7", "--n", help="Cluster sizes, comma separated (odd)."),
    requests: int = typer.Option(5_000, min=100, help="Requests in the latency phase per n."),
    fsync: str = typer.Option("none", help="Replica log fsync policy: none, batch or always."),
    quick: bool = typer.Option(False, help="A small run for CI smoke tests (no baselines)."),
    bft: bool = typer.Option(True, help="Also measure the Byzantine mode (PBFT, n = 4)."),
    long_log: int = typer.Option(
        400_000, min=0, help="Entries of the long-session phase (n = 3: replica memory, "
        "failover and restart after them; 0 skips it)."),
) -> None:
    """Replicated decision log on real processes vs the UDP floor, PySyncObj and etcd."""
    from agora.bench.consensus import run

    sizes = [int(x) for x in n.split(",") if x.strip()]
    if quick:
        requests, long_log = min(requests, 500), min(long_log, 2_000)
    run(sizes=sizes, requests=requests, fsync=fsync, quick=quick, bft=bft, long_log=long_log)
