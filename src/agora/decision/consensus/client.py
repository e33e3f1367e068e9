"""The sans-IO client: one request outstanding, retried until a reply says where it committed.

A client sends its request to the replica it believes leads (``view mod n`` of the last reply),
and after ``retry_ns`` without a reply broadcasts it to every replica (only the leader acts on
it). Request numbers start at 1 and grow by one per request, which is what the replicas' client
table needs for exactly-once. A retry carries the budget that remains on the client's own clock
(never less than 1 ns, so a deadline request stays one and is judged late), so a slow first
attempt does not buy a fresh budget.

The reply arrives only once the deadline verdict is known; ``abandoned`` tells the caller that
every replica has dropped the request, so it must not act on it. A request without a deadline
may instead be settled by ``f`` backup acknowledgements naming one view and index (see
``Reply``): the leader of that view sent it to them, so ``f + 1`` replicas hold it. Acks for
different views or indices never add up (a view change may have moved the request).

A queue-full reply from a leader (the request is not in its queue) schedules one retry to that
leader after a pause, :data:`QUEUE_FULL_PAUSE_NS`, doubling with each such reply to the same
request up to ``retry_ns``. It never delays the broadcast retry: a leader that stays full
because it can no longer commit (cut off from its backups) must not keep the client from the
replicas that have moved on.
"""

from __future__ import annotations

from agora.decision.consensus.messages import Broadcast, Outbox, Reply, Request, Send

QUEUE_FULL_PAUSE_NS = 500_000
"""The first pause after a queue-full reply: long enough for a leader committing tens of
thousands of requests a second to free room, short against the default 8 ms retry timer."""


class ClientBusy(RuntimeError):
    """A client has one request outstanding at a time."""


class Client:
    def __init__(self, cluster: int, client_id: int, n: int, *, retry_ns: int = 8_000_000) -> None:
        if client_id <= 0:
            raise ValueError("client ids start at 1 (0 marks the leader's no-ops)")
        if retry_ns <= 0:
            raise ValueError("retry_ns must be positive")
        self.cluster = cluster
        self.client_id = client_id
        self.n = n
        self.retry_ns = retry_ns
        self.request_number = 0
        self.view = 0
        self.outstanding: Request | None = None
        self.sent_ns = 0
        self.last_try_ns = 0
        self.f = (n - 1) // 2
        self.acks: dict[tuple[int, int], set[int]] = {}  # (view, index) -> acknowledging backups
        self.queue_full_replies = 0  # 'queue full' replies to this client's requests
        self.full_pause_ns = 0  # the pause after the last queue-full reply (0: none yet)
        self.full_retry_ns: int | None = None  # when to retry at the leader after it

    @property
    def busy(self) -> bool:
        return self.outstanding is not None

    def request(self, payload: bytes, budget_ns: int, now_ns: int) -> list[Outbox]:
        if self.outstanding is not None:
            raise ClientBusy(f"client {self.client_id} awaits request {self.request_number}")
        if budget_ns < 0:
            raise ValueError("budget_ns cannot be negative")
        self.request_number += 1
        self.outstanding = Request(self.cluster, self.client_id, self.request_number, budget_ns,
                                   payload)
        self.sent_ns = self.last_try_ns = now_ns
        self.full_pause_ns, self.full_retry_ns = 0, None
        return [Send(self.view % self.n, self.outstanding)]

    def on_reply(self, reply: Reply, now_ns: int) -> Reply | None:
        """The reply that settles the outstanding request, or None (stale, foreign, or a
        backup acknowledgement still short of ``f`` for its view and index)."""
        request = self.outstanding
        if (request is None or reply.cluster != self.cluster
                or reply.client_id != self.client_id
                or reply.request_number != request.request_number):
            return None
        if reply.queue_full:
            if reply.replica == reply.view % self.n:  # only a leader queues requests
                self._on_queue_full(reply, now_ns)
            return None
        if reply.replica != reply.view % self.n:
            if not 0 <= reply.replica < self.n or reply.abandoned:
                return None
            backups = self.acks.setdefault((reply.view, reply.index), set())
            backups.add(reply.replica)
            if len(backups) < self.f:
                return None
        self.outstanding = None
        self.acks.clear()
        self.full_retry_ns = None
        self.view = max(self.view, reply.view)
        return reply

    def _on_queue_full(self, reply: Reply, now_ns: int) -> None:
        self.queue_full_replies += 1
        self.view = max(self.view, reply.view)
        self.full_pause_ns = min(self.retry_ns, max(QUEUE_FULL_PAUSE_NS, 2 * self.full_pause_ns))
        self.full_retry_ns = now_ns + self.full_pause_ns

    def due_ns(self) -> int | None:
        """The earliest time ``on_tick`` may send something (None: nothing outstanding), so a
        pool of clients need not tick each one every millisecond (the clock going back aside)."""
        if self.outstanding is None:
            return None
        due = self.last_try_ns + self.retry_ns
        full = self.full_retry_ns
        return due if full is None or due < full else full

    def on_tick(self, now_ns: int) -> list[Outbox]:
        request = self.outstanding
        if request is None:
            return []
        if now_ns < self.last_try_ns:  # our clock went back: restart the retry timer
            self.last_try_ns = now_ns
        if now_ns - self.last_try_ns >= self.retry_ns:
            self.last_try_ns = now_ns
            self.full_retry_ns = None  # the broadcast reaches the leader too
            return [Broadcast(self._retry(request, now_ns))]
        due = self.full_retry_ns
        if due is not None and (now_ns >= due or due - now_ns > self.full_pause_ns):
            self.full_retry_ns = None  # (a clock gone back retries at once)
            return [Send(self.view % self.n, self._retry(request, now_ns))]
        return []

    def _retry(self, request: Request, now_ns: int) -> Request:
        """``request`` again, with the budget left on this client's clock (at least 1 ns, so a
        deadline request stays one)."""
        budget = request.budget_ns
        if budget > 0:
            budget = max(1, budget - max(0, now_ns - self.sent_ns))
        return Request(self.cluster, self.client_id, request.request_number, budget,
                       request.payload)
