"""A blocking client of a Byzantine-mode cluster: one request at a time, no event loop.

:class:`~agora.decision.transport.sync_client.SyncClient`'s loop around the sans-IO
:class:`~agora.decision.bft.client.BftClient`: each request goes to every replica with one MAC
per replica and is settled by ``f + 1`` MAC-valid replies naming the same index (so at least one
correct replica vouches for it). Replies that fail their MAC, name another request or do not
decode are ignored (counted in ``client.rejected`` when the MAC is wrong).
"""

from __future__ import annotations

from collections.abc import Sequence

from agora.core.clock import Clock
from agora.decision.bft.auth import Keyring
from agora.decision.bft.client import BftClient
from agora.decision.bft.messages import encode
from agora.decision.transport.bft_client import bft_replies_in
from agora.decision.transport.framing import Address
from agora.decision.transport.sync_client import SyncClient


class BftSyncClient(SyncClient):
    """``commit(payload)`` blocks until ``f + 1`` replicas agree on the request's index."""

    def __init__(self, cluster: int, peers: list[Address], clock: Clock, keyring: Keyring, *,
                 client_id: int | None = None, retry_ns: int = 20_000_000,
                 bind: Address = ("127.0.0.1", 0)) -> None:
        if keyring.n != len(peers):
            raise ValueError(f"the keyring is for {keyring.n} replicas, {len(peers)} peers given")
        self.keyring = keyring
        super().__init__(cluster, peers, clock, client_id=client_id, retry_ns=retry_ns,
                         bind=bind)

    def _sans_io(self, client_id: int, retry_ns: int) -> BftClient:  # type: ignore[override]
        return BftClient(self.cluster, client_id, self.keyring, retry_ns=retry_ns)

    def _announce(self, now: int) -> None:
        """Nothing to announce: every replica learns the address from the request itself."""

    def _replies(self, data: bytes, addr: Address) -> Sequence[object]:
        return bft_replies_in(self.reassembler, data, addr)

    _encode = staticmethod(encode)
