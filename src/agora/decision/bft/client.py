"""The sans-IO BFT client: one request outstanding, broadcast, accepted on f + 1 matching replies.

A request goes to every replica at once (so every backup can time the primary out if it
withholds it) with one MAC per replica; it is re-broadcast every ``retry_ns`` until ``f + 1``
distinct replicas send MAC-valid replies that agree on the request's index in the executed
sequence and on its deadline verdict: at least one of them is correct, so both are the agreed
ones.
"""

from __future__ import annotations

from agora.decision.bft.auth import Keyring
from agora.decision.bft.messages import ClientReply, ClientRequest
from agora.decision.consensus.client import ClientBusy
from agora.decision.consensus.messages import Broadcast, Outbox, Reply


class BftClient:
    def __init__(self, cluster: int, client_id: int, keyring: Keyring, *,
                 retry_ns: int = 20_000_000) -> None:
        if client_id <= 0:
            raise ValueError("client ids start at 1")
        self.cluster = cluster
        self.client_id = client_id
        self.keys = keyring
        self.f = (keyring.n - 1) // 3
        self.retry_ns = retry_ns
        self.request_number = 0
        self.outstanding: ClientRequest | None = None
        self.last_try_ns = 0
        self.votes: dict[tuple[int, bool], set[int]] = {}  # (index, abandoned) -> replicas
        self.rejected = 0  # replies with a bad MAC or for someone else
        # no queue-full replies here: a faulty primary could use one to hold the client off
        self.queue_full_replies = 0

    @property
    def busy(self) -> bool:
        return self.outstanding is not None

    def request(self, payload: bytes, budget_ns: int, now_ns: int) -> list[Outbox]:
        if self.outstanding is not None:
            raise ClientBusy(f"client {self.client_id} awaits request {self.request_number}")
        self.request_number += 1
        bare = ClientRequest(self.cluster, self.client_id, self.request_number, budget_ns,
                             payload)
        self.outstanding = ClientRequest(bare.cluster, bare.client_id, bare.request_number,
                                         budget_ns, payload, self.keys.client_macs(bare))
        self.votes = {}
        self.last_try_ns = now_ns
        return [Broadcast(self.outstanding)]

    def on_reply(self, reply: ClientReply, now_ns: int) -> Reply | None:
        """The accepted result once f + 1 replicas agree, else None."""
        request = self.outstanding
        if (request is None or reply.cluster != self.cluster or reply.client_id != self.client_id
                or reply.request_number != request.request_number):
            return None
        if not self.keys.reply_ok(reply):
            self.rejected += 1
            return None
        voters = self.votes.setdefault((reply.index, reply.abandoned), set())
        voters.add(reply.replica)
        if len(voters) < self.f + 1:
            return None
        self.outstanding = None
        return Reply(self.cluster, reply.replica, reply.view, self.client_id,
                     reply.request_number, reply.index, reply.abandoned)

    def due_ns(self) -> int | None:
        """The earliest time ``on_tick`` may send something (None: nothing outstanding)."""
        return None if self.outstanding is None else self.last_try_ns + self.retry_ns

    def on_tick(self, now_ns: int) -> list[Outbox]:
        if self.outstanding is None:
            return []
        if now_ns < self.last_try_ns:
            self.last_try_ns = now_ns
        if now_ns - self.last_try_ns < self.retry_ns:
            return []
        self.last_try_ns = now_ns
        return [Broadcast(self.outstanding)]
