"""Crash-fault-tolerant consensus for the decision log: Viewstamped Replication Revisited.

Why VR rather than Raft: VR's leader is a function of the view number (``view mod n``), so a
view change needs no vote on candidates' logs and no election timeout race on log freshness; the
new leader merges the logs it is sent, which keeps the normal path (Prepare / PrepareOk / Commit)
as small as Raft's while making state transfer and the recovery of a replica whose disk lost a
tail (VR's recovery protocol) first-class parts of the protocol, which is what a low-latency
deployment that does not fsync on every op needs.

What it guarantees, with ``n = 2f + 1`` replicas, at most ``f`` of them crashed or recovering at
once, and a network that may drop, delay, duplicate and reorder messages and partition replicas:
agreement (no two replicas commit different entries at one index), total order, validity (only
submitted requests commit, byte for byte), integrity (a ``(client, request number)`` commits at
most once) and deadline agreement (every replica abandons the same requests, decided from the log
alone: ``deadline.py``). Liveness needs a period in which a majority can talk within the
timeouts. No clocks are synchronized; each replica compares only its own clock readings.

The parts: ``messages.py`` (wire types and codec), ``replica.py`` (the sans-IO state machine,
normal operation), ``view_change.py``, ``recovery.py``, ``deadline.py``, ``core.py`` (shared state
and apply), ``entry_log.py`` (the log in bounded memory), ``storage.py`` (the ``Storage``
interface, fsync policies), ``file_storage.py`` and ``compaction.py`` (the file implementation),
``checkpoint.py`` (restarts that start from a checkpoint of the client table), ``vote.py`` and
``frames.py`` (the files' formats), ``client.py`` (the sans-IO client), ``config.py``.

Elsewhere: the Byzantine mode (``agora.decision.bft``), the UDP transport and replica processes
(``agora.decision.transport``), the simulator (``agora.decision.sim``), the benchmark
(``agora bench consensus``). Compaction releases the log's prefix below every replica's
durable checkpoint (``core.py``). Not built yet: reconfiguration, and state transfer to a replica
whose disk was lost.
"""

from agora.decision.consensus.checkpoint import Checkpoint
from agora.decision.consensus.client import Client, ClientBusy
from agora.decision.consensus.config import Canary, ReplicaConfig
from agora.decision.consensus.core import InvariantViolation, ReplicaStats, Status
from agora.decision.consensus.file_storage import CompactedLogError, FileStorage
from agora.decision.consensus.messages import (
    Broadcast,
    Committed,
    Entry,
    Message,
    Outbox,
    Reply,
    Request,
    Send,
    ToClient,
    decode,
    encode,
)
from agora.decision.consensus.replica import Replica
from agora.decision.consensus.storage import (
    FsyncPolicy,
    MemoryStorage,
    Storage,
    Stored,
)

__all__ = [
    "Broadcast",
    "Canary",
    "Checkpoint",
    "Client",
    "ClientBusy",
    "Committed",
    "CompactedLogError",
    "Entry",
    "FileStorage",
    "FsyncPolicy",
    "InvariantViolation",
    "MemoryStorage",
    "Message",
    "Outbox",
    "Replica",
    "ReplicaConfig",
    "ReplicaStats",
    "Reply",
    "Request",
    "Send",
    "Status",
    "Storage",
    "Stored",
    "ToClient",
    "decode",
    "encode",
]
