"""The Byzantine-tolerant mode's figures for ``agora bench consensus``: n = 3f + 1 PBFT replica
processes (``replica_main --mode bft``, MACs in the normal case) on loopback.

- commit latency p50/p99/p99.9 of a blocking proposer (:class:`BftSyncClient`: one request at a
  time, one per millisecond, settled by f + 1 matching replies), the crash mode's
  blocking-proposer figure's counterpart;
- datagrams per decision (every replica's, during that phase, plus the client's broadcasts);
- deadline-miss rate at 250 us, 1 ms and 5 ms budgets (``bft/deadline.py``: the verdict waits
  for a certificate of 2f + 1 replicas' timings in a later batch, one more PBFT round when the
  proposer is the only load), and the commit latency of requests that carry a budget;
- failover gap: SIGKILL the primary while the proposer commits back to back; the longest wait
  for a reply around the kill (the backups' request timer, ``--request-timeout-us``, then the
  view change).

No baseline is run for this mode (the issue names none); the crash mode's table gives the floor.
"""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

from agora.core.clock import WallClock
from agora.decision.bft.auth import Keyring
from agora.decision.transport.bft_sync_client import BftSyncClient
from agora.decision.transport.cluster import ProcessCluster

CLOCK = WallClock()
REQUEST_TIMEOUT_US = 20_000


def bft_cluster(root: Path, n: int, secret: bytes) -> ProcessCluster:
    secret_file = root / "secret"
    root.mkdir(parents=True, exist_ok=True)
    secret_file.write_bytes(secret)
    return ProcessCluster(root, n, extra=[
        "--mode", "bft", "--secret-file", str(secret_file),
        "--request-timeout-us", str(REQUEST_TIMEOUT_US)])


def _datagrams(cluster: ProcessCluster) -> int:
    cluster.request_stats()
    time.sleep(0.2)  # the replicas write stats.json when their poll returns
    return cluster.datagrams_sent()


def _failover_ms(cluster: ProcessCluster, client: BftSyncClient) -> float:
    """The longest reply gap around a SIGKILL of the primary of view 0 (ms)."""
    replies: list[int] = []
    stop = threading.Event()

    def load() -> None:
        i = 0
        while not stop.is_set():
            client.commit(b"failover-%d" % i)
            replies.append(time.perf_counter_ns())
            i += 1

    thread = threading.Thread(target=load)
    thread.start()
    time.sleep(0.3)
    killed = time.perf_counter_ns()  # a SIGKILLed process runs no more code once sent
    cluster.signal(0, signal.SIGKILL, wait=False)
    time.sleep(0.7)
    cluster.procs[0].wait(timeout=10)
    stop.set()
    thread.join(timeout=30)
    after = [t for t in replies if t > killed]
    if not after:
        return float("nan")
    before = max((t for t in replies if t <= killed), default=killed)
    gaps = [b - a for a, b in zip([before, *after], after, strict=False)]
    return max(gaps) / 1e6


def measure(root: Path, *, n: int = 4, requests: int = 2_000, warmup: int = 200) -> dict:
    """Latency samples (ns), datagrams per decision and the failover gap of one cluster."""
    secret = b"agora-bench-bft-" + str(time.time_ns()).encode()
    with bft_cluster(root, n, secret) as cluster:
        cluster.start()
        with BftSyncClient(cluster.cluster, cluster.peers, CLOCK, Keyring(secret, n)) as client:
            for i in range(warmup):
                client.commit(b"warm-%d" % i)
            before = _datagrams(cluster) + client.datagrams_sent
            samples = []
            for i in range(requests):
                time.sleep(0.001)
                start = time.perf_counter_ns()
                client.commit(b"bft-%d" % i)
                samples.append(time.perf_counter_ns() - start)
            sent = _datagrams(cluster) + client.datagrams_sent - before
            misses, budgeted = _deadlines(client, max(100, requests // 10))
            failover = _failover_ms(cluster, client)
    return {"samples": samples, "msgs_per_decision": sent / requests, "failover_ms": failover,
            "misses": misses, "budgeted_samples": budgeted}


DEADLINE_BUDGETS_US = (250, 1_000, 5_000)


def _deadlines(client: BftSyncClient, tries: int) -> tuple[dict[int, float], list[int]]:
    """Miss rate per budget (abandoned replies; every request is answered, with its verdict)
    and the latency samples of the requests with the largest budget."""
    misses: dict[int, float] = {}
    samples: list[int] = []
    for budget_us in DEADLINE_BUDGETS_US:
        missed = 0
        for i in range(tries):
            time.sleep(0.001)
            start = time.perf_counter_ns()
            reply = client.commit(b"deadline-%d-%d" % (budget_us, i), budget_ns=budget_us * 1_000)
            if budget_us == DEADLINE_BUDGETS_US[-1]:
                samples.append(time.perf_counter_ns() - start)
            missed += reply.abandoned
        misses[budget_us] = missed / tries
    return misses, samples
