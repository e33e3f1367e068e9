"""Pinning benchmark processes to CPUs, for floors measured in a known placement.

On a virtual machine a round trip between two processes costs very different times depending on
where they run: on one vCPU each wake-up is a context switch, across two the halted vCPU must be
woken first (this 2-vCPU KVM guest: a TCP echo ~16-22 us on one vCPU, ~70-90 us across two).
Left to the scheduler, a run gets either, so a floor measured unpinned can be the slow one, which
flatters every ratio to it. The benchmarks pin with ``os.sched_setaffinity`` (Linux); where it
is missing, or one CPU is all there is, they measure unpinned and say so.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator

from agora.core.cpus import usable_cpus


def can_pin() -> bool:
    """Whether two placements exist: one CPU for every process, or two."""
    return hasattr(os, "sched_setaffinity") and len(usable_cpus()) >= 2


def one_vcpu() -> set[int] | None:
    """The CPU every process of a one-vCPU placement runs on (None: no placement possible)."""
    return {usable_cpus()[0]} if can_pin() else None


def placements() -> dict[str, tuple[set[int], set[int]] | None]:
    """Placement name -> (the client's CPUs, the servers' CPUs); None: left to the scheduler."""
    one = one_vcpu()
    if one is None:
        return {"unpinned": None}
    second = {usable_cpus()[1]}
    return {"one_vcpu": (one, one), "two_vcpus": (one, second)}


def pin(pids: Iterable[int], cpus: set[int]) -> None:
    """Run each of ``pids`` (0: this process) on ``cpus`` only."""
    for pid in pids:
        os.sched_setaffinity(pid, cpus)


@contextlib.contextmanager
def pinned(pids: Iterable[int], cpus: set[int] | None) -> Iterator[None]:
    """``pids`` on ``cpus`` for the block (None: left alone), then back where they could run."""
    if cpus is None:
        yield
        return
    pids = list(pids)
    before = {pid: os.sched_getaffinity(pid) for pid in pids}
    pin(pids, cpus)
    try:
        yield
    finally:
        for pid, allowed in before.items():
            with contextlib.suppress(ProcessLookupError):  # a server that has already exited
                os.sched_setaffinity(pid, allowed)
