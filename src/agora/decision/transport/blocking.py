"""The standalone replica process's driver: one blocking UDP socket, no event loop.

A replica process that only replicates has one socket and one timer, so it needs no event loop:
``recvfrom`` blocks with a kernel receive timeout of one tick (``SO_RCVTIMEO``: one system call
per wake-up, no ``epoll``), and the tick runs whenever a tick's time has passed, after a
datagram or a timeout. On the benchmark machine a UDP echo served this way answers in 25 us
(p50, one request per millisecond) where a uvloop ``DatagramProtocol`` takes 43-46 us; a commit
crosses two replica processes, so the driver is worth ~40 us of the client's commit latency
(BENCHMARKS.md).

Sends never block: ``MSG_DONTWAIT``, and a datagram the kernel refuses (buffer full, ICMP error)
is counted in the node's ``send_errors`` and lost, as UDP may lose it anyway. Signals: the process's
handlers run when ``recvfrom`` returns (at the latest one tick later); :meth:`BlockingNode.close`
from a handler ends :meth:`BlockingNode.serve` after the current step.
"""

from __future__ import annotations

import socket
import struct

from agora.decision.transport.framing import Address, tune
from agora.decision.transport.node import NodeCore, NodeStats

RECEIVE_MAX = 65_536


class SocketDatagrams:
    """A bound UDP socket behind the two calls :class:`NodeCore` makes to send."""

    def __init__(self, sock: socket.socket, stats: NodeStats) -> None:
        self.sock = sock
        self.stats = stats
        self.closed = False

    def sendto(self, data: bytes, addr: Address) -> None:
        try:
            self.sock.sendto(data, socket.MSG_DONTWAIT, addr)
        except OSError:  # full buffer, unreachable peer: a lost datagram, as UDP allows
            self.stats.send_errors += 1

    def is_closing(self) -> bool:
        return self.closed


class BlockingNode(NodeCore):
    """Bind with :meth:`open`, then :meth:`serve` until :meth:`close` or a replica failure."""

    datagrams: SocketDatagrams | None = None
    closing = False

    def open(self) -> None:
        """Bind this replica's address and start the replica (its first outbox goes out)."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.bind(self.peers[self.me])
            tune(sock)
            seconds, micros = divmod(max(1, self.tick_ns // 1_000), 1_000_000)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO,
                            struct.pack("ll", seconds, micros))
        except BaseException:
            sock.close()
            raise
        self.datagrams = SocketDatagrams(sock, self.stats)
        self.begin(self.datagrams)

    def serve(self) -> None:
        """Step on every datagram and every tick until closed or failed; then close."""
        if self.datagrams is None:
            raise RuntimeError("BlockingNode.open() first")
        receive = self.datagrams.sock.recvfrom
        now_ns = self.clock.now_ns
        tick_ns = self.tick_ns
        next_tick = now_ns() + tick_ns
        try:
            while not self.closing and self.failed is None:
                try:
                    data, addr = receive(RECEIVE_MAX)
                except BlockingIOError:  # the receive timeout: a quiet tick
                    pass
                except OSError:  # an ICMP error surfaced on the socket: nothing to read
                    pass
                else:
                    self.on_datagram(data, addr)
                now = now_ns()
                if now >= next_tick or now < next_tick - tick_ns:  # due, or the clock jumped
                    next_tick = now + tick_ns
                    self.on_tick()
        finally:
            self._shut()

    def close(self) -> None:
        """End :meth:`serve` after the current step (safe from a signal handler)."""
        self.closing = True

    def _shut(self) -> None:
        if self.datagrams is not None:
            self.datagrams.closed = True
            self.datagrams.sock.close()
        if self.recorder is not None:
            self.recorder.close()
