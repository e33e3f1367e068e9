"""An async UDP client of the replicated log: many requests in flight, commit latency per request.

The sans-IO :class:`~agora.decision.consensus.Client` allows one outstanding request (the
replicas' exactly-once table needs it), so this client owns a pool of them with consecutive
client ids starting at ``first_id``: a submission takes an idle one, or waits in a FIFO backlog
when all are busy (its latency then includes the wait, so an open-loop run does not hide
queueing). The Byzantine mode's pool (``bft_client.py``) is this class over the BFT sans-IO
client: it replaces the hooks ``_sans_io``, ``_request``, ``_replies``, ``_encode`` and
``_hello``.

Client ids must never be reused, by a concurrent process or by a later start of the same one:
the replicas' exactly-once table remembers each id's last request for as long as the log lives,
so a restarted process that numbers from 1 again would have its first requests ignored (older
than the table's) or answered with the old reply (a request that never committed reported as
committed). By default each client draws a random base (:func:`fresh_client_ids`, 62 bits: a
collision between two pools of 1,024 has probability ~2^-42); pass ``first_id`` only with ids
kept unique some other way (``agora.trading.agent_host`` persists an epoch per node).

The pool shares what it learns about the view: a reply in view ``v`` moves every idle sans-IO
client to ``v``, so after a failover one reply redirects the whole pool to the new leader
instead of each client timing out on its own.

Batching: requests started in one event-loop turn for the same replica leave together, in one
:class:`~agora.decision.consensus.messages.RequestBatch` datagram (at most
:data:`REQUESTS_PER_DATAGRAM` requests and about :data:`BATCH_BYTES` of payload each), sent by a
callback at the end of the turn; a lone request goes as a plain ``Request``. The leader answers
with a ``ReplyBatch`` per step. Each request keeps its own client id and number, so batching does
not touch exactly-once. Retries (a broadcast to every replica) are batched the same way, so a
pool that times out together costs a few datagrams per replica, not one per client.
``batch=False`` sends every request in its own datagram (the old wire behaviour, to compare).

Retries adapt to load: a request is retried after ``RETRY_RTTS`` smoothed round trips (attempt
to reply, as TCP's retransmission timer), never sooner than ``retry_ns``. A fixed timer shorter
than the loaded latency resends every outstanding request to every replica exactly when the
cluster is slowest (at 64,000 requests/s, one pair of runs: p99 32 ms with the fixed 8 ms timer,
5.6 ms with this one). A retried request's sample is ambiguous (Karn): timed from the last
attempt, it can only err short, and the timer never goes below ``retry_ns``.

Replies: the leader's (committed) or, for requests without a deadline, ``f`` acknowledgements of
backups that hold the request (see :class:`~agora.decision.consensus.Client`), one hop sooner.
The pool announces its address to every replica with a ``Hello`` at connect and every second.

Latency is measured on this process's clock from the ``submit`` call to the reply's arrival:
proposer to commit as the client sees it (the leader replies once the entry is committed and its
deadline verdict known).
"""

from __future__ import annotations

import asyncio
import secrets
from collections import deque
from collections.abc import Callable, Iterable, Sequence

import msgspec

from agora.core.clock import Clock
from agora.decision.consensus.client import Client
from agora.decision.consensus.messages import (
    Broadcast,
    Hello,
    Message,
    Outbox,
    Reply,
    ReplyBatch,
    Request,
    RequestBatch,
    Send,
    decode,
    encode,
)
from agora.decision.transport.framing import (
    Address,
    Reassembler,
    decoded,
    send_message,
    tune_socket,
)

REQUESTS_PER_DATAGRAM = 512
RETRY_RTTS = 4  # retry after this many smoothed round trips, never sooner than ``retry_ns``
RETRY_MAX_NS = 1_000_000_000
BATCH_BYTES = 48_000  # request payload bytes per batch: one datagram, no fragments
HELLO_NS = 1_000_000_000  # the pool's address goes to every replica this often
NEVER = 1 << 63  # a scan time no clock reaches
CLIENT_ID_SPACE = 1 << 62  # random client ids are drawn below this (msgpack ints, 8 bytes)


def fresh_client_ids(count: int) -> int:
    """A random first id for ``count`` consecutive client ids nobody has used (see above)."""
    return secrets.randbelow(CLIENT_ID_SPACE - count) + 1


