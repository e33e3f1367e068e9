"""An async UDP client of the replicated log: many requests in flight, commit latency per request.

The sans-IO :class:`~agora.decision.consensus.Client` allows one outstanding request (the
replicas' exactly-once table needs it), so this client owns a pool of them with consecutive
client ids starting at ``first_id``: a submission takes an idle one, or waits in a FIFO backlog
when all are busy (its latency then includes the wait, so an open-loop run does not hide
queueing). Client ids must not be shared between concurrently running client processes.

The pool shares what it learns about the view: a reply in view ``v`` moves every idle sans-IO
client to ``v``, so after a failover one reply redirects the whole pool to the new leader
instead of each client timing out on its own.

Latency is measured on this process's clock from the ``submit`` call to the reply's arrival:
proposer to commit as the client sees it (the leader replies once the entry is committed and its
deadline verdict known).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Sequence

import msgspec

from agora.core.clock import Clock
from agora.decision.consensus.client import Client
from agora.decision.consensus.messages import (
    Broadcast,
    Outbox,
    Reply,
    Request,
    Send,
    decode,
    encode,
)
from agora.decision.transport.udp import Address, Reassembler, frames, tune_socket


class Outcome(msgspec.Struct, frozen=True):
    """What became of one submission (``reply`` None: still pending when the run gave up)."""

    client_id: int
    request_number: int
    submitted_ns: int
    replied_ns: int
    reply: Reply | None

    @property
    def latency_ns(self) -> int:
        return self.replied_ns - self.submitted_ns


class ClusterClient(asyncio.DatagramProtocol):
    def __init__(self, cluster: int, peers: Sequence[Address], clock: Clock, *, first_id: int = 1,
                 pool: int = 256, retry_ns: int = 8_000_000, tick_ns: int = 1_000_000,
                 keep_log: bool = False) -> None:
        self.cluster = cluster
        self.peers = list(peers)
        self.clock = clock
        self.clients = {first_id + i: Client(cluster, first_id + i, len(peers), retry_ns=retry_ns)
                        for i in range(pool)}
        self.idle: deque[Client] = deque(self.clients.values())
        self.backlog: deque[tuple[bytes, int, int, asyncio.Future[Outcome]]] = deque()
        self.waiting: dict[int, tuple[int, asyncio.Future[Outcome]]] = {}
        self.view = 0
        self.tick_s = tick_ns / 1e9
        self.keep_log = keep_log
        self.submitted: list[Request] = []  # with keep_log: for the checker
        self.replies: list[Reply] = []
        self.datagrams_sent = 0
        self.reassembler = Reassembler()
        self.transport: asyncio.DatagramTransport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._message_id = 0

    @classmethod
    async def connect(cls, cluster: int, peers: Sequence[Address], clock: Clock,
                      **options: object) -> ClusterClient:
        loop = asyncio.get_running_loop()
        _, client = await loop.create_datagram_endpoint(
            lambda: cls(cluster, peers, clock, **options),  # type: ignore[arg-type]
            local_addr=("127.0.0.1", 0))
        return client

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment] - uvloop's is no subclass
        tune_socket(self.transport)
        self._timer = asyncio.get_running_loop().call_later(self.tick_s, self._tick)

    @property
    def in_flight(self) -> int:
        return len(self.waiting) + len(self.backlog)

    def submit(self, payload: bytes, budget_ns: int = 0) -> asyncio.Future[Outcome]:
        """Commit ``payload`` once; the future resolves with the reply and its timing."""
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        now = self.clock.now_ns()
        if self.idle:
            self._start(self.idle.popleft(), payload, budget_ns, now, future)
        else:
            self.backlog.append((payload, budget_ns, now, future))
        return future

    def _start(self, client: Client, payload: bytes, budget_ns: int, submitted_ns: int,
               future: asyncio.Future[Outcome]) -> None:
        client.view = max(client.view, self.view)
        now = self.clock.now_ns()
        budget = budget_ns if budget_ns == 0 else max(1, budget_ns - (now - submitted_ns))
        out = client.request(payload, budget, now)
        client.sent_ns = submitted_ns  # retries spend the budget from the submission
        self.waiting[client.client_id] = (submitted_ns, future)
        if self.keep_log:
            assert client.outstanding is not None
            self.submitted.append(client.outstanding)
        self._execute(out)

    def _execute(self, out: list[Outbox]) -> None:
        for item in out:
            if isinstance(item, Send):
                self._send(encode(item.message), [self.peers[item.to]])
            elif isinstance(item, Broadcast):
                self._send(encode(item.message), self.peers)

    def _send(self, data: bytes, addresses: list[Address]) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        self._message_id += 1
        for datagram in frames(data, self._message_id):
            for addr in addresses:
                self.transport.sendto(datagram, addr)
                self.datagrams_sent += 1

    def datagram_received(self, data: bytes, addr: Address) -> None:
        whole = self.reassembler.feed(data, addr)
        if whole is None:
            return
        try:
            reply = decode(whole)
        except (msgspec.DecodeError, msgspec.ValidationError):
            return
        if not isinstance(reply, Reply):
            return
        client = self.clients.get(reply.client_id)
        if client is None or client.on_reply(reply, self.clock.now_ns()) is None:
            return
        now = self.clock.now_ns()
        self.view = max(self.view, reply.view)
        submitted, future = self.waiting.pop(client.client_id)
        if self.keep_log:
            self.replies.append(reply)
        if not future.done():
            future.set_result(Outcome(reply.client_id, reply.request_number, submitted, now,
                                      reply))
        if self.backlog:
            payload, budget, at, waiting = self.backlog.popleft()
            self._start(client, payload, budget, at, waiting)
        else:
            self.idle.append(client)

    def _tick(self) -> None:
        now = self.clock.now_ns()
        for client_id in self.waiting:
            self._execute(self.clients[client_id].on_tick(now))
        self._timer = asyncio.get_running_loop().call_later(self.tick_s, self._tick)

    def error_received(self, exc: Exception) -> None:
        """ICMP port unreachable from a dead replica: retries and broadcasts handle it."""

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self.transport is not None:
            self.transport.close()


async def open_loop(client: ClusterClient, clock: Clock, *, rate: float, count: int,
                    budget_ns: int = 0, payload: Callable[[int], bytes] = lambda i: b"%d" % i,
                    timeout_s: float = 10.0, pace_s: float = 0.001) -> list[Outcome]:
    """Submit ``count`` requests at ``rate`` per second regardless of replies, then collect.

    Pacing wakes every ``pace_s`` (timer resolution permitting) and submits what is due by then,
    so requests go out in small bursts rather than exactly evenly. Requests still pending after
    ``timeout_s`` come back with ``reply`` None.
    """
    start = clock.now_ns()
    futures: list[asyncio.Future[Outcome]] = []
    while len(futures) < count:
        due = min(count, int((clock.now_ns() - start) * rate / 1e9) + 1)
        while len(futures) < due:
            futures.append(client.submit(payload(len(futures)), budget_ns))
        if len(futures) < count:
            await asyncio.sleep(pace_s)
    done, _ = await asyncio.wait(futures, timeout=timeout_s)
    outcomes = []
    for future in futures:
        if future in done:
            outcomes.append(future.result())
        else:
            future.cancel()
            outcomes.append(Outcome(0, 0, 0, 0, None))
    return outcomes
