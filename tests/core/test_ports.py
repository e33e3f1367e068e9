"""``core.ports``: free loopback ports below the ephemeral range, distinct, really free."""

from __future__ import annotations

import socket

import pytest

from agora.core import ports


def test_ports_are_distinct_free_and_never_ephemeral():
    found = ports.unused_ports(20)
    assert len(set(found)) == 20
    start = ports._ephemeral_start()
    assert all(ports.LOWEST <= p < start for p in found)
    for p in found[:3]:
        for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
            with socket.socket(socket.AF_INET, kind) as s:
                s.bind(("127.0.0.1", p))


def test_a_port_in_use_is_skipped(monkeypatch):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as busy:
        busy.bind(("127.0.0.1", 0))
        taken = busy.getsockname()[1]
        sequence = iter([taken, taken, 20_001, 20_002])
        monkeypatch.setattr(ports, "_ephemeral_start", lambda: max(taken + 1, 30_000))

        class Fixed:
            def randrange(self, lo, hi):
                return next(sequence)

        monkeypatch.setattr(ports.random, "SystemRandom", Fixed)
        got = ports.unused_ports(1)
        assert got != [taken] and got[0] in (20_001, 20_002)


def test_no_room_is_an_error(monkeypatch):
    monkeypatch.setattr(ports, "_ephemeral_start", lambda: ports.LOWEST + 3)
    with pytest.raises(RuntimeError, match="no room below the ephemeral range"):
        ports.unused_ports(1)
