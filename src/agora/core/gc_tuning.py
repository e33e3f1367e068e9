"""The garbage collector's settings for agora's long-running processes (replicas, the venue).

CPython collects its youngest generation every 700 new container objects and, every so often,
scans every tracked object. A process that keeps a growing state (a venue's book and order
maps, a replica's tables) then pays a full scan that grows with that state, and a pause at each:
in the venue, with 80,000 resting orders, 20.6-28.5 us of CPU per order instead of 17.3-17.8
with the settings below, and growing over the run (``python -m agora.bench.venue_cpu``'s
harness, ad hoc Enter-only variant, 2026-12-07). These processes make few reference cycles
(refcounting frees nearly everything), so collecting rarely costs little memory.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

GEN0_THRESHOLD = 50_000  # new container objects between young collections (CPython: 700)


def collect_rarely() -> None:
    """Young collections ~70x rarer (each one longer), full ones rarer still: the process's
    own setting, for good."""
    gc.set_threshold(GEN0_THRESHOLD, 20, 100)


def tune_gc() -> None:
    """Collect rarely, and take what exists now (startup: imports, a replayed state) out of the
    collector's view for good (``gc.freeze``)."""
    gc.freeze()
    collect_rarely()


@contextlib.contextmanager
def collecting_rarely() -> Iterator[None]:
    """``collect_rarely`` for a block, then the thresholds from before and nothing frozen: for a
    harness that measures, inside another process, a process that runs with these settings."""
    before = gc.get_threshold()
    collect_rarely()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
