"""Byzantine-fault-tolerant mode of the decision log: PBFT with n = 3f + 1, sans-IO.

The same shape as the crash-tolerant ``consensus`` package (a replica is a pure state machine
from message or tick and local time to an outbox of ``Send``/``Broadcast``/``ToClient``/
``Committed``), for a fault model where up to f replicas may do anything: lie, equivocate,
forge, replay, stay silent. Guarantees among the correct replicas, with ``n = 3f + 1`` and any
network behaviour: agreement and total order of executed batches, validity (only requests a
client really sent, authenticated by the client's MACs, byte for byte), integrity (a request
executes at most once); liveness once the network delivers within the timeouts.

Parts: ``messages.py`` (wire types, digests, checkpoint chain), ``auth.py`` (keys, MACs and
signatures), ``replica.py`` (normal case, checkpoints, state transfer, view-change driving),
``view_change.py`` (the P/Q-set decision rule, pure), ``suspicion.py`` (a view is left once
f + 1 replicas' timers ran out in it), ``deadline.py`` (deadline verdicts from
2f + 1 replicas' own clocks, certified into the log), ``storage.py``, ``durable.py`` and
``snapshot.py`` (crash-restart from each replica's records, from its latest restart snapshot),
``executed.py`` and ``kept.py`` (the executed batches and the stable checkpoints kept for
state transfer, in bounded memory), ``client.py``, ``config.py``. The transport is
``decision.transport.bft_node``.

Not supported yet (say so, don't guess): compaction (the record file keeps every batch: a
replica far behind is filled from it, as there is no transfer of a snapshot between replicas),
reconfiguration and key rotation (every key derives from one cluster secret).
"""

from agora.decision.bft.auth import Keyring
from agora.decision.bft.client import BftClient
from agora.decision.bft.config import AuthMode, BftCanary, BftConfig
from agora.decision.bft.replica import BftReplica, BftStats, Phase

__all__ = ["AuthMode", "BftCanary", "BftClient", "BftConfig", "BftReplica", "BftStats",
           "Keyring", "Phase"]
