"""``agora sim``: the deterministic consensus simulator from the command line.

``agora sim --seed N`` replays one seed (same options, same trace hash, every time);
``agora sim --seeds 1000 [--n 3|5|7]`` sweeps seeds ``start .. start + seeds - 1`` with a progress
bar and a summary, on every core (``--jobs``; results in seed order, so the summary does not
depend on it). Exit status 1 if any seed fails; each failure is printed with the command that
replays it. ``--canary`` runs a deliberately broken protocol, which must fail. ``--mode bft``
runs the Byzantine mode (``n = 3f + 1``: 4, 7...; up to f Byzantine replicas drawn from the
seed, canary ``small-quorum`` only) and prints the same summary.
"""

from __future__ import annotations

import json
import statistics

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from agora.decision.bft.config import BftCanary
from agora.decision.consensus.config import Canary
from agora.decision.sim.bft_cluster import options_swarm_bft
from agora.decision.sim.swarm import RunResult, SimOptions, options_swarm
from agora.decision.sim.sweep import run_one, sweep

console = Console(soft_wrap=True)
err = Console(stderr=True)


def _replay_command(result: RunResult, n: int | None, canary: Canary, bft: bool = False) -> str:
    command = f"agora sim --seed {result.seed}" + (" --mode bft" if bft else "")
    if n is not None:
        command += f" --n {n}"
    if canary is not Canary.NONE:
        command += f" --canary {canary.value}"
    return command


def _ms(ns: float) -> str:
    return f"{ns / 1e6:.3f}"


def _options(seed: int, n: int | None, canary: Canary, bft: bool) -> tuple[SimOptions, str]:
    """The seed's options and a note on its Byzantine replicas (BFT mode)."""
    if not bft:
        return options_swarm(seed, n=n, canary=canary), ""
    options = options_swarm_bft(seed, n=n, canary=BftCanary(canary.value))
    return options.base, f" byzantine={dict(options.byzantine)} auth={options.replica.auth}"


def _one(seed: int, n: int | None, canary: Canary, bft: bool = False) -> RunResult:
    options, note = _options(seed, n, canary, bft)
    result = run_one(seed, n=n, canary=canary, bft=bft)
    cluster = options.cluster
    console.print(f"seed {seed}: n={result.n} clients={cluster.clients} "
                  f"requests={result.requests} fsync={cluster.fsync.value} "
                  f"drop={cluster.network.drop} dup={cluster.network.duplicate} "
                  f"partitions={options.partition_mode} crash_prob={options.crash_prob} "
                  f"canary={canary.value}{note}", highlight=False)
    console.print(f"commits {result.commits}, view changes {result.view_changes}, "
                  f"crashes {result.crashes}, recoveries {result.recoveries}, "
                  f"lost records {result.lost_records}, compactions {result.compactions}, "
                  f"events {result.events}, "
                  f"simulated {_ms(result.sim_ns)} ms")
    console.print(f"commit latency ms: mean {_ms(result.latency_ns_mean)} "
                  f"p50 {_ms(result.latency_ns_p50)} p99 {_ms(result.latency_ns_p99)}; "
                  f"deadline miss rate {result.miss_rate:.3f} "
                  f"({result.deadline_abandoned}/{result.deadline_requests})")
    console.print(f"trace {result.trace_hash}")
    for failure in result.failures:
        console.print(f"[red]FAIL[/red] {failure}", markup=True, highlight=False)
    console.print("[green]ok[/green]" if result.ok else f"[red]seed {seed} FAILED[/red]")
    return result


def _many(start: int, seeds: int, n: int | None, canary: Canary,
          bft: bool = False, jobs: int = 0) -> list[RunResult]:
    results: list[RunResult] = []
    with Progress(TextColumn("[bold]sim"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.fields[failed]} failed"), TimeRemainingColumn(),
                  console=err, transient=True) as bar:
        task = bar.add_task("sim", total=seeds, failed=0)
        failed = 0
        for result in sweep(range(start, start + seeds), n=n, canary=canary, bft=bft,
                            jobs=jobs):
            results.append(result)
            failed += not result.ok
            bar.update(task, advance=1, failed=failed)
    return results


