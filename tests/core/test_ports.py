"""``core.ports``: free loopback ports below the ephemeral range, distinct, really free."""

from __future__ import annotations

import socket

import pytest

from agora.core import ports
from agora.core.recent import Recent


def test_ports_are_distinct_free_and_never_ephemeral():
    found = ports.unused_ports(20)
    assert len(set(found)) == 20
    start = ports._ephemeral_start()
    assert all(ports.LOWEST <= p < start for p in found)
    for p in found[:3]:
        for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
            with socket.socket(socket.AF_INET, kind) as s:
                s.bind(("127.0.0.1", p))


class Drawn:
    """Stands in for ``random.SystemRandom``: draws the given ports in order."""

    def __init__(self, sequence: list[int]) -> None:
        self.sequence = iter(sequence)

    def randrange(self, lo: int, hi: int) -> int:
        return next(self.sequence)


def test_a_port_in_use_is_skipped(monkeypatch):
    monkeypatch.setattr(ports, "_handed_out", Recent(ports.REMEMBERED))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as busy:
        busy.bind(("127.0.0.1", 0))
        taken = busy.getsockname()[1]
        monkeypatch.setattr(ports, "_ephemeral_start", lambda: max(taken + 1, 30_000))
        monkeypatch.setattr(ports.random, "SystemRandom",
                            lambda: Drawn([taken, taken, 20_001, 20_002]))
        got = ports.unused_ports(1)
        assert got != [taken] and got[0] in (20_001, 20_002)


def test_a_port_handed_out_is_not_handed_out_again_before_its_server_binds_it(monkeypatch):
    """A test picks its venue's ports, then its replicas', and starts them all later."""
    monkeypatch.setattr(ports, "_handed_out", Recent(ports.REMEMBERED))
    monkeypatch.setattr(ports, "_ephemeral_start", lambda: 30_000)
    draws = [[20_001], [20_001, 20_003]]
    monkeypatch.setattr(ports.random, "SystemRandom", lambda: Drawn(draws.pop(0)))
    assert ports.unused_ports(1) == [20_001]  # free, and not bound by anyone yet
    assert ports.unused_ports(1) == [20_003]


def test_no_room_is_an_error(monkeypatch):
    monkeypatch.setattr(ports, "_ephemeral_start", lambda: ports.LOWEST + 3)
    with pytest.raises(RuntimeError, match="no room below the ephemeral range"):
        ports.unused_ports(1)
