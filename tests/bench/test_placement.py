"""Benchmark floors pinned to vCPUs: a pinned block leaves every process where it could run."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from agora.bench.placement import can_pin, pinned, usable_cpus


@pytest.mark.skipif(not can_pin(), reason="needs sched_setaffinity and two CPUs")
def test_a_pinned_block_runs_there_and_then_restores_each_process():
    first = usable_cpus()[0]
    before = os.sched_getaffinity(0)
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        child_before = os.sched_getaffinity(child.pid)
        with pinned((0, child.pid), {first}):
            assert os.sched_getaffinity(0) == {first} == os.sched_getaffinity(child.pid)
        assert os.sched_getaffinity(0) == before
        assert os.sched_getaffinity(child.pid) == child_before
        with pinned((0,), None):  # no placement: nothing moves
            assert os.sched_getaffinity(0) == before
    finally:
        child.kill()
        child.wait()


@pytest.mark.skipif(not can_pin(), reason="needs sched_setaffinity and two CPUs")
def test_a_process_that_exits_inside_the_block_does_not_fail_its_end():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.5)"])
    with pinned((child.pid,), {usable_cpus()[0]}):
        child.wait()  # gone (and reaped) before the block restores it