def _summary(results: list[RunResult], n: int | None, canary: Canary,
             bft: bool = False) -> dict[str, object]:
    latencies = sorted(x for r in results for x in r.latencies_ns)
    deadline = sum(r.deadline_requests for r in results)
    abandoned = sum(r.deadline_abandoned for r in results)
    failures = [r for r in results if not r.ok]

    def pct(q: float) -> int:
        return latencies[min(len(latencies) - 1, int(len(latencies) * q))] if latencies else 0

    figures: dict[str, object] = {
        "seeds": len(results), "failures": len(failures),
        "failed_seeds": [r.seed for r in failures],
        "commits": sum(r.commits for r in results),
        "view_changes": sum(r.view_changes for r in results),
        "crashes": sum(r.crashes for r in results),
        "compactions": sum(r.compactions for r in results),
        "queue_full_replies": sum(r.queue_full_replies for r in results),
        "commit_latency_ms_mean": round(statistics.fmean(latencies) / 1e6, 4) if latencies else 0,
        "commit_latency_ms_p50": round(pct(0.5) / 1e6, 4),
        "commit_latency_ms_p99": round(pct(0.99) / 1e6, 4),
        "deadline_miss_rate": round(abandoned / deadline, 4) if deadline else 0.0,
    }
    table = Table(title="agora sim")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for key, value in figures.items():
        if key != "failed_seeds":
            table.add_row(key, str(value))
    console.print(table)
    for result in failures[:20]:
        console.print(f"[red]seed {result.seed}[/red] (n={result.n}): {result.failures[0]}",
                      highlight=False)
        console.print(f"  replay: {_replay_command(result, n, canary, bft)}")
    return figures


def sim(
    seed: int | None = typer.Option(None, "--seed", help="Replay this one seed."),
    seeds: int = typer.Option(0, "--seeds", min=0, help="Run this many seeds."),
    start: int = typer.Option(0, "--start", min=0, help="First seed of --seeds."),
    n: int | None = typer.Option(None, "--n", help="Replicas (3, 5, 7...; default: seed's)."),
    canary: Canary = typer.Option(Canary.NONE, "--canary", help="Break the protocol on purpose."),
    mode: str = typer.Option("cft", "--mode", help="cft (VR, n = 2f + 1) or bft (PBFT, 3f + 1)."),
    jobs: int = typer.Option(0, "--jobs", "-j", min=0,
                             help="Processes for --seeds (0: one per core; 1: this process)."),
) -> None:
    """Deterministic simulation of the consensus layer: seeded faults, heal, liveness."""
    if mode not in ("cft", "bft"):
        raise typer.BadParameter("mode is cft or bft", param_hint="--mode")
    bft = mode == "bft"
    if bft:
        if n is not None and (n < 4 or (n - 1) % 3):
            raise typer.BadParameter("n must be 3f + 1 (4, 7, ...)", param_hint="--n")
        if canary.value not in {c.value for c in BftCanary}:
            raise typer.BadParameter(f"no canary {canary.value} in bft mode", param_hint="--canary")
    elif n is not None and (n < 1 or n % 2 == 0):
        raise typer.BadParameter("n must be odd", param_hint="--n")
    if (seed is None) == (seeds == 0):
        raise typer.BadParameter("give exactly one of --seed N or --seeds COUNT")
    if seed is not None:
        result = _one(seed, n, canary, bft)
        raise typer.Exit(0 if result.ok else 1)
    figures = _summary(_many(start, seeds, n, canary, bft, jobs), n, canary, bft)
    console.print("RESULT " + json.dumps(figures), highlight=False, soft_wrap=True)
    raise typer.Exit(1 if figures["failures"] else 0)
