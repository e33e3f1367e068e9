"""The deterministic simulator of the consensus layer (TigerBeetle's VOPR, in Python).

One process runs a whole cluster: sans-IO replicas, clients, simulated disks that lose unsynced
writes on a crash (``storage.py``), per-replica drifting and jumping clocks (``clock.py``) and a
network that drops, delays (heavy-tailed), duplicates, reorders and partitions (``network.py``),
all driven by one seeded ``random.Random`` in one event loop (``cluster.py``). The checker
(``checker.py``) sits outside the replicas and sees only their outputs and the clients' requests.
``swarm.py`` draws the fault rates from a seed and runs a safety phase, a heal and a liveness
phase; ``sweep.py`` spreads seeds over every core (results in seed order) and ``agora sim`` is
the command line. Every failure names its seed and replays exactly.

A canary (``Canary`` in the replica config) breaks the protocol on purpose; the swarm must catch
it on a few seeds, which is the evidence that the checker can fail.
"""

from agora.decision.sim.checker import Checker
from agora.decision.sim.cluster import Cluster, ClusterOptions
from agora.decision.sim.network import NetworkOptions
from agora.decision.sim.swarm import RunResult, SimOptions, options_swarm, run, run_seed

__all__ = [
    "Checker",
    "Cluster",
    "ClusterOptions",
    "NetworkOptions",
    "RunResult",
    "SimOptions",
    "options_swarm",
    "run",
    "run_seed",
]
