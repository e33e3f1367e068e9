"""The journal: round trips, the seq/chain invariants, fsync policies and crash recovery."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agora.core.enums import OrderType, Side, StpMode, TimeInForce, TradingState
from agora.core.errors import JournalCorruptError
from agora.core.events import (
    AddSymbol,
    CancelOrder,
    KillSwitch,
    NewOrder,
    ParticipantSpec,
    ReplaceOrder,
    SetParticipant,
    SetTradingState,
    SymbolSpec,
)
from agora.exchange import journal
from agora.exchange.journal import (
    FILE_HEADER_SIZE,
    RECORD_HEADER_SIZE,
    FsyncPolicy,
    JournalWriter,
    read_journal,
    read_journal_raw,
    recover_journal,
    replay,
)

_ENCODE = msgspec.msgpack.Encoder().encode


def make_commands(n: int) -> list:
    """A deterministic mix of every command type."""
    out: list = []
    for i in range(n):
        k = i % 7
        if k == 0:
            out.append(NewOrder(f"P{i % 3}", f"c{i}", "AAPL", Side.BUY, 100 + i, 1_500_000 + i))
        elif k == 1:
            out.append(CancelOrder(f"P{i % 3}", i, leaves_qty=i % 5, client_order_id=f"x{i}"))
        elif k == 2:
            out.append(ReplaceOrder("P1", i, f"r{i}", 1_490_000, 50, display_qty=i % 2 or None))
        elif k == 3:
            out.append(AddSymbol(SymbolSpec(f"S{i}", 100_000), TradingState.OPEN))
        elif k == 4:
            out.append(SetParticipant(ParticipantSpec(f"P{i}", stp=StpMode.CANCEL_BOTH)))
        elif k == 5:
            out.append(SetTradingState("AAPL", TradingState.HALTED))
        else:
            out.append(
                NewOrder("P2", f"m{i}", "MSFT", Side.SELL, 7, 0, OrderType.MARKET, TimeInForce.IOC)
            )
    return out


def write(path: Path, commands: list, *, base_seq: int = 0, **kw) -> None:
    with JournalWriter(path, base_seq=base_seq, **kw) as w:
        for i, cmd in enumerate(commands, base_seq + 1):
            w.append_command(i, 1_000 * i, cmd)


def record_offsets(path: Path) -> list[int]:
    """Offset of every record (from the file, trusting the lengths), plus the end offset."""
    data = path.read_bytes()
    offsets, off = [], FILE_HEADER_SIZE
    while off < len(data):
        offsets.append(off)
        off += RECORD_HEADER_SIZE + int.from_bytes(data[off : off + 4], "little")
    return [*offsets, off]


def flip(path: Path, bit: int) -> None:
    data = bytearray(path.read_bytes())
    data[bit // 8] ^= 1 << (bit % 8)
    path.write_bytes(bytes(data))


@pytest.fixture
def jpath(tmp_path: Path) -> Path:
    return tmp_path / "exchange.jnl"


# ---------------------------------------------------------------- round trips


def test_round_trip_many_commands(jpath: Path) -> None:
    commands = make_commands(2_000)
    write(jpath, commands)
    records = list(read_journal(jpath))
    assert [r.seq for r in records] == list(range(1, 2_001))
    assert [r.ts for r in records] == [1_000 * s for s in range(1, 2_001)]
    assert [r.command for r in records] == commands
    raw = list(read_journal_raw(jpath))
    assert [r.payload for r in raw] == [_ENCODE(c) for c in commands]
    replayed: list = []
    report = replay(jpath, lambda seq, ts, cmd: replayed.append((seq, ts, cmd)))
    assert replayed == [tuple(r) for r in records]
    assert report == recover_journal(jpath)
    assert (report.records, report.first_seq, report.last_seq) == (2_000, 1, 2_000)
    assert report.valid_bytes == jpath.stat().st_size and report.truncated_bytes == 0
    assert report.problem is None


_text = st.text(max_size=12)
_int64 = st.integers(-(2**63), 2**63 - 1)
_commands = st.one_of(
    st.builds(NewOrder, _text, _text, _text, st.sampled_from(Side), st.integers(0, 2**40)),
    st.builds(CancelOrder, _text, st.integers(0, 2**63), st.integers(0, 2**31), _text),
    st.builds(KillSwitch, _text, st.booleans()),
)


@given(st.lists(st.tuples(_commands, _int64), max_size=40), st.integers(0, 2**40))
@settings(max_examples=60, deadline=None)
def test_round_trip_property(items: list, base_seq: int) -> None:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "j.jnl"
        with JournalWriter(path, base_seq=base_seq) as w:
            for seq, (cmd, ts) in enumerate(items, base_seq + 1):
                w.append_command(seq, ts, cmd)
        got = [(r.command, r.ts) for r in read_journal(path)]
        assert got == items
        assert recover_journal(path).last_seq == base_seq + len(items)


def test_empty_journal(jpath: Path) -> None:
    JournalWriter(jpath).close()
    assert jpath.stat().st_size == FILE_HEADER_SIZE
    report = recover_journal(jpath)
    assert (report.records, report.first_seq, report.last_seq, report.problem) == (0, None, 0, None)
    assert list(read_journal(jpath)) == []


def test_reopen_appends_and_continues(jpath: Path) -> None:
    commands = make_commands(30)
    write(jpath, commands[:10])
    with JournalWriter(jpath) as w:
        assert w.last_seq == 10 and w.recovery.problem is None
        for seq in range(11, 31):
            w.append_command(seq, seq, commands[seq - 1])
        assert w.last_seq == 30
    assert [r.command for r in read_journal(jpath)] == commands
    assert recover_journal(jpath).problem is None


def test_an_empty_existing_file_becomes_a_journal(jpath: Path) -> None:
    jpath.touch()
    write(jpath, make_commands(3))
    assert len(list(read_journal(jpath))) == 3


# ---------------------------------------------------------------- sequence rules


def test_seq_gap_and_repeat_raise(jpath: Path) -> None:
    with JournalWriter(jpath) as w:
        with pytest.raises(ValueError, match="expected 1"):
            w.append(2, 0, b"\x90")
        w.append_command(1, 0, make_commands(1)[0])
        for bad in (1, 3, 0):
            with pytest.raises(ValueError, match="expected 2"):
                w.append_command(bad, 0, make_commands(1)[0])
        w.append_command(2, 0, make_commands(1)[0])  # still usable after a refusal
        assert w.last_seq == 2
    assert [r.seq for r in read_journal(jpath)] == [1, 2]


def test_base_sequence(jpath: Path) -> None:
    commands = make_commands(5)
    write(jpath, commands, base_seq=1_000)
    report = recover_journal(jpath)
    assert (report.base_seq, report.first_seq, report.last_seq) == (1_000, 1_001, 1_005)
    assert [r.seq for r in read_journal(jpath)] == [1_001, 1_002, 1_003, 1_004, 1_005]
    with JournalWriter(jpath, base_seq=1_000) as w:
        assert w.last_seq == 1_005
    with pytest.raises(ValueError, match="base seq 1000"):
        JournalWriter(jpath, base_seq=0)
    seen: list[int] = []
    replay(jpath, lambda seq, ts, cmd: seen.append(seq), after_seq=1_003)
    assert seen == [1_004, 1_005]
    with pytest.raises(ValueError, match="starts after seq 1000, not 999"):
        replay(jpath, lambda *a: None, after_seq=999)


def test_empty_journal_with_base_continues_from_base(jpath: Path) -> None:
    JournalWriter(jpath, base_seq=41).close()
    with JournalWriter(jpath) as w:
        assert w.last_seq == 41
        w.append_command(42, 0, make_commands(1)[0])


def test_closed_writer_refuses(jpath: Path) -> None:
    w = JournalWriter(jpath)
    w.append_command(1, 0, make_commands(1)[0])
    w.close()
    w.close()  # idempotent
    assert w.closed and w.last_seq == 1
    with pytest.raises(ValueError, match="closed"):
        w.append_command(2, 0, make_commands(1)[0])


def test_oversized_payload_and_bad_ts_refused(jpath: Path) -> None:
    with JournalWriter(jpath) as w:
        with pytest.raises(ValueError, match="MAX_PAYLOAD"):
            w.append(1, 0, bytes(journal.MAX_PAYLOAD + 1))
        with pytest.raises(ValueError, match="ts"):
            w.append(1, 2**63, b"\x90")
        w.append(1, 0, bytes(journal.MAX_PAYLOAD))
    assert recover_journal(jpath).records == 1


def test_second_writer_is_refused(jpath: Path) -> None:
    with JournalWriter(jpath), pytest.raises(RuntimeError, match="another journal writer"):
        JournalWriter(jpath)


def test_payload_that_is_not_a_command(jpath: Path) -> None:
    with JournalWriter(jpath) as w:
        w.append(1, 0, _ENCODE([1, 2]))
    assert next(read_journal_raw(jpath)).payload == _ENCODE([1, 2])
    with pytest.raises(JournalCorruptError, match="seq 1 is not a Command"):
        list(read_journal(jpath))


# ---------------------------------------------------------------- fsync policies


@pytest.fixture
def fsyncs(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    real = os.fsync

    def counting(fd: int) -> None:
        calls.append(fd)
        real(fd)

    monkeypatch.setattr(os, "fsync", counting)
    return calls


def test_fsync_none_buffers_until_flush(jpath: Path, fsyncs: list[int]) -> None:
    with JournalWriter(jpath, fsync=FsyncPolicy.NONE) as w:
        fsyncs.clear()
        for seq in range(1, 101):
            w.append_command(seq, seq, make_commands(1)[0])
        assert jpath.stat().st_size == FILE_HEADER_SIZE  # still in the writer's buffer
        w.flush()
        assert recover_journal(jpath, truncate=False).records == 100
        w.append_command(101, 0, make_commands(1)[0])
    assert fsyncs == []
    assert recover_journal(jpath).records == 101


def test_fsync_none_drains_a_full_buffer(jpath: Path) -> None:
    with JournalWriter(jpath, buffer_size=1_000) as w:
        for seq in range(1, 101):
            w.append_command(seq, seq, make_commands(1)[0])
        size = jpath.stat().st_size
        assert size > FILE_HEADER_SIZE
        assert recover_journal(jpath, truncate=False).valid_bytes == size


def test_fsync_always_syncs_every_append(jpath: Path, fsyncs: list[int]) -> None:
    with JournalWriter(jpath, fsync=FsyncPolicy.ALWAYS) as w:
        fsyncs.clear()
        for seq in range(1, 11):
            w.append_command(seq, seq, make_commands(1)[0])
            assert fsyncs == [w._file.fileno()] * seq
            assert recover_journal(jpath, truncate=False).records == seq  # flushed too
    assert len(fsyncs) == 11  # close syncs once more


def test_fsync_batch(jpath: Path, fsyncs: list[int]) -> None:
    with JournalWriter(jpath, fsync=FsyncPolicy.BATCH, batch_size=4) as w:
        fsyncs.clear()
        for seq in range(1, 11):
            w.append_command(seq, seq, make_commands(1)[0])
        assert len(fsyncs) == 2
        assert recover_journal(jpath, truncate=False).records == 8
        w.sync()
        assert len(fsyncs) == 3
        assert recover_journal(jpath, truncate=False).records == 10
        w.append_command(11, 0, make_commands(1)[0])
    assert len(fsyncs) == 4


def test_write_failure_stops_the_writer(jpath: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    w = JournalWriter(jpath)
    w.append_command(1, 0, make_commands(1)[0])

    class Full:
        def __init__(self, f) -> None:
            self.f = f

        def write(self, data: object) -> int:
            raise OSError(28, "No space left on device")

        def __getattr__(self, name: str):
            return getattr(self.f, name)

    monkeypatch.setattr(w, "_file", Full(w._file))
    with pytest.raises(OSError, match="No space"):
        w.flush()
    with pytest.raises(RuntimeError, match="earlier write failed"):
        w.append_command(2, 0, make_commands(1)[0])
    w.close()
    with JournalWriter(jpath) as again:
        assert again.last_seq == 0


# ---------------------------------------------------------------- recovery


def test_torn_tail_at_every_offset_of_the_last_record(jpath: Path, tmp_path: Path) -> None:
    commands = make_commands(6)
    write(jpath, commands)
    full = jpath.read_bytes()
    *_, last_start, end = record_offsets(jpath)
    torn = tmp_path / "torn.jnl"
    for cut in range(last_start + 1, end):
        torn.write_bytes(full[:cut])
        report = recover_journal(torn)
        assert report.records == 5 and report.last_seq == 5
        assert report.valid_bytes == last_start
        assert report.truncated_bytes == cut - last_start
        assert report.problem is not None and "incomplete" in report.problem
        assert torn.read_bytes() == full[:last_start]
        assert [r.command for r in read_journal(torn)] == commands[:5]
        with JournalWriter(torn) as w:  # the chain continues after the cut
            w.append_command(6, 6_000, commands[5])
        assert torn.read_bytes() == full


def test_any_prefix_keeps_exactly_the_complete_records(jpath: Path, tmp_path: Path) -> None:
    """A crash can cut the file anywhere: what survives is every record wholly before the cut."""
    write(jpath, make_commands(6))
    full = jpath.read_bytes()
    offsets = record_offsets(jpath)
    torn = tmp_path / "torn.jnl"
    for cut in range(FILE_HEADER_SIZE, len(full) + 1):
        torn.write_bytes(full[:cut])
        whole = max(i for i, off in enumerate(offsets) if off <= cut)
        report = recover_journal(torn)
        assert (report.records, report.valid_bytes) == (whole, offsets[whole])
        assert (report.problem is None) == (cut == offsets[whole])


def test_writer_opening_a_torn_journal_reports_and_cuts(jpath: Path) -> None:
    write(jpath, make_commands(3))
    with open(jpath, "ab") as f:
        f.write(b"\x10\x00\x00")
    with JournalWriter(jpath) as w:
        assert w.last_seq == 3
        assert w.recovery.truncated_bytes == 3 and "incomplete header" in w.recovery.problem


def test_readers_stop_at_a_torn_tail_without_cutting(jpath: Path) -> None:
    write(jpath, make_commands(4))
    size = jpath.stat().st_size
    with open(jpath, "ab") as f:
        f.write(bytes(30))
    assert len(list(read_journal(jpath))) == 4
    report = replay(jpath, lambda *a: None)
    assert report.records == 4 and report.truncated_bytes == 30 and report.problem
    report = recover_journal(jpath, truncate=False)
    assert report.truncated_bytes == 30 and jpath.stat().st_size == size + 30
    recover_journal(jpath)
    assert jpath.stat().st_size == size


def test_flipped_bit_in_the_last_record_is_a_torn_tail(jpath: Path, tmp_path: Path) -> None:
    write(jpath, make_commands(5))
    full = jpath.read_bytes()
    *_, last_start, end = record_offsets(jpath)
    damaged = tmp_path / "d.jnl"
    for bit in range(last_start * 8, end * 8):
        damaged.write_bytes(full)
        flip(damaged, bit)
        report = recover_journal(damaged)
        assert report.records == 4, bit
        assert report.problem is not None
        assert damaged.read_bytes() == full[:last_start]


@pytest.mark.parametrize("victim", [1, 3, 4])  # 4: only one record follows it
def test_flipped_bit_in_a_middle_record_is_corruption(
    jpath: Path, tmp_path: Path, victim: int
) -> None:
    write(jpath, make_commands(6))
    full = jpath.read_bytes()
    offsets = record_offsets(jpath)
    start, stop = offsets[victim], offsets[victim + 1]
    damaged = tmp_path / "d.jnl"
    for bit in range(start * 8, stop * 8):
        damaged.write_bytes(full)
        flip(damaged, bit)
        corrupt = damaged.read_bytes()
        with pytest.raises(JournalCorruptError, match="mid-journal") as info:
            recover_journal(damaged)
        assert info.value.offset == start and info.value.seq == victim + 1
        assert damaged.read_bytes() == corrupt  # never truncated
    with pytest.raises(JournalCorruptError):
        list(read_journal(damaged))
    with pytest.raises(JournalCorruptError):
        replay(damaged, lambda *a: None)
    with pytest.raises(JournalCorruptError):
        JournalWriter(damaged)
    assert damaged.read_bytes() == corrupt


def test_swapped_records_are_corruption(jpath: Path) -> None:
    write(jpath, make_commands(6))
    data = jpath.read_bytes()
    o = record_offsets(jpath)
    swapped = data[: o[1]] + data[o[2] : o[3]] + data[o[1] : o[2]] + data[o[3] :]
    jpath.write_bytes(swapped)
    with pytest.raises(JournalCorruptError, match=r"\(seq 2\): seq 3"):
        recover_journal(jpath)


@pytest.mark.parametrize("dropped", [1, 3])
def test_dropped_record_is_corruption(jpath: Path, dropped: int) -> None:
    write(jpath, make_commands(6))
    data = jpath.read_bytes()
    o = record_offsets(jpath)
    jpath.write_bytes(data[: o[dropped]] + data[o[dropped + 1] :])
    with pytest.raises(JournalCorruptError, match="offset"):
        recover_journal(jpath)


@given(st.binary(min_size=1, max_size=300))
@settings(max_examples=150, deadline=None)
def test_garbage_after_valid_records_is_truncated(garbage: bytes) -> None:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "j.jnl"
        commands = make_commands(5)
        write(path, commands)
        good = path.read_bytes()
        path.write_bytes(good + garbage)
        report = recover_journal(path)
        assert report.records == 5 and report.truncated_bytes == len(garbage)
        assert path.read_bytes() == good
        assert [r.command for r in read_journal(path)] == commands


def test_zero_filled_tail_is_truncated(jpath: Path) -> None:
    write(jpath, make_commands(5))
    good = jpath.read_bytes()
    jpath.write_bytes(good + bytes(4_096))
    assert recover_journal(jpath).truncated_bytes == 4_096
    assert jpath.read_bytes() == good


def test_oversized_length_is_damage_at_that_record(jpath: Path) -> None:
    write(jpath, make_commands(3))
    end = record_offsets(jpath)[-1]
    with open(jpath, "ab") as f:
        f.write((journal.MAX_PAYLOAD + 1).to_bytes(4, "little") + bytes(40))
    report = recover_journal(jpath)
    assert report.records == 3 and "exceeds" in report.problem
    assert jpath.stat().st_size == end


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: b"NOTAJRNL" + d[8:], "bad magic"),
        (lambda d: d[:8] + b"\x09\x00" + d[10:], "version 9"),
        (lambda d: d[:12] + b"\x01" + d[13:], "header checksum"),
        (lambda d: d[:10], "too short"),
        (lambda d: b"", "too short"),
    ],
)
def test_bad_file_header(jpath: Path, mutate, message: str) -> None:
    write(jpath, make_commands(2))
    jpath.write_bytes(mutate(jpath.read_bytes()))
    before = jpath.read_bytes()
    with pytest.raises(JournalCorruptError, match=message):
        recover_journal(jpath)
    with pytest.raises(JournalCorruptError, match=message):
        list(read_journal(jpath))
    if before:  # an empty file is a new journal to the writer
        with pytest.raises(JournalCorruptError, match=message):
            JournalWriter(jpath)
    assert jpath.read_bytes() == before


def test_records_spliced_under_another_header_do_not_validate(jpath: Path, tmp_path: Path) -> None:
    write(jpath, make_commands(3), base_seq=0)
    other = tmp_path / "other.jnl"
    JournalWriter(other, base_seq=7).close()
    header = other.read_bytes()
    other.write_bytes(header + jpath.read_bytes()[FILE_HEADER_SIZE:])
    report = recover_journal(other, truncate=False)
    assert report.records == 0 and report.problem is not None