def replies_in(reassembler: Reassembler, data: bytes, addr: Address) -> tuple[Reply, ...]:
    """The replies a datagram completes (a ``Reply`` or a ``ReplyBatch``); anything else, a
    fragment still waiting for the rest, or garbage: none."""
    message = decoded(reassembler, data, addr, decode)
    kind = type(message)  # decoded: exact types (an isinstance on a Struct class costs 5x)
    if kind is ReplyBatch:
        return message.replies  # type: ignore[union-attr]
    return (message,) if kind is Reply else ()  # type: ignore[return-value]


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
    def __init__(self, cluster: int, peers: Sequence[Address], clock: Clock, *,
                 first_id: int | None = None,
                 pool: int = 256, retry_ns: int = 8_000_000, tick_ns: int = 1_000_000,
                 keep_log: bool = False, batch: bool = True) -> None:
        self.cluster = cluster
        self.peers = list(peers)
        self.clock = clock
        if first_id is None:
            first_id = fresh_client_ids(pool)
        self.clients = {first_id + i: self._sans_io(first_id + i, retry_ns) for i in range(pool)}
        self.first_id = first_id
        self.hello_ns = 0  # when the last Hello went out
        self.retry_floor_ns = retry_ns
        self.rtt_ns = 0.0  # smoothed time from the last attempt to its reply
        self.idle: deque[Client] = deque(self.clients.values())
        self.backlog: deque[tuple[bytes, int, int, asyncio.Future[Outcome]]] = deque()
        self.waiting: dict[int, tuple[int, asyncio.Future[Outcome]]] = {}
        self.view = 0
        self.tick_s = tick_ns / 1e9
        self.keep_log = keep_log
        self.submitted: list[Request] = []  # with keep_log: for the checker
        self.replies: list[Reply] = []
        self.batch = batch
        self.outgoing: dict[int, list[Request]] = {}  # replica -> requests of this loop turn
        self.datagrams_sent = 0
        self.request_datagrams = 0  # datagrams that carried requests
        self.requests_sent = 0  # requests per destination (a batch counts each one)
        self.reassembler = Reassembler()
        self.transport: asyncio.DatagramTransport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._message_id = 0
        # the waiting clients' retry timers, scanned only when one may be due (see ``_tick``)
        self._scan_due_ns = NEVER  # no waiting client's retry is due before this
        self._ticked_ns = 0  # the clock at the last tick
        self._retry_ns = retry_ns  # the retry timer a request starts with now
        self._retry_hi = retry_ns  # the longest one a waiting client may hold

    def _sans_io(self, client_id: int, retry_ns: int) -> Client:
        """The protocol's client state machine for one id of the pool."""
        return Client(self.cluster, client_id, len(self.peers), retry_ns=retry_ns)

    @classmethod
    async def connect(cls, cluster: int, peers: Sequence[Address], clock: Clock, *,
                      local_host: str = "127.0.0.1", **options: object) -> ClusterClient:
        """Bind an ephemeral port on ``local_host`` (an address the replicas can reach)."""
        loop = asyncio.get_running_loop()
        _, client = await loop.create_datagram_endpoint(
            lambda: cls(cluster, peers, clock, **options),  # type: ignore[arg-type]
            local_addr=(local_host, 0))
        return client

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment] - uvloop's is no subclass
        tune_socket(self.transport)
        self._hello(self.clock.now_ns())
        self._timer = asyncio.get_running_loop().call_later(self.tick_s, self._tick)

    def _hello(self, now: int) -> None:
        """Tell every replica where this pool listens: backups send their acknowledgements
        here. Repeated every :data:`HELLO_NS`, so a replica that restarts learns it again."""
        self.hello_ns = now
        self._send(encode(Hello(self.cluster, self.first_id, len(self.clients))), self.peers)

    @property
    def in_flight(self) -> int:
        return len(self.waiting) + len(self.backlog)

    @property
    def queue_full_replies(self) -> int:
        """Requests a leader's full queue turned away (each retried after a pause)."""
        return sum(client.queue_full_replies for client in self.clients.values())

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
        now = self.clock.now_ns()
        budget = budget_ns if budget_ns == 0 else max(1, budget_ns - (now - submitted_ns))
        client.retry_ns = self._retry_ns
        self._retry_hi = max(self._retry_hi, self._retry_ns)
        out = self._request(client, payload, budget, submitted_ns, now)
        self.waiting[client.client_id] = (submitted_ns, future)
        self._note_due(client)
        if self.keep_log:
            assert client.outstanding is not None
            self.submitted.append(client.outstanding)
        self._execute(out)

    def _request(self, client: Client, payload: bytes, budget_ns: int, submitted_ns: int,
                 now: int) -> list[Outbox]:
        """The first attempt, to the leader the pool last heard of; its retries spend the
        budget from the submission."""
        client.view = max(client.view, self.view)
        out = client.request(payload, budget_ns, now)
        client.sent_ns = submitted_ns
        return out

    def _execute(self, out: list[Outbox]) -> None:
        for item in out:
            kind = type(item)  # exact types (an isinstance on a Struct class costs 5x)
            if kind is Send:
                self._queue(item.message, [item.to])
            elif kind is Broadcast:
                self._queue(item.message, range(len(self.peers)))

    def _queue(self, message: Message, to: Iterable[int]) -> None:
        """Hold a request for the end of this loop turn (anything else goes at once)."""
        if not self.batch or type(message) is not Request:
            self._send(self._encode(message), [self.peers[replica] for replica in to])
            return
        if not self.outgoing:
            asyncio.get_running_loop().call_soon(self._send_requests)
        for replica in to:
            self.outgoing.setdefault(replica, []).append(message)

    def _send_requests(self) -> None:
        """End of the loop turn: each replica's queued requests in as few datagrams as fit."""
        outgoing, self.outgoing = self.outgoing, {}
        for to, requests in outgoing.items():
            self.requests_sent += len(requests)
            start, size = 0, 0
            for i, request in enumerate(requests):
                size += len(request.payload)
                if i > start and (i - start >= REQUESTS_PER_DATAGRAM or size > BATCH_BYTES):
                    self._send_batch(requests[start:i], to)
                    start, size = i, len(request.payload)
            self._send_batch(requests[start:], to)

    def _send_batch(self, requests: list[Request], to: int) -> None:
        self.request_datagrams += 1
        message = (requests[0] if len(requests) == 1
                   else RequestBatch(self.cluster, tuple(requests)))
        self._send(encode(message), [self.peers[to]])

    def _send(self, data: bytes, addresses: list[Address]) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        self._message_id += 1
        self.datagrams_sent += send_message(self.transport, data, self._message_id, addresses)[0]

    _encode = staticmethod(encode)

    def _replies(self, data: bytes, addr: Address) -> Sequence[Reply]:
        """The replies one datagram completes (garbage and fragments: none)."""
        return replies_in(self.reassembler, data, addr)

    def datagram_received(self, data: bytes, addr: Address) -> None:
        replies = self._replies(data, addr)
        if replies:
            now = self.clock.now_ns()
            for reply in replies:
                self._on_reply(reply, now)

    def _on_reply(self, message: Reply, now: int) -> None:
        client = self.clients.get(message.client_id)
        if client is None:
            return
        reply = client.on_reply(message, now)  # the settled reply (a BFT client's differs)
        if reply is None:
            self._note_due(client)  # a queue-full reply schedules a retry
            return
        self.rtt_ns += (now - client.last_try_ns - self.rtt_ns) / 8
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

    def _note_due(self, client: Client) -> None:
        due = client.due_ns()
        if due is not None and due < self._scan_due_ns:
            self._scan_due_ns = due

    def _tick(self) -> None:
        """Hellos, and the retries that are due.

        Each waiting client's retry is measured with the timer of this tick, as if every one
        were ticked; but they are scanned only when one may be due: when the earliest due time
        noted (at the last scan, each start, each queue-full reply), brought forward by however
        much the timer has shrunk since, has come, or the clock went back. A loaded pool holds up
        to a thousand requests, and ticking each one every millisecond cost the client a sixth
        of its CPU at 30,000 requests/s (profiled), more as its backlog grew.
        """
        now = self.clock.now_ns()
        if not 0 <= now - self.hello_ns < HELLO_NS:
            self._hello(now)
        retry_ns = int(min(RETRY_MAX_NS, max(self.retry_floor_ns, RETRY_RTTS * self.rtt_ns)))
        self._retry_ns = retry_ns
        went_back, self._ticked_ns = now < self._ticked_ns, now
        if went_back or now + max(0, self._retry_hi - retry_ns) >= self._scan_due_ns:
            self._retry_hi, self._scan_due_ns = retry_ns, NEVER
            for client_id in self.waiting:
                client = self.clients[client_id]
                client.retry_ns = retry_ns
                self._execute(client.on_tick(now))
                self._note_due(client)
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
    submit = client.submit
    while len(futures) < count:
        due = min(count, int((clock.now_ns() - start) * rate / 1e9) + 1)
        while len(futures) < due:
            futures.append(submit(payload(len(futures)), budget_ns))
        if len(futures) < count:
            await asyncio.sleep(pace_s)
    # Wait by polling the oldest unresolved future: replies come back nearly in order, so this
    # is one pass over the list in all, where asyncio.wait hangs a callback on every future
    # (a tenth of a loaded load generator's CPU, profiled).
    loop = asyncio.get_running_loop()
    give_up = loop.time() + timeout_s
    oldest = 0
    while oldest < count:
        if futures[oldest].done():
            oldest += 1
        elif loop.time() >= give_up:
            break
        else:
            await asyncio.sleep(pace_s)
    outcomes = []
    for future in futures:
        if future.done():
            outcomes.append(future.result())
        else:
            future.cancel()
            outcomes.append(Outcome(0, 0, 0, 0, None))
    return outcomes
