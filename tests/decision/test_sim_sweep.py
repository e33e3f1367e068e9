"""Sweeps over worker processes give the same results, in the same order, as one process."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from agora.cli.main import app
from agora.decision.bft import BftCanary
from agora.decision.consensus import Canary
from agora.decision.sim import run_seed
from agora.decision.sim.bft_cluster import run_seed_bft
from agora.decision.sim.sweep import cores, sweep

runner = CliRunner()


def test_parallel_cft_sweep_is_the_serial_one_in_seed_order():
    seeds = range(40, 52)
    parallel = list(sweep(seeds, n=3, jobs=2))
    assert [r.seed for r in parallel] == list(seeds)
    assert parallel == [run_seed(seed, n=3) for seed in seeds]  # trace hashes, latencies, all


def test_parallel_bft_sweep_with_a_canary_is_the_serial_one():
    seeds = range(0, 5)
    parallel = list(sweep(seeds, n=4, bft=True, canary=Canary.SMALL_QUORUM, jobs=2))
    assert parallel == [run_seed_bft(seed, n=4, canary=BftCanary.SMALL_QUORUM) for seed in seeds]


def test_one_job_runs_here_and_an_empty_sweep_is_empty():
    assert [r.seed for r in sweep([7, 3], n=3, jobs=1)] == [7, 3]
    assert list(sweep([], jobs=4)) == []
    assert cores() >= 1


def test_a_sweep_stopped_early_does_not_run_the_rest():
    results = sweep(range(0, 100_000), n=3, jobs=2)  # hours of seeds, were they all run
    assert next(results).seed == 0
    results.close()  # returns once the seeds already handed out finish


def test_cli_summary_does_not_depend_on_jobs():
    def summary(jobs: str) -> dict:
        out = runner.invoke(app, ["sim", "--seeds", "6", "--start", "300", "--jobs", jobs])
        assert out.exit_code == 0, out.output
        return json.loads(out.output.rsplit("RESULT ", 1)[1])

    assert summary("1") == summary("2")
    bad = runner.invoke(app, ["sim", "--seeds", "2", "--jobs", "-1"])
    assert bad.exit_code == 2 and "--jobs" in bad.output
