"""The gateway benchmark's sustained rate: over the clients' shared window, never per client."""

from __future__ import annotations

import pytest

from agora.bench.gateway import _flood


def _staggered(job, start_line):
    """Client F0 runs from 1.0 to 2.0 s, F1 from 1.5 to 3.0 s (a client's own times)."""
    _, name, orders, _, _ = job
    start_line.wait(timeout=60)
    return (orders, 1.0, 2.0) if name == "F0" else (orders, 1.5, 3.0)


def _one_fails(job, start_line):
    _, name, orders, _, _ = job
    if name == "F1":
        raise ValueError("login refused")
    start_line.wait(timeout=60)  # broken by F1: this client does not wait for good
    return orders, 0.0, 1.0


def test_the_rate_is_every_order_over_the_shared_window():
    # the old figure, all orders over the longest client's own time: 20 / 1.5 = 13.3
    assert _flood(_staggered, 0, clients=2, orders=10) == pytest.approx(20 / 2.0)


def test_a_failing_client_ends_the_run_with_its_error_instead_of_a_hang():
    with pytest.raises(RuntimeError, match=r"F1: ValueError\('login refused'\)") as caught:
        _flood(_one_fails, 0, clients=2, orders=10)
    assert "F0: BrokenBarrierError" in str(caught.value)
