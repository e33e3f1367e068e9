"""``agora bench ...``: benchmarks that end with a ``RESULT {json}`` line (DESIGN.md)."""

from __future__ import annotations

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
    quick: bool = typer.Option(False, help="A small run for CI smoke tests."),
) -> None:
    """Venue on the wire: OUCH round trip vs the raw TCP echo floor, sustained orders/s."""
    from agora.bench.gateway import run

    if quick:
        round_trips, orders = 300, 300
    run(round_trips=round_trips, orders=orders, clients=clients)
