"""What a replica process does with datagrams and ticks, whatever drives its socket.

:class:`NodeCore` turns a datagram into a replica step and executes the step's outbox: decode ->
``replica.on_message(msg, clock.now_ns())`` -> backup acknowledgements to clients, committed
records (flushed to the OS), the leader's replies (one ``ReplyBatch`` datagram per client address
when a step answers several requests), then the sends in outbox order; then the storage writes
the step held back (``drain``). Clients announce their addresses with a ``Hello`` (backups need
them for acknowledgements; the leader also learns them from requests). ``on_tick`` is called
every ``tick_ns`` by the driver. Garbage datagrams are counted and dropped; a replica exception
is a bug: the node stops stepping and :attr:`failed` holds it (the driver ends the process).

Two drivers share it: :class:`~agora.decision.transport.udp.ReplicaNode` on an asyncio (uvloop)
loop, for programs that embed a replica beside other I/O (the decision node's FIX session), and
:class:`~agora.decision.transport.blocking.BlockingNode`, a plain blocking-socket loop for the
standalone replica process (one socket, nothing else to wait for: about 20 us less per round
trip than uvloop on the benchmark machine). The Byzantine mode's node
(:class:`~agora.decision.transport.bft_node.BftCore`) overrides what differs and runs on both.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import msgspec

from agora.core.clock import Clock
from agora.decision.consensus.messages import (
    Broadcast,
    Committed,
    Hello,
    Outbox,
    Reply,
    ReplyBatch,
    Request,
    RequestBatch,
    Send,
    ToClient,
    decode,
    encode,
)
from agora.decision.consensus.replica import Replica
from agora.decision.transport.framing import Address, Datagrams, Reassembler, send_message
from agora.decision.transport.record import Recorder

REPLIES_PER_DATAGRAM = 1_024  # a Reply is ~20 bytes: well inside one unfragmented datagram
HELLO_MAX = 65_536  # client ids one Hello may claim (bounds what a stray datagram can add)


class NodeStats(msgspec.Struct):
    datagrams_sent: int = 0
    datagrams_received: int = 0
    bytes_sent: int = 0
    peer_messages_sent: int = 0  # replica -> replica messages (a broadcast counts n - 1)
    replies_sent: int = 0
    garbage: int = 0  # datagrams that are not our framing, or frame something undecodable
    send_errors: int = 0  # datagrams the kernel refused to send (blocking driver only)
    client_datagrams_shed: int = 0  # dropped unread under overload (blocking driver only)
    committed: int = 0
    view: int = 0
    status: int = 0
    log_base: int = 0  # crash mode: entries no longer in memory (read back from storage)
    compacted: int = 0  # crash mode: entries released from storage (compaction)
    # the checkpoint (Byzantine mode: the snapshot's executed batch) this incarnation started at
    started_from_checkpoint: int = 0


class NodeCore:
    """Steps one :class:`Replica` on datagrams and ticks; a driver owns the socket and time."""

    compacts = True  # the replica may compact its log up to what the record made durable

    def __init__(self, replica: Replica, peers: Sequence[Address], clock: Clock,
                 recorder: Recorder | None = None, *, tick_ns: int = 1_000_000) -> None:
        self.replica = replica
        self.peers = list(peers)
        self.me = replica.config.replica
        # every other replica, starting after this one: a leader's Prepare reaches first the
        # backup that acknowledges to clients (see ``ReplicaCore.ackers``)
        self.others = [self.peers[(self.me + k) % len(peers)] for k in range(1, len(peers))]
        self.clock = clock
        self.recorder = recorder
        self.tick_ns = tick_ns
        self.clients: dict[int, Address] = {}
        self.reassembler = Reassembler()
        self.stats = NodeStats()
        self.transport: Datagrams | None = None
        self._message_id = 0
        self.failed: BaseException | None = None
        self._synced_for = 0  # the replica's checkpoint the record was last synced for

    def begin(self, transport: Datagrams) -> None:
        """The socket is bound: record the incarnation's start and start the replica."""
        self.transport = transport
        now = self.clock.now_ns()
        if self.recorder is not None:
            self.recorder.start(now)
        self._run(self.replica.start, now)
        self.stats.started_from_checkpoint = getattr(self.replica, "checkpointed", 0)

    def _decoded(self, data: bytes, addr: Address, decoder: Callable[[bytes], object]
                 ) -> object | None:
        """The message a datagram completes (None while fragments are missing); what is not
        our framing or does not decode is counted as garbage."""
        self.stats.datagrams_received += 1
        before = self.reassembler.malformed
        whole = self.reassembler.feed(data, addr)
        if whole is None:
            self.stats.garbage += self.reassembler.malformed - before
            return None
        try:
            return decoder(whole)
        except (msgspec.DecodeError, msgspec.ValidationError):
            self.stats.garbage += 1
            return None

    def on_datagram(self, data: bytes, addr: Address) -> None:
        message = self._decoded(data, addr, decode)
        kind = type(message)  # decoded: exact types (see Replica.on_message)
        if message is None or kind is Reply or kind is ReplyBatch:
            return  # garbage, or a client's
        if kind is Hello:
            if message.cluster == self.replica.config.cluster and 0 < message.count <= HELLO_MAX:
                self.clients.update(dict.fromkeys(
                    range(message.first_id, message.first_id + message.count), addr))
            return
        if kind is Request:
            self.clients[message.client_id] = addr
        elif kind is RequestBatch:
            for request in message.requests:
                self.clients[request.client_id] = addr
        self._run(self.replica.on_message, message, self.clock.now_ns())

    def _run(self, step: Callable[..., list[Outbox]], *args: object) -> None:
        if self.failed is not None:
            return
        try:
            out = step(*args)
            self.execute(out)
            self.after_step()
        except BaseException as exc:  # a replica bug: stop serving, let the owner exit
            self.failed = exc
            self.on_failure(exc)

    def on_tick(self) -> None:
        if self.recorder is not None and self.compacts:
            self._release()
        self._run(self.replica.on_tick, self.clock.now_ns())

    def _release(self) -> None:
        """The record is the replica's application: the replica may release what the record
        made durable (compaction). Each checkpoint the replica takes (a rare event) starts a
        background fsync of the record, which then covers the checkpoint: compaction never
        waits on the record for long, and no step waits on an fsync. Once a tick, not once a
        step: a millisecond's delay costs compaction nothing."""
        replica, recorder = self.replica, self.recorder
        assert recorder is not None
        if recorder.durable > replica.released:
            replica.release(recorder.durable)
        if replica.checkpointed > self._synced_for and recorder.sync_in_background():
            self._synced_for = replica.checkpointed  # else: asked again at the next tick

    def after_step(self) -> None:
        """Once a step's outbox is out: the storage writes it held back, then the counters."""
        replica = self.replica
        replica.storage.drain()
        self.stats.view = replica.view
        self.stats.status = int(replica.status)
        self.stats.log_base = replica.log.base

    def on_failure(self, exc: BaseException) -> None:
        """A driver's hook: the replica raised and the node stopped stepping."""

    def execute(self, out: list[Outbox]) -> None:
        """Backup acknowledgements, committed records (to the OS), the leader's replies grouped per
        client address, then sends in outbox order.

        Acknowledgements are about entries not known to be committed, so no record need come
        first: they go before the records are written (a backup's acknowledgement is on a
        client's commit path). A client never hears of a commit the replica's record (the
        checker's oracle, and the embedding application's hook) does not hold yet, even if the
        replica is killed right after replying; replies answer committed entries only, so
        sending them ahead of the step's Prepares and Commits changes no guarantee and takes
        those sends off their path.
        """
        committed: list[Committed] = []
        replies: dict[Address, list[Reply]] = {}
        acks: dict[Address, list[Reply]] = {}
        to_peers: list[Outbox] = []
        n = len(self.peers)
        for item in out:
            kind = type(item)  # the replica's outbox items are of their exact types
            if kind is Send or kind is Broadcast:
                to_peers.append(item)
            elif kind is ToClient:
                addr = self.clients.get(item.client_id)  # type: ignore[union-attr]
                if addr is not None:
                    reply: Reply = item.message  # type: ignore[union-attr,assignment]
                    group = replies if reply.replica == reply.view % n else acks
                    group.setdefault(addr, []).append(reply)
            elif kind is Committed:
                committed.append(item)  # type: ignore[arg-type]
        for addr, group in acks.items():
            self._send_replies(group, addr)
        if committed:
            self.stats.committed += len(committed)
            recorder = self.recorder
            if recorder is not None:
                recorder.committed_all(committed, self.clock.now_ns())
                recorder.flush()
        for addr, group in replies.items():
            self._send_replies(group, addr)
        if to_peers:
            self._send_peers(to_peers, encode)

    def _send_peers(self, out: list[Outbox], encoder: Callable[[object], bytes]) -> None:
        """The step's replica messages, in outbox order (a broadcast goes to every other)."""
        for item in out:
            kind = type(item)  # exact types (an isinstance on a Struct class costs 5x)
            if kind is Send:
                self._send(encoder(item.message), [self.peers[item.to]])
                self.stats.peer_messages_sent += 1
            elif kind is Broadcast:
                self._send(encoder(item.message), self.others)
                self.stats.peer_messages_sent += len(self.others)

    def _send_replies(self, group: list[Reply], addr: Address) -> None:
        """One datagram per :data:`REPLIES_PER_DATAGRAM` replies to one client process."""
        self.stats.replies_sent += len(group)
        if len(group) == 1:
            self._send(encode(group[0]), [addr])
            return
        cluster = self.replica.config.cluster
        for i in range(0, len(group), REPLIES_PER_DATAGRAM):
            batch = ReplyBatch(cluster, self.me, tuple(group[i:i + REPLIES_PER_DATAGRAM]))
            self._send(encode(batch), [addr])

    def _send(self, data: bytes, addresses: list[Address]) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        self._message_id += 1
        datagrams, sent = send_message(transport, data, self._message_id, addresses)
        self.stats.datagrams_sent += datagrams
        self.stats.bytes_sent += sent

    def dump_stats(self, path: Path) -> None:
        """Write the counters atomically (a reader never sees half a file)."""
        if self.compacts:
            self.stats.compacted = self.replica.storage.compacted
        tmp = Path(f"{path}.tmp")
        tmp.write_bytes(msgspec.json.encode(self.stats))
        os.replace(tmp, path)
