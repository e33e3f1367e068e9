"""The standalone replica process's driver: one UDP socket and ``poll``, no event loop.

A replica process that only replicates has one socket and one timer, so it needs no event loop:
``poll`` waits for the socket until the next tick is due (millisecond resolution on a
high-resolution timer), ``recvfrom`` reads, and the tick runs whenever its time has passed. On
the benchmark machine a UDP echo served this way answers in 29 us (p50, one request per
millisecond; a plain blocking ``recvfrom`` 25 us) where a uvloop ``DatagramProtocol`` takes
43-46 us; a commit crosses two replica processes. (A receive timeout, ``SO_RCVTIMEO``, would
save the ``poll`` but counts in scheduler ticks: with HZ = 250 a 1 ms timeout wakes every 4-8
ms, and heartbeats that late look like a dead leader.)

Overload: the replica steps on the datagram that woke it at once; if that step took
:data:`DRAIN_AFTER_NS` or more (a loaded replica: a quick step costs no extra system call), it
reads whatever queued meanwhile (up to :data:`DRAIN_MAX`) and steps on the other replicas'
datagrams first, clients' after, so a queue of client batches does not hold back the Prepares,
acknowledgements and heartbeats the cluster's progress and its view-change timers depend on.
The leader reads a client's datagram only while its request queue has room (past
``pending_max`` it would drop the requests anyway: now it does not decode them); a backup, where
a client's request is only a retry it must drop, stops reading clients' datagrams when
:data:`SHED_AT` or more of them queued at once. Both count in ``client_datagrams_shed``; clients
retry a shed request like a lost one (unread, it gets no queue-full ``Reply``: an overloaded
leader spends nothing on it; a request the leader reads and cannot queue is answered).

Sends never block: ``MSG_DONTWAIT``, and a datagram the kernel refuses (buffer full, ICMP error)
is counted in the node's ``send_errors`` and lost, as UDP may lose it anyway. Signals: the
process's handlers run when ``poll`` returns (at the latest one tick later);
:meth:`BlockingNode.close` from a handler ends :meth:`BlockingNode.serve` after the current step.
"""

from __future__ import annotations

import select
import socket

from agora.decision.transport.framing import Address, tune
from agora.decision.transport.node import NodeCore, NodeStats

RECEIVE_MAX = 65_536
DRAIN_MAX = 256  # datagrams read at once after a long step, to order peers' before clients'
DRAIN_AFTER_NS = 100_000  # a step this long means a loaded replica: drain and prioritise
SHED_AT = 8  # client datagrams queued at a backup beyond which it drops them unread


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
    next_tick_ns = 0
    peer_addresses: frozenset[Address] = frozenset()

    def open(self) -> None:
        """Bind this replica's address and start the replica (its first outbox goes out)."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.bind(self.peers[self.me])
            sock.setblocking(False)
            tune(sock)
        except BaseException:
            sock.close()
            raise
        self.datagrams = SocketDatagrams(sock, self.stats)
        self.peer_addresses = frozenset(self.peers)  # as given: IP addresses, not host names
        self.begin(self.datagrams)

    def serve(self) -> None:
        """Step on every datagram and every tick until closed or failed; then close."""
        if self.datagrams is None:
            raise RuntimeError("BlockingNode.open() first")
        sock = self.datagrams.sock
        receive = sock.recvfrom
        poller = select.poll()
        poller.register(sock.fileno(), select.POLLIN)
        wait = poller.poll
        now_ns = self.clock.now_ns
        self.next_tick_ns = now_ns() + self.tick_ns
        try:
            while not self.closing and self.failed is None:
                if wait(max(0.0, (self.next_tick_ns - now_ns()) / 1e6)):
                    try:
                        data, addr = receive(RECEIVE_MAX)
                    except OSError:  # nothing after all, or an ICMP error on the socket
                        pass
                    else:
                        woke = now_ns()
                        self.on_datagram(data, addr)  # at once: an idle replica adds nothing
                        if now_ns() - woke >= DRAIN_AFTER_NS:  # a long step: others queued
                            self._drain(sock)
                self._tick_if_due()
        finally:
            self._shut()

    def _tick_if_due(self) -> None:
        now = self.clock.now_ns()
        if now >= self.next_tick_ns or now < self.next_tick_ns - self.tick_ns:  # or time jumped
            self.next_tick_ns = now + self.tick_ns
            self.on_tick()

    def _drain(self, sock: socket.socket) -> None:
        """Step on what queued meanwhile: replicas' datagrams first, then clients' (see the
        module notes on overload); ticks stay on time however long the queue."""
        queued: list[tuple[bytes, Address]] = []
        try:
            while len(queued) < DRAIN_MAX:
                queued.append(sock.recvfrom(RECEIVE_MAX, socket.MSG_DONTWAIT))
        except OSError:  # BlockingIOError: the queue is empty (or an ICMP error)
            pass
        if not queued:
            return
        peers = self.peer_addresses
        clients = []
        for data, addr in queued:
            if addr in peers:
                self.on_datagram(data, addr)
                self._tick_if_due()
            else:
                clients.append((data, addr))
        for data, addr in clients:
            if self._admits_clients(len(clients)):
                self.on_datagram(data, addr)
                self._tick_if_due()
            else:
                self.stats.datagrams_received += 1
                self.stats.client_datagrams_shed += 1

    def _admits_clients(self, queued: int) -> bool:
        """Whether to read a client's datagram: the leader while its request queue has room; a
        backup (where requests are only retries it drops) unless clients are flooding it."""
        replica = self.replica
        if replica.is_leader:
            return len(replica.pending) < replica.config.pending_max
        return queued < SHED_AT
    def close(self) -> None:
        """End :meth:`serve` after the current step (safe from a signal handler)."""
        self.closing = True

    def _shut(self) -> None:
        if self.datagrams is not None:
            self.datagrams.closed = True
            self.datagrams.sock.close()
        if self.recorder is not None:
            self.recorder.close()
