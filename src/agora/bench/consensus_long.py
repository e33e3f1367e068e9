"""The decision log after a long session (``agora bench consensus --long-log N``).

The benchmark's other phases run on a few thousand entries, where nothing that grows with the
log shows. Here a fresh n = 3 cluster (real processes, the benchmark's replica options) commits
``entries`` decisions of 94 bytes at ``rate`` per second, then reports what a long session costs:
each replica's resident memory, the failover gap after SIGKILL of the leader (measured as the
benchmark's own failover), and the killed replica's restart: the time until it is serving again
and until its committed record has caught up with the cluster, and its resident memory then
(a restart that loaded its whole log at once stayed at that load's peak). And the disk: each
replica's log file, its length and the blocks it holds (compaction frees the prefix below
every replica's durable checkpoint, so the blocks stay near a few checkpoint intervals while
the length, which compaction leaves as it is, grows with the session), and the whole directory
(the committed record, the application's, still holds the session).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import uvloop

from agora.bench.consensus import CLOCK, REPLICA_OPTIONS, _failover
from agora.decision.transport.client import ClusterClient, open_loop
from agora.decision.transport.cluster import ProcessCluster


def log_disk_mb(directory: Path) -> tuple[float, float]:
    """A replica's log file: (its length, the disk blocks it holds), in MB."""
    stat = (directory / "storage" / "log").stat()
    return stat.st_size / 1e6, stat.st_blocks * 512 / 1e6


def directory_disk_mb(directory: Path) -> float:
    """The disk blocks a replica's whole directory holds, in MB: its committed record (the
    application's, which compaction leaves whole) and the rest beside its log."""
    return sum(path.stat().st_blocks for path in directory.rglob("*") if path.is_file()) \
        * 512 / 1e6


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


async def commit_session(client: ClusterClient, entries: int, rate: int) -> None:
    """``entries`` decisions of 94 bytes at ``rate`` per second, a second of load at a time;
    raises if any of them went unanswered."""
    done = 0
    while done < entries:
        count = min(rate, entries - done)
        outcomes = await open_loop(client, CLOCK, rate=rate, count=count, timeout_s=20,
                                   payload=lambda i, d=done: b"decision %08d " % (d + i)
                                   + b"x" * 80)
        if any(o.reply is None for o in outcomes):
            raise RuntimeError("the long-session load was not all answered")
        done += count


async def restart_and_catch_up(cluster: ProcessCluster, replica: int) -> tuple[float, float,
                                                                               float]:
    """Start the killed ``replica`` again on its directory: (seconds until it serves, until its
    committed record holds what the others' did, its RSS in MB then)."""
    target = max(cluster.last_index(r) for r in range(cluster.n) if r != replica)
    started = time.perf_counter()
    cluster.start(replica)
    ready_s = time.perf_counter() - started
    while cluster.last_index(replica) < target and time.perf_counter() - started < 120:
        await asyncio.sleep(0.02)
    return ready_s, time.perf_counter() - started, rss_mb(cluster.procs[replica].pid)


async def _measure(root: Path, entries: int, rate: int, fsync: str) -> dict:
    with ProcessCluster(root, 3, fsync=fsync, extra=REPLICA_OPTIONS) as cluster:
        cluster.start()
        client = await ClusterClient.connect(cluster.cluster, cluster.peers, CLOCK, pool=1024,
                                             keep_log=True)
        try:
            await commit_session(client, entries, rate)
            await asyncio.sleep(0.5)
            rss = [rss_mb(cluster.procs[r].pid) for r in range(cluster.n)]
            disk = [log_disk_mb(cluster.directory(r)) for r in range(cluster.n)]
            whole = [directory_disk_mb(cluster.directory(r)) for r in range(cluster.n)]
            killed = client.view % cluster.n
            failover_ms = await _failover(cluster, client, 1_000)
            ready_s, caught_up_s, restarted_rss = await restart_and_catch_up(cluster, killed)
        finally:
            client.close()
    return {"entries": entries, "rss_mb": rss, "log_size_mb": [size for size, _ in disk],
            "log_disk_mb": [held for _, held in disk], "directory_disk_mb": whole,
            "failover_ms": failover_ms,
            "restart_ready_s": ready_s, "restart_caught_up_s": caught_up_s,
            "restarted_rss_mb": restarted_rss}


def measure(root: Path, entries: int, rate: int = 20_000, fsync: str = "none") -> dict:
    """The long-session figures of a fresh cluster under ``root`` (see the module notes)."""
    return uvloop.run(_measure(root, entries, rate, fsync))
