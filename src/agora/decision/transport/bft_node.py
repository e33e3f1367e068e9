"""A Byzantine-mode replica's node: the PBFT replica (``decision.bft``) on a UDP socket.

:class:`BftCore` is what the Byzantine mode changes in a node (``node.py``), whatever drives
its socket, and it runs on both drivers, as the crash-tolerant node does:

* :class:`BftNode`, the blocking driver (:class:`BlockingNode`: ``poll``, one ``recvfrom`` per
  wake-up, peers' datagrams before clients' under load), for the standalone replica process
  (``replica_main --mode bft``, its default ``--io blocking``);
* :class:`AsyncBftNode`, the asyncio (uvloop) endpoint (:class:`ReplicaNode`), for a program
  that embeds a Byzantine-mode replica beside other I/O: the decision node
  (``agora.trading.decision_node --mode bft``) runs it on the loop of its FIX session and its
  agents (``replica_main --mode bft --io asyncio`` runs it alone). It has no overload policy
  of its own (the event loop reads datagrams in arrival order), like the CFT asyncio node.

Every datagram carries a ``Sealed`` replica message, a ``ClientRequest`` or (never expected
here) a ``ClientReply``, framed as in ``framing.py``. Authentication happens inside the replica
(``Keyring.open``): the node only decodes, and counts what does not decode as garbage.

What differs from crash mode:

* **Clients broadcast** each request to every replica (backups must see it to time a withholding
  primary out), so every replica learns the client's address from the request itself, and only
  from a request whose MAC for this replica is valid (a forgery cannot redirect a client's
  replies); no ``Hello``. Every replica replies once the request executes and the client
  accepts ``f + 1`` matching replies (:class:`BftSyncClient`, and the asyncio pool
  :class:`~agora.decision.transport.bft_client.BftClusterClient`).
* **Committed record before replies**, as in crash mode: a replica's reply never announces an
  index its record (the checker's oracle) does not hold yet.
* **Durable state before sends**: the replica's records (``bft/storage.py``: views, the batch
  it voted for at each slot, its P set, the executed log, the stable checkpoint) are written
  out (and fsynced under ``always``) before any datagram of the step leaves, so a restarted
  replica never contradicts what it sent. A replica without storage refuses to start over a
  record of an earlier incarnation (:class:`BftRestartRefused`): empty, it could vote against
  its own past. Rejoining with a new, empty directory is always possible: the replica then
  counts as one of the ``f`` until it has caught up.
* **Deliberate faults for tests** (``byzantine``): the simulator's
  :class:`~agora.decision.sim.byzantine.Byzantine` filter rewrites what this replica sends
  (equivocation, forged and replayed votes, wrong digests, silence, withholding, lying view
  changes). Its committed record is written unfiltered and checked by nobody: a faulty
  replica's output proves nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

from agora.core.clock import Clock
from agora.decision.bft.messages import ClientReply, ClientRequest, Sealed, decode, encode
from agora.decision.bft.replica import BftReplica
from agora.decision.consensus.messages import Committed, Outbox, ToClient
from agora.decision.sim.byzantine import Byzantine
from agora.decision.transport.blocking import SHED_AT, BlockingNode
from agora.decision.transport.framing import Address
from agora.decision.transport.node import NodeCore
from agora.decision.transport.record import Recorder
from agora.decision.transport.udp import ReplicaNode

WAITING_MAX = 4_096  # requests a primary holds unordered before it stops reading clients


class BftRestartRefused(RuntimeError):
    """A BFT replica was started over the committed record of an earlier incarnation."""


class BftCore(NodeCore):
    """Steps one :class:`BftReplica` on datagrams and ticks (a driver's mixin: see the module
    notes)."""

    compacts = False  # a PBFT replica keeps its whole record

    def __init__(self, replica: BftReplica, peers: Sequence[Address], clock: Clock,
                 recorder: Recorder | None = None, *, tick_ns: int = 1_000_000,
                 byzantine: Byzantine | None = None) -> None:
        if recorder is not None and recorder.incarnation > 0 and replica.storage is None:
            raise BftRestartRefused(
                f"replica {replica.me}: {recorder.path} holds an earlier incarnation and the "
                "replica has no storage, so it could contradict its own earlier votes. Rejoin "
                "with an empty --dir instead (the replica then counts as one of the f faults "
                "until it has caught up)")
        super().__init__(replica, peers, clock, recorder, tick_ns=tick_ns)  # type: ignore[arg-type]
        self.bft = replica
        self.byzantine = byzantine

    def on_datagram(self, data: bytes, addr: Address) -> None:
        message = self._decoded(data, addr, decode)
        if message is None or isinstance(message, ClientReply):
            return
        if isinstance(message, ClientRequest):
            if self.bft.keys.client_ok(self.bft.me, message):  # a forgery redirects nothing
                self.clients[message.client_id] = addr
        elif self.byzantine is not None and isinstance(message, Sealed):
            self.byzantine.capture(message)
        self._run(self.bft.on_message, message, self.clock.now_ns())

    def execute(self, out: list[Outbox]) -> None:
        """The replica's records (as durable as its policy says), committed records (flushed
        to the OS), then replies, then replica messages."""
        recorder = self.recorder
        if self.bft.storage is not None:
            self.bft.storage.flush()
        if self.byzantine is not None:
            out = self.byzantine.rewrite(out)
        replies: list[tuple[ClientReply, Address]] = []
        for item in out:
            if isinstance(item, Committed):
                self.stats.committed += 1
                if recorder is not None:
                    recorder.committed(item, self.clock.now_ns())
            elif isinstance(item, ToClient):
                addr = self.clients.get(item.client_id)
                if addr is not None:
                    replies.append((item.message, addr))  # type: ignore[arg-type]
        if recorder is not None:
            recorder.flush()
        for reply, addr in replies:
            self.stats.replies_sent += 1
            self._send(encode(reply), [addr])
        self._send_peers(out, encode)

    def after_step(self) -> None:
        self.stats.view = self.bft.view
        self.stats.status = int(self.bft.phase)


class BftNode(BftCore, BlockingNode):
    """Steps one :class:`BftReplica` on a blocking UDP socket (see the module notes)."""

    def _admits_clients(self, queued: int) -> bool:
        """The primary reads clients while it holds few unordered requests; a backup (which
        only needs a request to time the primary out) unless clients are flooding it."""
        if self.bft.is_primary:
            return len(self.bft.waiting) < WAITING_MAX
        return queued < SHED_AT


class AsyncBftNode(BftCore, ReplicaNode):
    """Steps one :class:`BftReplica` from an asyncio datagram endpoint and a tick timer:
    construct it inside the running loop, then ``await open()`` (see the module notes)."""
