"""A cluster of replica processes on loopback, for tests and benchmarks: start, kill, pause, check.

Each replica is ``python -m agora.decision.transport.replica_main`` with its own directory under
``root``; :meth:`ProcessCluster.check` feeds every replica's committed record, plus what the
client submitted and was told, to the simulator's :class:`~agora.decision.sim.checker.Checker`
(the same oracle the simulated swarm uses, outside the replicas).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from agora.core.ports import unused_ports
from agora.decision.consensus.messages import Reply, Request
from agora.decision.sim.checker import Checker
from agora.decision.transport.framing import Address
from agora.decision.transport.record import Record, read_records


def free_udp_ports(count: int) -> list[int]:
    """Free loopback ports outside the ephemeral range (``core.ports``: a client socket's
    automatic port can never take them between this check and the replica's bind)."""
    return unused_ports(count)


class ProcessCluster:
    def __init__(self, root: Path, n: int, *, fsync: str = "none", cluster: int = 1,
                 extra: Sequence[str] = (),
                 module: str = "agora.decision.transport.replica_main",
                 per_replica: Callable[[int], Sequence[str]] | None = None,
                 peers: Sequence[Address] | None = None) -> None:
        """``module`` and ``per_replica`` (options for one replica) start a program that embeds
        the replica, such as ``agora.trading.decision_node``; ``peers``: the replicas'
        addresses (default: free ports on 127.0.0.1)."""
        self.root = Path(root)
        self.n = n
        self.fsync = fsync
        self.cluster = cluster
        self.extra = list(extra)
        self.module = module
        self.per_replica = per_replica
        self.peers: list[Address] = (list(peers) if peers is not None
                                     else [("127.0.0.1", p) for p in free_udp_ports(n)])
        self.procs: dict[int, subprocess.Popen[str]] = {}

    def launcher(self, replica: int) -> list[str]:
        """What runs a replica's Python (a subclass may wrap it, e.g. in a network namespace)."""
        return [sys.executable]

    def directory(self, replica: int) -> Path:
        return self.root / f"r{replica}"

    def start(self, replica: int | None = None) -> None:
        """Start one replica (or all) and wait until each says ``ready``."""
        started = list(range(self.n)) if replica is None else [replica]
        peers = ",".join(f"{h}:{p}" for h, p in self.peers)
        for i in started:
            old = self.procs.get(i)
            if old is not None:
                if old.poll() is None:
                    raise RuntimeError(f"replica {i} is still running")
                if old.stdout is not None:
                    old.stdout.close()
            own = self.per_replica(i) if self.per_replica is not None else ()
            self.procs[i] = subprocess.Popen(
                [*self.launcher(i), "-m", self.module, "--id", str(i),
                 "--peers", peers, "--dir", str(self.directory(i)), "--fsync", self.fsync,
                 "--cluster", str(self.cluster), *self.extra, *own],
                stdout=subprocess.PIPE, text=True)
        for i in started:
            stdout = self.procs[i].stdout
            assert stdout is not None
            line = stdout.readline()
            if line.strip() != "ready":
                raise RuntimeError(f"replica {i} did not start (exit {self.procs[i].poll()})")

    def signal(self, replica: int, sig: signal.Signals, *, wait: bool = True) -> None:
        """Send ``sig``; after SIGKILL, wait for the process to be gone unless ``wait`` is
        False (a benchmark's client must not stall while the kernel tears the process down:
        a replica with a long log took 65 ms to exit, flushing its files)."""
        self.procs[replica].send_signal(sig)
        if sig is signal.SIGKILL and wait:
            self.procs[replica].wait(timeout=10)

    def alive(self) -> list[int]:
        return [i for i, p in self.procs.items() if p.poll() is None]

    def request_stats(self) -> None:
        """Ask every live replica to write its counters (SIGUSR1); each does when its poll
        returns, within a tick or so."""
        for replica in self.alive():
            self.signal(replica, signal.SIGUSR1)

    def datagrams_sent(self) -> int:
        """All replicas' datagrams sent, by their last written counters."""
        return sum(self.stats(r).get("datagrams_sent", 0) for r in range(self.n))

    def stats(self, replica: int) -> dict:
        path = self.directory(replica) / "stats.json"
        return json.loads(path.read_text()) if path.exists() else {}

    def stop(self) -> dict[int, int | None]:
        """SIGCONT then SIGTERM every live replica; returns their exit codes."""
        codes: dict[int, int | None] = {}
        for proc in self.procs.values():
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGCONT)
                proc.terminate()
        for i, proc in self.procs.items():
            try:
                codes[i] = proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                codes[i] = proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
        return codes

    def records(self, replica: int) -> list[Record]:
        return read_records(self.directory(replica) / "committed.log")

    def last_index(self, replica: int) -> int:
        last = 0
        for record in self.records(replica):
            last = record.item.index if record.item is not None else record.applied
        return last

    def check(self, submitted: Iterable[Request], replies: Iterable[Reply], *,
              replicas: Iterable[int] | None = None, checker: Checker | None = None) -> Checker:
        """Run the checker over the replicas' records (every replica's, or those of
        ``replicas``: the correct ones of a Byzantine-mode cluster) and the client's log (a reply
        naming an index no record holds yet keeps ``converged`` False, see
        ``Checker.on_reply``)."""
        checker = checker if checker is not None else Checker()
        for request in submitted:
            checker.on_submit(request.client_id, request.request_number, request.payload,
                              request.budget_ns)
        for replica in range(self.n) if replicas is None else replicas:
            for record in self.records(replica):
                if record.item is None:
                    checker.on_start(replica, record.applied)
                else:
                    checker.on_committed(replica, record.item)
        for reply in replies:
            checker.on_reply(reply)
        return checker

    def __enter__(self) -> ProcessCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
