"""Real processes for the sans-IO consensus: UDP on loopback (or a LAN), one replica per process.

Design notes:

* **One datagram per message**, the consensus codec (``consensus.messages.encode``) behind a
  one-byte frame kind. A message whose bytes exceed :data:`~agora.decision.transport.framing.CHUNK`
  (about 60 KB: a DoViewChange or StartView carrying a long log) is split into numbered fragments
  and reassembled by the receiver; a message with a lost fragment is simply lost, which the
  protocol already tolerates (every message it needs is retried). Reassembly state is bounded.
* **No extra reliability**: VR's own resends, view changes and state transfer recover from loss,
  duplication and reordering, so the transport is a thin pipe.
* **Two drivers, one node** (``node.py``): the standalone replica process serves its socket with
  a blocking ``recvfrom`` loop (``blocking.py``: one system call per wake-up), a program that
  embeds a replica beside other I/O uses the asyncio (uvloop) endpoint (``udp.py``).
* **Time** comes from a :class:`~agora.core.clock.Clock` (``WallClock`` in processes); the tick
  runs every ``tick_ns`` (a receive timeout in the blocking driver, a libuv timer of millisecond
  resolution on the event loop).
* **Committed log record**: each replica appends every ``Committed`` it emits (and a start marker
  per incarnation) to a framed file, flushed to the OS after every step, so a SIGKILL loses
  nothing already recorded and a test can run the simulator's ``Checker`` over all replicas'
  files. The record's last index is also the application's durable point (``applied_index``)
  passed to the next incarnation, which then emits exactly the indices after it.

* **Byzantine mode** (``bft_node.py``, ``replica_main --mode bft``): the PBFT replica on the
  same two drivers (:class:`BftNode` blocking, the standalone process's default;
  :class:`AsyncBftNode` on asyncio, which the decision node embeds), its messages authenticated
  inside the replica (MACs or signatures from the cluster secret); clients broadcast and settle
  on f + 1 matching replies (:class:`BftSyncClient` blocking, :class:`BftClusterClient` an
  asyncio pool).

Limitations: crash mode has no authentication (anyone on the port can inject), client
addresses are learned from their requests (a reply goes to the address of the last request from
that client id), no multicast, and record files grow without bound like the log itself.
"""

from agora.decision.transport.bft_client import BftClusterClient
from agora.decision.transport.bft_node import AsyncBftNode, BftNode
from agora.decision.transport.bft_sync_client import BftSyncClient
from agora.decision.transport.blocking import BlockingNode
from agora.decision.transport.client import ClusterClient, Outcome, open_loop
from agora.decision.transport.record import Record, Recorder, read_records
from agora.decision.transport.udp import ReplicaNode

__all__ = [
    "AsyncBftNode",
    "BftClusterClient",
    "BftNode",
    "BftSyncClient",
    "BlockingNode",
    "ClusterClient",
    "Outcome",
    "Record",
    "Recorder",
    "ReplicaNode",
    "open_loop",
    "read_records",
]
