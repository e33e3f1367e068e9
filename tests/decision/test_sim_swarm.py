"""Swarm runs: thousands of seeds across n = 3 and 5 (on every core), determinism, and canaries
that must fail."""

from __future__ import annotations

import pytest

from agora.decision.consensus import Canary
from agora.decision.sim import options_swarm, run, run_seed
from agora.decision.sim.sweep import sweep

CHECKER_FAILURES = ("agreement", "order", "validity", "integrity", "deadline", "reply",
                    "liveness")


@pytest.mark.parametrize(("n", "seeds"), [(3, range(0, 2000)), (5, range(1000, 2000))])
def test_swarm_seeds_are_safe_and_live(n, seeds):
    failed = {}
    commits = view_changes = crashes = recoveries = queue_full = 0
    for result in sweep(seeds, n=n):  # on every core, results in seed order
        commits += result.commits
        queue_full += result.queue_full_replies
        view_changes += result.view_changes
        crashes += result.crashes
        recoveries += result.recoveries
        if not result.ok:
            failed[result.seed] = result.failures[:3]
    assert failed == {}, f"replay with: agora sim --seed SEED --n {n}: {failed}"
    # the swarm did exercise what it claims to
    assert commits > 50 * len(seeds)
    assert view_changes > len(seeds) // 2 and crashes > len(seeds) // 2 and recoveries > 0
    assert queue_full > 0  # some leaders' queues filled, and their clients still committed


def test_same_seed_same_run_byte_for_byte():
    first, again = run_seed(17), run_seed(17)
    assert first.trace_hash == again.trace_hash
    assert first == again
    assert run_seed(18).trace_hash != first.trace_hash


def test_options_are_drawn_from_the_seed():
    assert options_swarm(5) == options_swarm(5)
    drawn = {options_swarm(seed).partition_mode for seed in range(40)}
    assert drawn == {"none", "random", "leader", "flapping"}
    assert {options_swarm(seed).cluster.fsync for seed in range(40)} == {"none", "batch", "always"}
    assert options_swarm(5, n=7).cluster.n == 7


@pytest.mark.parametrize(("canary", "seeds"), [
    (Canary.SMALL_QUORUM, range(0, 12)),
    (Canary.TRUST_LOSSY_STORAGE, range(0, 100)),
])
def test_canary_is_caught_by_the_checker(canary, seeds):
    caught = []
    for seed in seeds:
        result = run(options_swarm(seed, canary=canary))
        checker_failures = [f for f in result.failures if f.startswith(CHECKER_FAILURES)]
        if checker_failures:
            caught.append(seed)
    assert caught, f"the {canary.value} canary went unnoticed on seeds {list(seeds)}"
