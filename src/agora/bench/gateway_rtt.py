"""The OUCH round trip of ``agora bench gateway`` beside its floor, in both process placements.

Where the processes run moves a loopback round trip ~4x on a VM (``placement``): on one vCPU each
wake-up is a context switch (a raw TCP echo ~16-22 us at p50 on this host), across two the
sleeping vCPU must be woken first (~70-90 us). So the floor and the venue are both measured with
the processes pinned to one vCPU and to two, alternating in blocks so that they share the host's
minutes. The floor is the fastest echo (one vCPU): the slower one would flatter every ratio to
it. Where processes cannot be pinned, one unpinned placement is measured.
"""

from __future__ import annotations

import socket
import statistics
import time
from typing import NamedTuple

from agora.bench.echo_floor import EchoServer
from agora.bench.placement import pinned, placements
from agora.bench.venue_setup import PRICE, cancel_packet, enter_packet
from agora.protocols import ouch50 as ouch
from agora.protocols import soupbintcp as soup

RTT_BLOCKS = 5  # each placement's OUCH round trips and echo floor alternate in this many blocks


class OuchSession:
    """A minimal blocking OUCH client: login, send, wait for a given outbound message type."""

    def __init__(self, port: int, username: str) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.framer = soup.SoupFramer()
        self.pending: list = []
        self.received_ns = 0  # when the last read returned (perf_counter_ns)
        self.sock.sendall(soup.encode(soup.LoginRequest(username, "pw", "", 0)))
        if not isinstance(self._next_packet(), soup.LoginAccepted):
            raise RuntimeError(f"login refused for {username}")
        self.ref = 0

    def _next_packet(self):
        while not self.pending:
            data = self.sock.recv(65536)
            self.received_ns = time.perf_counter_ns()
            if not data:
                raise ConnectionError("venue closed the connection")
            self.pending.extend(self.framer.feed(data))
        return self.pending.pop(0)

    def next_message(self):
        while True:
            packet = self._next_packet()
            if isinstance(packet, soup.SequencedData | soup.UnsequencedData):
                return ouch.decode_outbound(packet.message)

    def enter(self, side: ouch.Side, price: int) -> bytes:
        self.ref += 1
        return enter_packet(self.ref, side, price)

    def wait_for(self, kind: type) -> None:
        while not isinstance(self.next_message(), kind):
            pass


def ouch_round_trips(session: OuchSession, count: int, warmup: int
                     ) -> tuple[list[int], list[int]]:
    """Enter Order -> Order Accepted, one at a time, each order cancelled afterwards (untimed):
    (until the read that brought the Accepted returned, as the echo floor's client times its
    reads; until the client had also framed, decoded and checked it), in ns."""
    clock = time.perf_counter_ns
    received, decoded = [], []
    for i in range(warmup + count):
        data = session.enter(ouch.Side.BUY, PRICE - 100 * (1 + i % 20))
        t0 = clock()
        session.sock.sendall(data)
        session.wait_for(ouch.OrderAccepted)
        done = clock()
        if i >= warmup:
            received.append(session.received_ns - t0)
            decoded.append(done - t0)
        session.sock.sendall(cancel_packet(session.ref))
        session.wait_for(ouch.OrderCanceled)
    return received, decoded


class RoundTrips(NamedTuple):
    """One placement's samples, in ns."""

    echo: list[int]
    received: list[int]  # OUCH, to the read that brought the Accepted
    decoded: list[int]  # OUCH, to the client's check of it
    ratios: list[float]  # each block's OUCH p50 over its echo p50


def round_trips_beside_the_floor(port: int, count: int, venue_pid: int
                                 ) -> dict[str, RoundTrips]:
    """``count`` OUCH round trips and as many echo round trips per placement, alternating in
    blocks (see the module notes); every process runs where it could again afterwards."""
    per_block = max(1, count // RTT_BLOCKS)
    chosen = placements()
    out = {name: RoundTrips([], [], [], []) for name in chosen}
    with EchoServer() as floor:
        session = OuchSession(port, "rtt")
        servers = (floor.server.pid, venue_pid)
        try:
            for block in range(RTT_BLOCKS):
                for name, cpus in chosen.items():
                    mine, theirs = cpus if cpus is not None else (None, None)
                    with pinned((0,), mine), pinned(servers, theirs):
                        warmup = 500 if block == 0 else 50  # later blocks re-warm after a switch
                        echo = floor.round_trips(per_block, warmup)
                        received, decoded = ouch_round_trips(session, per_block, warmup)
                    samples = out[name]
                    samples.echo.extend(echo)
                    samples.received.extend(received)
                    samples.decoded.extend(decoded)
                    samples.ratios.append(statistics.median(received) / statistics.median(echo))
        finally:
            session.sock.close()
    return out
