"""The replica node on an asyncio (uvloop) loop, for programs that embed a replica beside other
I/O (the decision node runs a FIX session on the same loop); see ``node.py`` for what a node does
and ``blocking.py`` for the standalone replica process's faster driver. The Byzantine mode's
:class:`~agora.decision.transport.bft_node.AsyncBftNode` is this driver over its own node core
(a subclass's ``on_datagram`` is what the endpoint calls).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from agora.core.clock import Clock
from agora.decision.consensus.replica import Replica
from agora.decision.transport.framing import Address, tune_socket
from agora.decision.transport.node import NodeCore
from agora.decision.transport.record import Recorder


class ReplicaNode(NodeCore, asyncio.DatagramProtocol):
    """Drives one :class:`Replica` from an asyncio datagram endpoint and a tick timer."""

    def __init__(self, replica: Replica, peers: Sequence[Address], clock: Clock,
                 recorder: Recorder | None = None, *, tick_ns: int = 1_000_000) -> None:
        super().__init__(replica, peers, clock, recorder, tick_ns=tick_ns)
        self._timer: asyncio.TimerHandle | None = None
        self.stopped = asyncio.get_running_loop().create_future()
        # the datagram entry point is the (possibly overridden) node's, bound once
        self.datagram_received = self.on_datagram  # type: ignore[method-assign]

    @classmethod
    async def serve(cls, replica: Replica, peers: Sequence[Address], clock: Clock,
                    recorder: Recorder | None = None, *, tick_ns: int = 1_000_000) -> ReplicaNode:
        """Bind this replica's address, start the replica and its timer."""
        node = cls(replica, peers, clock, recorder, tick_ns=tick_ns)
        await node.open()
        return node

    async def open(self) -> None:
        """Bind this replica's address; the replica and its timer start once it is bound."""
        await asyncio.get_running_loop().create_datagram_endpoint(
            lambda: self, local_addr=self.peers[self.me])

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        tune_socket(transport)
        self.begin(transport)  # type: ignore[arg-type] - uvloop's transport is no subclass
        self._timer = asyncio.get_running_loop().call_later(self.tick_ns / 1e9, self._tick)

    def _tick(self) -> None:
        self.on_tick()
        if self.failed is None:
            self._timer = asyncio.get_running_loop().call_later(self.tick_ns / 1e9, self._tick)

    def on_failure(self, exc: BaseException) -> None:
        if not self.stopped.done():
            self.stopped.set_exception(exc)

    def error_received(self, exc: Exception) -> None:
        """ICMP port unreachable from a dead peer: UDP is lossy anyway, ignore."""

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self.transport is not None:
            self.transport.close()  # type: ignore[attr-defined]
        if self.recorder is not None:
            self.recorder.close()
        if not self.stopped.done():
            self.stopped.set_result(None)
