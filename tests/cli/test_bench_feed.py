"""``agora bench feed --quick`` as a user runs it: synthesizes and caches a small day, runs every
contender in its own process, and ends with a RESULT line whose books agree across contenders."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e


LOBSTER = Path(__file__).resolve().parents[3] / "shared" / "data" / "lobster"


def test_bench_feed_quick_ends_with_a_result_line(tmp_path):
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path)}  # a fresh cache: the day is made here
    lobster = ["--lobster", str(LOBSTER)] if LOBSTER.is_dir() else []
    done = subprocess.run(
        [sys.executable, "-m", "agora.cli.main", "bench", "feed", "--quick", *lobster],
        capture_output=True, text=True, timeout=300, env=env,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    last = done.stdout.strip().splitlines()[-1]
    assert last.startswith("RESULT ")
    figures = json.loads(last.removeprefix("RESULT "))
    assert figures["messages"] >= 200_000 and figures["symbols"] == 50
    for key in ("fast_msgs_per_s", "reference_msgs_per_s", "meatpy_msgs_per_s",
                "frame_walk_msgs_per_s", "fast_peak_rss_mib", "ratio_vs_reference",
                "ratio_vs_meatpy"):
        assert figures[key] > 0, key
    assert figures["books_equal_reference"] and figures["books_equal_meatpy"]
    if lobster:
        assert figures["lobster_rows_equal"] == figures["lobster_rows_compared"] > 0
        assert figures["lobster_read_book_rows_per_s"] > 0
        assert figures["lobster_itch_fast_msgs_per_s"] > 0
    assert len(list((tmp_path / "agora" / "feed").glob("itch50-200000msg-50sym-*.itch"))) == 1
