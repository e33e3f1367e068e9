"""Differential tests: the fast engine and the reference model agree event for event.

Both implement docs/matching-rules.md; on random streams (hypothesis) and on the seeded benchmark
workload they must return identical event lists for every command and hold identical state
(resting orders in priority order, id counters) after it. Reject texts are for people and
free to differ; reason codes are the contract.
"""

from __future__ import annotations

import msgspec
from hypothesis import HealthCheck, given, settings

from agora.bench.workload import engine_workload, setup_commands
from agora.core.events import CommandRejected, OrderRejected
from agora.exchange.engine import MatchingEngine
from agora.exchange.reference import ReferenceEngine
from tests.exchange.streams import resolve, setup, streams


def assert_same_state(fast: MatchingEngine, ref: ReferenceEngine) -> None:
    assert fast.resting_orders() == ref.resting_orders()
    assert (fast.next_order_id, fast.next_trade_id) == (ref.next_order_id, ref.next_trade_id)


def without_text(events: list) -> list:
    return [
        msgspec.structs.replace(ev, text="")
        if isinstance(ev, OrderRejected | CommandRejected) else ev
        for ev in events
    ]


def run_both(commands: list, check_every: int = 1) -> int:
    fast, ref = MatchingEngine(), ReferenceEngine()
    events = 0
    for ts, command in enumerate(commands):
        command = resolve(command, fast.orders)
        got = without_text(fast.process(command, ts))
        want = without_text(ref.process(command, ts))
        assert got == want, f"command {ts}: {command}"
        events += len(got)
        if ts % check_every == 0:
            assert_same_state(fast, ref)
    assert_same_state(fast, ref)
    return events


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(streams, streams)
def test_random_streams_identical(pre_open, continuous):
    run_both(setup(open_symbols=False) + pre_open + setup()[-2:] + continuous)


def test_seeded_workload_identical():
    commands = setup_commands(symbols=3) + engine_workload(6_000, seed=7, symbols=3)
    assert run_both(commands, check_every=250) > 10_000
