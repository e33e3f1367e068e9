"""Crash tests: SIGKILL a real exchange process mid-stream, restart it, compare.

Every acknowledged command must survive; the recovered state must equal an uninterrupted run of
the same prefix; the restarted process must finish with the state, and produce the events, of a
run that never crashed.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys

import pytest

from agora.exchange.engine import MatchingEngine
from agora.exchange.state import state_hash
from agora.exchange.store import open_exchange, recover, segment_path, segments
from agora.testing.exchange_driver import NS_PER_SEQ, session_commands

ORDERS = 6_000
pytestmark = pytest.mark.e2e


def uninterrupted(commands: list) -> tuple[MatchingEngine, list]:
    engine = MatchingEngine()
    events = [engine.process(c, (seq + 1) * NS_PER_SEQ) for seq, c in enumerate(commands)]
    return engine, events


def start_driver(directory, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "agora.testing.exchange_driver", str(directory),
         "--orders", str(ORDERS), *extra],
        stdout=subprocess.PIPE, text=True,
    )


def kill_after(proc: subprocess.Popen, acks: int) -> int:
    """Read acknowledgements until ``acks`` arrived, then SIGKILL; returns the last acked seq."""
    last = 0
    seen = 0
    for line in proc.stdout:
        if line.startswith("acked "):
            last = int(line.split()[1])
            seen += 1
            if seen >= acks:
                break
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    return last


@pytest.mark.parametrize(
    ("fsync", "snapshot_every", "seed"),
    [("none", 0, 1), ("none", 700, 2), ("batch", 1_000, 3), ("always", 0, 4)],
)
def test_sigkill_and_restart_match_an_uninterrupted_run(tmp_path, fsync, snapshot_every, seed):
    commands = session_commands(ORDERS, 1)
    total = len(commands)
    rng = random.Random(seed)
    extra = ("--fsync", fsync, "--snapshot-every", str(snapshot_every))
    acked = 0
    for _ in range(2):  # two crashes at random points, each followed by a restart
        proc = start_driver(tmp_path, *extra)
        acked = kill_after(proc, rng.randrange(200, 2_000))
        engine, info = recover(tmp_path)
        assert info.last_seq >= acked, "an acknowledged command was lost"
        reference, _ = uninterrupted(commands[: info.last_seq])
        assert state_hash(engine) == state_hash(reference)

    proc = start_driver(tmp_path, *extra)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out
    assert out.rstrip().endswith("done")
    engine, info = recover(tmp_path, use_snapshots=False)
    reference, _ = uninterrupted(commands)
    assert info.last_seq == total
    assert state_hash(engine) == state_hash(reference)


def test_torn_tail_is_reported_cut_and_nothing_before_it_lost(tmp_path):
    commands = session_commands(2_000, 5)
    with open_exchange(tmp_path) as ex:
        for c in commands:
            ex.submit(c)
    (base, path), = segments(tmp_path)
    assert path == segment_path(tmp_path, base)
    size = path.stat().st_size
    with open(path, "r+b") as f:  # a crash in the middle of writing the last record
        f.truncate(size - 7)
    engine, info = recover(tmp_path)
    assert info.last_seq == len(commands) - 1
    assert info.problems and "torn" in " ".join(info.problems).lower()
    reference, _ = uninterrupted(commands[:-1])
    assert state_hash(engine) == state_hash(reference)
    with open_exchange(tmp_path) as ex:  # the exchange carries on after the cut
        ex.submit(commands[-1])
    engine, _ = recover(tmp_path)
    assert state_hash(engine) == state_hash(uninterrupted(commands)[0])
