"""The ``agora`` command, run as a real process the way a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from agora.bench.placement import can_pin
from agora.protocols.fix44 import speedups

pytestmark = pytest.mark.e2e


def agora(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "agora.cli.main", *args],
        capture_output=True, text=True, timeout=300, cwd=cwd,
    )


def test_session_replays_to_the_identical_state(tmp_path):
    directory = tmp_path / "session"
    result = agora("exchange", "session", "--orders", "4000", "--snapshot-every", "1500",
                   "--dir", str(directory))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("state identical") == 2
    assert "STATE DIFFERS" not in result.stdout
    again = agora("exchange", "replay", str(directory))
    assert again.returncode == 0, again.stderr
    assert "snapshot at seq 3000" in again.stdout


def test_session_refuses_a_directory_that_is_not_a_session(tmp_path):
    (tmp_path / "precious.txt").write_text("keep me")
    result = agora("exchange", "session", "--orders", "1000", "--dir", str(tmp_path))
    assert result.returncode != 0
    assert (tmp_path / "precious.txt").read_text() == "keep me"


def test_bench_engine_quick_ends_with_a_result_line():
    result = agora("bench", "engine", "--quick", "--orders", "5000")
    assert result.returncode == 0, result.stderr
    last = result.stdout.strip().splitlines()[-1]
    assert last.startswith("RESULT ")
    figures = json.loads(last.removeprefix("RESULT "))
    assert figures["orders"] == 5000
    assert figures["orders_per_s"] > 0 and figures["baseline_reference_orders_per_s"] > 0
    assert figures["p50_us"] <= figures["p99_us"] <= figures["p999_us"]


def test_bench_gateway_quick_measures_against_the_echo_floor():
    result = agora("bench", "gateway", "--quick", "--clients", "2")
    assert result.returncode == 0, result.stdout + result.stderr
    figures = json.loads(result.stdout.strip().splitlines()[-1].removeprefix("RESULT "))
    assert 0 < figures["echo_p50_us"] <= figures["ouch_rtt_p50_us"]
    assert figures["ouch_rtt_p50_us"] <= figures["ouch_rtt_decoded_p50_us"]  # sample by sample
    # the OUCH round trip and the floor in both placements where processes can be pinned; the
    # floor is the fastest placement's echo, the OUCH figure the venue's fastest
    placed = figures["placements"]
    assert set(placed) == ({"one_vcpu", "two_vcpus"} if can_pin() else {"unpinned"})
    assert figures["echo_p50_us"] == min(f["echo_p50_us"] for f in placed.values())
    assert figures["ouch_rtt_p50_us"] == min(f["ouch_p50_us"] for f in placed.values())
    assert len(figures["ouch_orders_per_s_runs"]) == 1  # --quick: one sustained run
    assert figures["ouch_orders_per_s"] > 0 and figures["fix_orders_per_s"] > 0
    assert figures["fix_rtt_p50_us"] <= figures["fix_rtt_p99_us"]
    assert figures["itch_messages"] >= 2 * 300  # at least every order's Add Order message
    assert figures["fix_codec"] == speedups.implementation()  # which FIX hot paths ran
    # grouping many messages per read costs less CPU per message than one per read
    assert 0 < figures["venue_cpu_us_per_message_batch64"] < (
        figures["venue_cpu_us_per_message_batch1"])
    assert figures["venue_cpu_us_per_fix_order_batch64"] > 0
