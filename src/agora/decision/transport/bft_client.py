"""An async UDP client of a Byzantine-mode cluster: many requests in flight, for an event loop.

:class:`BftClusterClient` is :class:`~agora.decision.transport.client.ClusterClient` (a pool of
sans-IO clients with consecutive ids, a FIFO backlog when all are busy, retries after a few
smoothed round trips, ``submit`` -> a future of :class:`Outcome`) over the Byzantine mode's
sans-IO :class:`~agora.decision.bft.client.BftClient` (one request outstanding per client id).
It is what a program on an event loop uses to propose to a ``--mode bft`` cluster: the decision
node's agents (``agora.trading.agent_host``) do; a script or a benchmark that commits one request
at a time uses the blocking :class:`~agora.decision.transport.bft_sync_client.BftSyncClient`.

What the Byzantine mode changes:

* every request goes to **every replica** at once, carrying one MAC per replica (keys from the
  cluster secret's :class:`~agora.decision.bft.auth.Keyring`), in a datagram of its own (the
  mode has no request batch); a retry is the same broadcast again;
* a request is settled by ``f + 1`` MAC-valid replies from distinct replicas naming the same
  index (at least one of them is correct); replies with a bad MAC, for another request or that
  do not decode are ignored. The :class:`~agora.decision.consensus.messages.Reply` the future
  carries is the one the sans-IO client builds, deadline verdict (``abandoned``) included;
* no ``Hello``: every replica learns the pool's address from an authentic request;
* the pool has no leader to follow (``view`` in a reply is informative only).

Client ids must never be reused (the replicas' client table remembers each id's last request):
see ``client.py``; ids start at 1.
"""

from __future__ import annotations

from collections.abc import Sequence

from agora.core.clock import Clock
from agora.decision.bft.auth import Keyring
from agora.decision.bft.client import BftClient
from agora.decision.bft.messages import ClientReply, decode, encode
from agora.decision.consensus.messages import Outbox
from agora.decision.transport.client import ClusterClient, Outcome
from agora.decision.transport.framing import Address, Reassembler, decoded

__all__ = ["BftClusterClient", "Outcome", "bft_replies_in"]


def bft_replies_in(reassembler: Reassembler, data: bytes, addr: Address
                   ) -> tuple[ClientReply, ...]:
    """The reply a datagram completes (anything else, a fragment or garbage: none)."""
    message = decoded(reassembler, data, addr, decode)
    return (message,) if isinstance(message, ClientReply) else ()


class BftClusterClient(ClusterClient):
    """``submit(payload, budget_ns)`` -> a future of the :class:`Outcome` once ``f + 1``
    replicas agree (see the module notes); ``connect(..., keyring=...)`` binds it."""

    def __init__(self, cluster: int, peers: Sequence[Address], clock: Clock, *,
                 keyring: Keyring, first_id: int | None = None, pool: int = 64,
                 retry_ns: int = 20_000_000, tick_ns: int = 1_000_000,
                 keep_log: bool = False) -> None:
        if keyring.n != len(peers):
            raise ValueError(f"the keyring is for {keyring.n} replicas, {len(peers)} peers given")
        self.keyring = keyring
        super().__init__(cluster, peers, clock, first_id=first_id, pool=pool, retry_ns=retry_ns,
                         tick_ns=tick_ns, keep_log=keep_log, batch=False)

    def _sans_io(self, client_id: int, retry_ns: int) -> BftClient:  # type: ignore[override]
        return BftClient(self.cluster, client_id, self.keyring, retry_ns=retry_ns)

    def _hello(self, now: int) -> None:
        """Nothing to announce: every replica learns the address from the requests."""
        self.hello_ns = now

    def _request(self, client: BftClient, payload: bytes, budget_ns: int,  # type: ignore[override]
                 submitted_ns: int, now: int) -> list[Outbox]:
        """A broadcast to every replica: no leader to aim at."""
        return client.request(payload, budget_ns, now)

    def _replies(self, data: bytes, addr: Address) -> Sequence[ClientReply]:  # type: ignore[override]
        return bft_replies_in(self.reassembler, data, addr)

    _encode = staticmethod(encode)
