"""Sequencer, snapshots and recovery: restart is replay, and replay is exact."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agora.bench.workload import engine_workload, setup_commands
from agora.core.clock import SimClock
from agora.core.enums import Side
from agora.core.errors import JournalCorruptError, MalformedCommand
from agora.core.events import BookAdd, NewOrder, OrderAccepted
from agora.exchange.engine import MatchingEngine
from agora.exchange.journal import read_journal
from agora.exchange.sequencer import Sequencer
from agora.exchange.snapshot import list_snapshots
from agora.exchange.state import encode_state, restore, state_hash
from agora.exchange.store import open_exchange, recover, segments

COMMANDS = setup_commands(3) + engine_workload(3_000, seed=11, symbols=3)


def run(commands: list) -> MatchingEngine:
    engine = MatchingEngine()
    for ts, command in enumerate(commands):
        engine.process(command, ts)
    return engine


@pytest.mark.parametrize(
    "bad",
    [
        NewOrder("P01", "x1", "AAPL", Side.BUY, 100, 1_000_000.0),  # float money
        NewOrder("P01", "x2", "AAPL", "X", 100, 1_000_000),  # no such side
        NewOrder("P01", "x3", "AAPL", Side.BUY, True, 1_000_000),  # bool is not a quantity
        NewOrder("P01", "x4", "AAPL", Side.BUY, 100, 2**70),  # does not fit the wire
        OrderAccepted(0, "AAPL", 1, "P01", "c", Side.BUY, 1, 1, "LIMIT", "DAY", None, False, 0),
        "NewOrder",
    ],
)
def test_malformed_commands_are_refused_before_the_journal(tmp_path, bad):
    with open_exchange(tmp_path, clock=SimClock(step_ns=1)) as ex:
        for command in COMMANDS[:200]:
            ex.submit(command)
        before, seq = state_hash(ex.engine), ex.last_seq
        with pytest.raises(MalformedCommand):
            ex.submit(bad)
        assert (state_hash(ex.engine), ex.last_seq) == (before, seq)
        ex.submit(COMMANDS[200])  # and the exchange carries on
    (_, path), = segments(tmp_path)
    assert [r.seq for r in read_journal(path)] == list(range(1, 202))


def test_sequencer_stamps_and_numbers_inputs():
    clock = SimClock(1_000, step_ns=10)
    sequencer = Sequencer(MatchingEngine(), clock)
    for command in setup_commands(1)[:2]:
        sequencer.submit(command)
    events = sequencer.submit(NewOrder("P01", "a", "AAPL", Side.BUY, 100, 990_000))
    assert sequencer.last_seq == 3
    assert {ev.ts for ev in events} == {1_020}
    assert isinstance(events[-1], BookAdd)


def test_restart_continues_sequence_and_order_ids(tmp_path):
    with open_exchange(tmp_path) as ex:
        for command in COMMANDS[:1_000]:
            ex.submit(command)
        ids = ex.engine.next_order_id
    with open_exchange(tmp_path) as ex:
        assert ex.last_seq == 1_000
        assert ex.engine.next_order_id == ids
        events = ex.submit(NewOrder("P01", "fresh", "AAPL", Side.BUY, 100, 990_000))
        assert events[0].order_id == ids


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(1, len(COMMANDS) - 1), min_size=1, max_size=4, unique=True))
def test_snapshot_plus_tail_equals_full_replay(tmp_path_factory, snapshot_points):
    directory = tmp_path_factory.mktemp("ex")
    with open_exchange(directory) as ex:
        for i, command in enumerate(COMMANDS, 1):
            ex.submit(command)
            if i in snapshot_points:
                ex.snapshot()
        live = state_hash(ex.engine)
    assert len(list_snapshots(directory)) == len(snapshot_points)
    full, info_full = recover(directory, use_snapshots=False)
    fast, info = recover(directory)
    assert info_full.replayed == len(COMMANDS)
    assert info.snapshot_seq == max(snapshot_points)
    assert info.replayed == len(COMMANDS) - max(snapshot_points)
    assert state_hash(full) == state_hash(fast) == live == state_hash(run(COMMANDS))


def test_restored_engine_behaves_identically():
    cut = 1_700
    original = run(COMMANDS[:cut])
    copy = restore(encode_state(original))
    assert encode_state(copy) == encode_state(original)
    for ts, command in enumerate(COMMANDS[cut:], cut):
        assert copy.process(command, ts) == original.process(command, ts)
    assert copy.resting_orders() == original.resting_orders()


def test_unreadable_snapshot_falls_back_to_an_older_one(tmp_path):
    with open_exchange(tmp_path) as ex:
        for i, command in enumerate(COMMANDS, 1):
            ex.submit(command)
            if i in (1_000, 2_000):
                ex.snapshot()
    newest = list_snapshots(tmp_path)[-1][1]
    data = bytearray(newest.read_bytes())
    data[-5] ^= 0xFF
    newest.write_bytes(bytes(data))
    engine, info = recover(tmp_path)
    assert info.snapshot_seq == 1_000
    assert any(newest.name in problem for problem in info.problems)
    assert state_hash(engine) == state_hash(run(COMMANDS))


def test_mid_journal_corruption_refuses_to_start(tmp_path):
    with open_exchange(tmp_path) as ex:
        for command in COMMANDS[:500]:
            ex.submit(command)
    (_, path), = segments(tmp_path)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(JournalCorruptError):
        open_exchange(tmp_path)
    assert path.read_bytes() == bytes(data), "recovery must not cut a corrupt journal"


def test_state_hash_depends_on_state_only():
    rng = random.Random(3)
    a, b = run(COMMANDS[:800]), MatchingEngine()
    for command in COMMANDS[:800]:
        b.process(command, rng.randrange(10**12))  # other timestamps, same state
    assert state_hash(a) == state_hash(b)
    a.process(COMMANDS[800], 0)
    assert state_hash(a) != state_hash(b)
