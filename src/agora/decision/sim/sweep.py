"""Seed sweeps over every core: a seed's run is a pure function, so seeds split across processes.

The simulator is single-threaded Python; a sweep of thousands of seeds is CPU-bound and
embarrassingly parallel. :func:`sweep` hands seeds to a pool of worker processes in small chunks
and yields their results **in seed order**, so a sweep's output (its summary, its failures) is the
same whatever the number of jobs, and ``jobs=1`` runs in this process without a pool.

Workers come from a *forkserver*: they fork from a fresh single-threaded server, never from the
caller, which may hold threads (a test runner, a progress bar) whose locks a plain fork would copy
held.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from functools import partial

from agora.core.cpus import usable_cpus
from agora.decision.bft.config import BftCanary
from agora.decision.consensus.config import Canary
from agora.decision.sim.bft_cluster import run_seed_bft
from agora.decision.sim.swarm import RunResult, run_seed

CHUNK_SEEDS = 4  # per hand-out: seeds differ up to 20x in cost, so small chunks keep cores even


def cores() -> int:
    """The cores this process may run on (its affinity, not the host's count)."""
    return len(usable_cpus()) or os.cpu_count() or 1


def run_one(seed: int, *, n: int | None = None, canary: Canary = Canary.NONE,
            bft: bool = False) -> RunResult:
    """One seed of either mode (a module-level function, so worker processes can be sent it)."""
    if bft:
        return run_seed_bft(seed, n=n, canary=BftCanary(canary.value))
    return run_seed(seed, n=n, canary=canary)


def sweep(seeds: Iterable[int], *, n: int | None = None, canary: Canary = Canary.NONE,
          bft: bool = False, jobs: int = 0) -> Iterator[RunResult]:
    """Run ``seeds`` on ``jobs`` processes (0: one per core); results in seed order."""
    seeds = list(seeds)
    jobs = min(jobs or cores(), max(1, len(seeds)))
    one = partial(run_one, n=n, canary=canary, bft=bft)
    if jobs == 1:
        yield from map(one, seeds)
        return
    pool = ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context(
        "forkserver"))
    try:
        yield from pool.map(one, seeds, chunksize=CHUNK_SEEDS)
    finally:  # a consumer that stops early (a failure, ^C) must not wait for the other seeds
        pool.shutdown(cancel_futures=True)


__all__ = ["cores", "run_one", "sweep"]
