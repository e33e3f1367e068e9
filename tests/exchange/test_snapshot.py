"""Snapshot files: round trip, damage detection and atomic replacement."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agora.core.errors import SnapshotError
from agora.exchange.snapshot import (
    HEADER_SIZE,
    latest_snapshot,
    read_snapshot,
    snapshot_path,
    write_snapshot,
)


@given(st.integers(0, 2**64 - 1), st.binary(max_size=2_000))
@settings(max_examples=100, deadline=None)
def test_round_trip(seq: int, state: bytes) -> None:
    with tempfile.TemporaryDirectory() as d:
        path = write_snapshot(snapshot_path(d, seq), seq, state)
        assert read_snapshot(path) == (seq, state)
        assert path.stat().st_size == HEADER_SIZE + len(state)


def test_write_fsyncs_file_and_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (calls.append(fd), real(fd)))
    write_snapshot(tmp_path / "s.snap", 1, b"state")
    assert len(calls) == 2
    assert [p.name for p in tmp_path.iterdir()] == ["s.snap"]  # no temporary left behind


def test_replace_overwrites(tmp_path: Path) -> None:
    path = tmp_path / "s.snap"
    write_snapshot(path, 1, b"old")
    write_snapshot(path, 2, b"new state")
    assert read_snapshot(path) == (2, b"new state")


def test_truncated_at_every_length(tmp_path: Path) -> None:
    path = write_snapshot(tmp_path / "s.snap", 7, b"0123456789" * 5)
    full = path.read_bytes()
    for cut in range(len(full)):
        path.write_bytes(full[:cut])
        with pytest.raises(SnapshotError, match="truncated"):
            read_snapshot(path)


def test_trailing_bytes(tmp_path: Path) -> None:
    path = write_snapshot(tmp_path / "s.snap", 7, b"state")
    path.write_bytes(path.read_bytes() + b"x")
    with pytest.raises(SnapshotError, match="1 unexpected bytes"):
        read_snapshot(path)


def test_crc_mismatch_on_any_flipped_bit_past_the_magic(tmp_path: Path) -> None:
    path = write_snapshot(tmp_path / "s.snap", 7, b"some engine state")
    full = path.read_bytes()
    for bit in range(8 * 8, len(full) * 8):
        data = bytearray(full)
        data[bit // 8] ^= 1 << (bit % 8)
        path.write_bytes(bytes(data))
        with pytest.raises(SnapshotError, match=r"checksum|truncated|unexpected|version"):
            read_snapshot(path)


def test_crc_mismatch_in_state(tmp_path: Path) -> None:
    path = write_snapshot(tmp_path / "s.snap", 7, b"some engine state")
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(SnapshotError, match="checksum mismatch"):
        read_snapshot(path)


def test_bad_magic(tmp_path: Path) -> None:
    path = write_snapshot(tmp_path / "s.snap", 7, b"state")
    path.write_bytes(b"AGORAJNL" + path.read_bytes()[8:])
    with pytest.raises(SnapshotError, match="bad magic"):
        read_snapshot(path)


@pytest.mark.parametrize("fail", ["replace", "fsync"])
def test_failed_write_leaves_the_old_file_intact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fail: str
) -> None:
    path = write_snapshot(tmp_path / "s.snap", 1, b"old state")
    before = path.read_bytes()

    def boom(*args: object) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, fail, boom)
    with pytest.raises(OSError, match="Input/output"):
        write_snapshot(path, 2, b"new state")
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert read_snapshot(path) == (1, b"old state")
    assert [p.name for p in tmp_path.iterdir()] == ["s.snap"]


def test_latest_snapshot(tmp_path: Path) -> None:
    assert latest_snapshot(tmp_path) is None
    assert latest_snapshot(tmp_path / "missing") is None
    for seq in (5, 120, 17):
        write_snapshot(snapshot_path(tmp_path, seq), seq, b"s")
    (tmp_path / "snapshot-99999999999999999999.snap.tmp").write_bytes(b"")
    (tmp_path / ".snapshot-00000000000000000999.snap.abc.tmp").write_bytes(b"")
    (tmp_path / "snapshot-999.snap").write_bytes(b"")
    (tmp_path / "notes.txt").write_bytes(b"")
    latest = latest_snapshot(tmp_path)
    assert latest == tmp_path / "snapshot-00000000000000000120.snap"
    assert read_snapshot(latest)[0] == 120
