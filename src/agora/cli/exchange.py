"""``agora exchange ...``: run a journalled exchange session, recover and inspect one."""

from __future__ import annotations

import shutil
import time
from collections import Counter
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from agora.bench.workload import engine_workload, setup_commands
from agora.core.clock import WallClock
from agora.core.events import Execution, OrderAccepted, OrderRejected
from agora.core.price import format_price
from agora.exchange.engine import MatchingEngine
from agora.exchange.journal import FsyncPolicy
from agora.exchange.snapshot import list_snapshots
from agora.exchange.state import state_hash
from agora.exchange.store import Recovery, open_exchange, recover, segments

exchange_app = typer.Typer(help="The exchange: matching engine, sequencer, journal.",
                           no_args_is_help=True)
console = Console()


def _prepare_dir(directory: Path) -> None:
    """Use ``directory`` for a new session, clearing a previous agora session found there."""
    if directory.exists():
        ours = {p for _, p in segments(directory)} | {p for _, p in list_snapshots(directory)}
        others = [p.name for p in directory.iterdir() if p not in ours]
        if others:
            raise typer.BadParameter(
                f"{directory} holds files that are not an agora session: {others[:3]}",
                param_hint="--dir",
            )
        shutil.rmtree(directory)
        console.print(f"[dim]replacing the previous session in {directory}[/dim]")


def book_table(engine: MatchingEngine, title: str) -> Table:
    table = Table(title=title)
    for name in ("symbol", "state", "reference", "bid", "ask", "resting orders"):
        table.add_column(name, justify="right" if name != "symbol" else "left")
    resting = Counter(o.symbol for o in engine.orders.values())
    for symbol, sym in engine.symbols.items():
        quotes = []
        for side in (sym.bids, sym.asks):
            price = side.best_price()
            if price is None:
                quotes.append("-")
                continue
            shown = sum(o.visible for o in side.levels[price].in_priority())
            quotes.append(f"{shown} @ {format_price(price)}")
        table.add_row(symbol, sym.state.value, format_price(sym.reference_price), *quotes,
                      str(resting[symbol]))
    return table


def _recovery_lines(info: Recovery) -> list[str]:
    lines = [f"snapshot at seq {info.snapshot_seq}, replayed {info.replayed:,} records, "
             f"last seq {info.last_seq:,}"]
    lines += [f"[yellow]{problem}[/yellow]" for problem in info.problems]
    return lines


@exchange_app.command()
def session(
    orders: int = typer.Option(200_000, min=1, help="Orders in the seeded stream."),
    seed: int = typer.Option(1, help="Seed of the order stream."),
    symbols: int = typer.Option(8, min=1, max=8, help="Symbols traded."),
    directory: Path = typer.Option(Path("agora-session"), "--dir", help="Journal directory."),
    fsync: FsyncPolicy = typer.Option(FsyncPolicy.NONE, help="Journal fsync policy."),
    snapshot_every: int = typer.Option(100_000, min=1, help="Orders between snapshots."),
    commit_every: int = typer.Option(100, min=1, help="Orders per group commit."),
) -> None:
    """Match a seeded order stream through sequencer and journal, then prove replay equal."""
    _prepare_dir(directory)
    with console.status("generating the order stream"):
        commands = setup_commands(symbols) + engine_workload(orders, seed=seed, symbols=symbols)
    outcomes: Counter[str] = Counter()
    volume = 0
    started = time.perf_counter()
    with open_exchange(directory, fsync=fsync, clock=WallClock()) as ex, console.status(
        "matching"
    ) as status:
        for i, command in enumerate(commands, 1):
            for ev in ex.submit(command):
                if type(ev) is Execution:
                    outcomes["executions"] += 1
                    volume += ev.qty
                elif type(ev) is OrderAccepted:
                    outcomes["accepted"] += 1
                elif type(ev) is OrderRejected:
                    outcomes[f"rejected {ev.reason.name}"] += 1
            if i % commit_every == 0:
                ex.commit()
            if i % snapshot_every == 0:
                ex.snapshot()
                status.update(f"matching: {i:,}/{len(commands):,} (snapshot at seq {ex.last_seq})")
        live_seconds = time.perf_counter() - started
        live_hash = state_hash(ex.engine)
        engine = ex.engine
        last_seq = ex.last_seq
    console.print(book_table(engine, f"Books after {len(commands):,} commands"))
    table = Table(title="Session")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row("commands sequenced and journalled", f"{last_seq:,}")
    for name, count in sorted(outcomes.items()):
        table.add_row(name, f"{count:,}")
    table.add_row("shares traded", f"{volume:,}")
    table.add_row("live rate (journal fsync " + fsync.value + ")",
                  f"{len(commands) / live_seconds:,.0f} commands/s")
    ok = True
    for label, use_snapshots in (("full replay", False), ("snapshot + tail", True)):
        started = time.perf_counter()
        replayed, info = recover(directory, use_snapshots=use_snapshots)
        seconds = time.perf_counter() - started
        same = state_hash(replayed) == live_hash
        ok &= same
        table.add_row(f"{label}: {info.replayed:,} records",
                      f"{info.replayed / seconds:,.0f} records/s, "
                      + ("[green]state identical[/green]" if same else "[red]STATE DIFFERS[/red]"))
    table.add_row("state hash", live_hash)
    console.print(table)
    console.print(f"journal and snapshots in {directory}/")
    if not ok:
        raise typer.Exit(1)


@exchange_app.command()
def serve(
    config_path: Path | None = typer.Option(
        None, "--config", help="Venue configuration (TOML); default: the built-in example."
    ),
    use_uvloop: bool = typer.Option(True, "--uvloop/--no-uvloop", help="Run on uvloop."),
) -> None:
    """Run the venue: OUCH and FIX gateways, ITCH/MoldUDP64 feed, journal, engine."""
    import asyncio

    from agora.exchange.venue.config import ConfigError, load_config
    from agora.exchange.venue.server import run_venue

    if config_path is None:  # the packaged example (a plain file in a normal install)
        from importlib.resources import files

        config_path = Path(str(files("agora.exchange.venue") / "example.toml"))
    try:
        config = load_config(config_path)
    except ConfigError as e:
        console.print(f"[red]{e}[/red]")
        raise typer.Exit(2) from None

    def say(line: str) -> None:
        print(line, flush=True)

    if use_uvloop:
        import uvloop

        uvloop.run(run_venue(config, say=say, tune_gc=True))
    else:
        asyncio.run(run_venue(config, say=say, tune_gc=True))


@exchange_app.command("replay")
def replay_command(
    directory: Path = typer.Argument(..., exists=True, file_okay=False, help="Journal directory."),
    no_snapshots: bool = typer.Option(False, help="Replay every segment, ignoring snapshots."),
) -> None:
    """Recover an exchange directory (a torn tail is reported and cut) and print its state."""
    started = time.perf_counter()
    engine, info = recover(directory, use_snapshots=not no_snapshots)
    seconds = time.perf_counter() - started
    for line in _recovery_lines(info):
        console.print(line)
    console.print(f"recovered in {seconds:.3f} s")
    console.print(book_table(engine, f"Books at seq {info.last_seq:,}"))
    console.print(f"state hash {state_hash(engine)}")
