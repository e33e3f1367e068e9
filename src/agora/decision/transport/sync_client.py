"""A blocking client of the replicated log: one request at a time, no event loop.

The sans-IO :class:`~agora.decision.consensus.Client` (retries, the leader guess, settling on the
leader's reply or ``f`` backup acknowledgements) driven by a plain UDP socket. It is the leanest
proposer: a script, a test, or the benchmark's latency probe, where an asyncio pool
(:class:`~agora.decision.transport.client.ClusterClient`) would add its event loop's cost to every
round trip. One instance is one client id, random unless given (ids must never be reused: see
``client.py``).
"""

from __future__ import annotations

import contextlib
import socket
import struct
import time
from collections.abc import Sequence

from agora.core.clock import Clock
from agora.decision.consensus.client import Client
from agora.decision.consensus.messages import (
    Broadcast,
    Hello,
    Message,
    Outbox,
    Reply,
    Send,
    encode,
)
from agora.decision.transport.client import fresh_client_ids, replies_in
from agora.decision.transport.framing import Address, Reassembler, frames

HELLO_NS = 1_000_000_000  # the address goes to every replica again after this long
TICK_US = 1_000  # a receive timeout: the retry timer and the deadline are looked at that often
# at best (the kernel counts it in scheduler ticks: every 4-8 ms with HZ = 250), which is fine
# for retries of 8 ms and more; the replica driver, whose heartbeats need better, polls instead


class SyncClient:
    """``commit(payload)`` blocks until the request is settled and returns its reply."""

    def __init__(self, cluster: int, peers: list[Address], clock: Clock, *,
                 client_id: int | None = None,
                 retry_ns: int = 8_000_000, bind: Address = ("127.0.0.1", 0)) -> None:
        self.cluster = cluster
        self.peers = list(peers)
        self.clock = clock
        if client_id is None:
            client_id = fresh_client_ids(1)
        self.client = self._sans_io(client_id, retry_ns)
        self.reassembler = Reassembler()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(bind)
        # a kernel receive timeout: one system call per wake-up (``settimeout`` polls first)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO,
                             struct.pack("ll", 0, TICK_US))
        self.hello_ns: int | None = None
        self._message_id = 0
        self.datagrams_sent = 0

    def commit(self, payload: bytes, budget_ns: int = 0, timeout_s: float = 10.0) -> Reply:
        """Commit ``payload`` once (retried as the sans-IO client says). On ``TimeoutError``
        the request stays outstanding: this client id cannot start another one."""
        now = self.clock.now_ns()
        self._announce(now)
        self._execute(self.client.request(payload, budget_ns, now))
        deadline = time.monotonic() + timeout_s
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"client {self.client.client_id}: request "
                                   f"{self.client.request_number} not settled in {timeout_s} s")
            try:
                data, addr = self.sock.recvfrom(65_536)
            except BlockingIOError:  # a tick without a datagram
                self._execute(self.client.on_tick(self.clock.now_ns()))
                continue
            reply = self._settle(data, addr)
            if reply is not None:
                return reply

    # ------------------------------------------------ what a mode of the cluster changes

    def _sans_io(self, client_id: int, retry_ns: int) -> Client:
        """The protocol's client state machine (``request``, ``on_reply``, ``on_tick``)."""
        return Client(self.cluster, client_id, len(self.peers), retry_ns=retry_ns)

    def _announce(self, now: int) -> None:
        """Tell every replica this client's address (backups acknowledge to it), again
        after :data:`HELLO_NS`."""
        if self.hello_ns is None or not 0 <= now - self.hello_ns < HELLO_NS:
            self.hello_ns = now
            self._send(Hello(self.cluster, self.client.client_id, 1), self.peers)

    def _replies(self, data: bytes, addr: Address) -> Sequence[object]:
        """The replies one datagram completes (garbage and fragments: none)."""
        return replies_in(self.reassembler, data, addr)

    _encode = staticmethod(encode)

    # ------------------------------------------------

    def _settle(self, data: bytes, addr: Address) -> Reply | None:
        now = self.clock.now_ns()
        for reply in self._replies(data, addr):
            settled = self.client.on_reply(reply, now)  # type: ignore[arg-type]
            if settled is not None:
                return settled
        return None

    def _execute(self, out: list[Outbox]) -> None:
        for item in out:
            kind = type(item)  # exact types (an isinstance on a Struct class costs 5x)
            if kind is Send:
                self._send(item.message, [self.peers[item.to]])
            elif kind is Broadcast:
                self._send(item.message, self.peers)

    def _send(self, message: Message, addresses: list[Address]) -> None:
        self._message_id += 1
        for datagram in frames(self._encode(message), self._message_id):
            for addr in addresses:
                self.datagrams_sent += 1
                with contextlib.suppress(OSError):  # an unreachable replica: retries go on
                    self.sock.sendto(datagram, addr)

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> SyncClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
