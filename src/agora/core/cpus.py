"""Which CPUs this process may run on: benchmarks pin to them, simulator sweeps size to them."""

from __future__ import annotations

import os


def usable_cpus() -> list[int]:
    """The CPUs this process may run on (its affinity; empty where that cannot be asked)."""
    return sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []


__all__ = ["usable_cpus"]
