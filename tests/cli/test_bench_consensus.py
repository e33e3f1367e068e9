"""``agora bench consensus --quick`` as a user runs it: replica processes on loopback, the UDP
floor, and one RESULT line with positive figures (baselines are skipped, and say so)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from agora.bench.placement import can_pin

pytestmark = pytest.mark.e2e


def test_bench_consensus_quick_ends_with_a_result_line():
    done = subprocess.run(
        [sys.executable, "-m", "agora.cli.main", "bench", "consensus", "--quick", "--n", "3"],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    last = done.stdout.strip().splitlines()[-1]
    assert last.startswith("RESULT ")
    figures = json.loads(last.removeprefix("RESULT "))
    for key in ("udp_floor_p50_us", "udp_floor_p99_us", "n3_p50_us", "n3_p99_us", "n3_p999_us",
                "n3_sync_p50_us", "n3_sync_p99_us", "n3_sync_p999_us",
                "n3_last_replica_p50_us", "n3_msgs_per_decision", "n3_failover_ms"):
        assert figures[key] > 0, key
    assert figures["n3_answered"] == 500
    assert figures["n3_p50_us"] >= figures["udp_floor_p50_us"]  # no faster than the wire
    assert figures["n3_sync_p50_us"] >= figures["udp_floor_p50_us"]
    assert 0 <= figures["n3_miss_rate_250us"] <= 1 and 0 <= figures["n3_miss_rate_1ms"] <= 1
    assert figures["n3_decisions_per_s_at_p99_1ms"] >= 0
    assert figures["udp_idle_1ms_p50_us"] > 0
    # a commit crosses three hops; no faster than three hops with nothing to do
    assert figures["udp_3hops_1ms_p50_us"] > 0
    assert figures["n3_sync_p50_us"] >= figures["udp_3hops_1ms_p50_us"]
    if can_pin():  # the floors again with every process on one vCPU
        assert 0 < figures["udp_floor_one_vcpu_p50_us"] <= figures["n3_sync_p50_us"]
        assert 0 < figures["udp_3hops_1ms_one_vcpu_p50_us"] <= figures["n3_sync_p50_us"]
    # 500/s for 0.3 s is far below what any healthy cluster sustains: the search has a figure
    assert figures["n3_max_sustained_per_s"] >= figures["n3_decisions_per_s_at_p99_1ms"]
    assert figures["n3_max_sustained_per_s"] > 400
    assert figures["n3_max_sustained_requests_per_datagram"] >= 1
    assert figures["n3_max_sustained_msgs_per_decision"] > 0
    assert figures["fsync"] == "none"
    assert figures["pysyncobj"] == figures["etcd"] == "skipped (--quick)"
    assert "n5_p50_us" not in figures
    # the Byzantine mode ran too: slower than crash mode (three phases, n^2 messages), and its
    # failover is at least the backups' request timer (20 ms)
    assert figures["bft_n4_sync_p50_us"] > figures["udp_floor_p50_us"]
    assert figures["bft_n4_msgs_per_decision"] > figures["n3_msgs_per_decision"]
    assert figures["bft_n4_failover_ms"] >= 20
    # deadlines: a verdict waits for a certificate round, so requests with a budget take longer,
    # and a 250 us budget is below one PBFT round on loopback: (nearly) always abandoned
    assert figures["bft_n4_budget_5ms_p50_us"] > figures["bft_n4_sync_p50_us"]
    assert figures["bft_n4_miss_rate_250us"] >= 0.9
    assert 0 <= figures["bft_n4_miss_rate_5000us"] <= figures["bft_n4_miss_rate_250us"]
    # the long-session phase (2,000 entries under --quick): memory, failover and a restart
    assert figures["long_log_entries"] == 2_000
    assert figures["long_log_rss_mb_max"] > 0 and figures["long_log_failover_ms"] > 0
    assert 0 < figures["long_log_restart_ready_s"] <= figures["long_log_restart_caught_up_s"]
    assert figures["long_log_restarted_rss_mb"] > 0
    # the disk: the log file, the blocks it holds, and the whole directory around it
    assert 0 < figures["long_log_disk_mb_max"] <= figures["long_log_directory_mb_max"]
    assert figures["long_log_file_mb_max"] > 0


def test_the_byzantine_long_session_bench_restarts_a_killed_backup():
    done = subprocess.run(
        [sys.executable, "-m", "agora.bench.consensus_bft_long", "--requests", "3000",
         "--rate", "3000"], capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    figures = json.loads(done.stdout.strip().splitlines()[-1].removeprefix("RESULT "))
    assert figures["bft_long_requests"] == 3_000 and figures["bft_long_rss_mb_max"] > 0
    assert 0 < figures["bft_long_restart_ready_s"] <= figures["bft_long_restart_caught_up_s"]
    assert figures["bft_long_restarted_rss_mb"] > 0
    refused = subprocess.run([sys.executable, "-m", "agora.bench.consensus_bft_long",
                              "--requests", "0"], capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and "--requests" in refused.stderr


def test_the_colocated_proposer_bench_times_a_proposer_on_every_node():
    done = subprocess.run(
        [sys.executable, "-m", "agora.bench.consensus_colocated", "--count", "30", "--warmup",
         "10"], capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    last = done.stdout.strip().splitlines()[-1]
    figures = json.loads(last.removeprefix("RESULT "))
    assert figures["count"] == 30
    for role in ("leader", "acker", "third"):  # every node's proposer took its turn
        assert 0 < figures[f"{role}_node_p50_us"] <= figures[f"{role}_node_p99_us"], role
    # no commit is faster than a round trip between two processes with nothing to do
    assert min(figures[f"{r}_node_p50_us"] for r in ("leader", "acker", "third")) >= (
        figures["udp_2hops_1ms_p50_us"])
    assert figures["separate_proposer_p50_us"] >= figures["udp_3hops_1ms_p50_us"]


def test_the_colocated_proposer_bench_refuses_too_few_commits():
    done = subprocess.run(
        [sys.executable, "-m", "agora.bench.consensus_colocated", "--count", "3"],
        capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 2 and "--count must be >= 10" in done.stderr
