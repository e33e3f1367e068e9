"""``agora sim`` in-process: replay one seed, sweep seeds, canary exit status, bad arguments."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from agora.cli.main import app

runner = CliRunner()


def test_replay_one_seed_prints_its_trace_and_succeeds():
    first = runner.invoke(app, ["sim", "--seed", "3"])
    assert first.exit_code == 0, first.output
    assert "trace " in first.output and "ok" in first.output
    again = runner.invoke(app, ["sim", "--seed", "3"])
    trace = [line for line in first.output.splitlines() if line.startswith("trace ")]
    assert trace and trace == [line for line in again.output.splitlines()
                               if line.startswith("trace ")]


def test_sweep_prints_a_summary_and_a_result_line():
    result = runner.invoke(app, ["sim", "--seeds", "6", "--n", "5", "--start", "40"])
    assert result.exit_code == 0, result.output
    figures = json.loads(result.output.strip().splitlines()[-1].removeprefix("RESULT "))
    assert figures["seeds"] == 6 and figures["failures"] == 0
    assert figures["commits"] > 0
    assert 0 < figures["commit_latency_ms_p50"] <= figures["commit_latency_ms_p99"]
    assert 0.0 <= figures["deadline_miss_rate"] <= 1.0


def test_a_canary_sweep_fails_and_names_the_replay_command():
    result = runner.invoke(app, ["sim", "--seeds", "12", "--canary", "small-quorum"])
    assert result.exit_code == 1
    assert "replay: agora sim --seed 9 --canary small-quorum" in result.output


def test_bad_arguments_are_refused():
    assert runner.invoke(app, ["sim"]).exit_code == 2
    assert runner.invoke(app, ["sim", "--seed", "1", "--seeds", "3"]).exit_code == 2
    assert runner.invoke(app, ["sim", "--seed", "1", "--n", "4"]).exit_code == 2
