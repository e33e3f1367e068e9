"""The Byzantine mode after a long session: ``python -m agora.bench.consensus_bft_long``.

The twin of ``consensus_long.py`` for ``--mode bft``: a fresh n = 4 PBFT cluster (real replica
processes, MACs, fsync none) commits ``requests`` decisions of 94 bytes at ``rate`` per second
through the asyncio client pool, then a backup is SIGKILLed and started again on its directory.
Reported: each replica's resident memory after the load, and the killed replica's restart: the
time until it is serving again (its process printed ``ready``: the restart's replay is done)
and until its committed record has caught up with the others, and its resident memory then.

``python -m agora.bench.consensus_bft_long [--requests N] [--rate R]``; ends with ``RESULT
{json}``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import tempfile
import time
from pathlib import Path

import uvloop

from agora.bench.consensus_bft import bft_cluster
from agora.bench.consensus_long import commit_session, restart_and_catch_up, rss_mb
from agora.core.clock import WallClock
from agora.decision.bft.auth import Keyring
from agora.decision.transport.bft_client import BftClusterClient

CLOCK = WallClock()
N = 4
KILLED = 2  # a backup of view 0: its restart, not a view change, is what is timed


async def _measure(root: Path, requests: int, rate: int) -> dict:
    secret = b"agora-bench-bft-long-" + str(time.time_ns()).encode()
    with bft_cluster(root, N, secret) as cluster:
        cluster.start()
        client = await BftClusterClient.connect(cluster.cluster, cluster.peers, CLOCK,
                                                keyring=Keyring(secret, N), pool=256)
        try:
            await commit_session(client, requests, rate)
            await asyncio.sleep(0.5)
            rss = [rss_mb(cluster.procs[r].pid) for r in range(N)]
            cluster.signal(KILLED, signal.SIGKILL)
            ready_s, caught_up_s, restarted_rss = await restart_and_catch_up(cluster, KILLED)
        finally:
            client.close()
    return {"requests": requests, "rss_mb": rss, "restart_ready_s": ready_s,
            "restart_caught_up_s": caught_up_s, "restarted_rss_mb": restarted_rss}


def measure(root: Path, requests: int, rate: int = 2_000) -> dict:
    """The long-session figures of a fresh PBFT cluster under ``root`` (module notes)."""
    return uvloop.run(_measure(root, requests, rate))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m agora.bench.consensus_bft_long",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=60_000)
    parser.add_argument("--rate", type=int, default=2_000, help="requests per second")
    args = parser.parse_args(argv)
    if args.requests < 1 or args.rate < 1:
        parser.error("--requests and --rate must be >= 1")
    with tempfile.TemporaryDirectory(prefix="agora-bft-long-") as tmp:
        result = measure(Path(tmp), args.requests, args.rate)
    print(f"PBFT n = 4 after {result['requests']:,} requests: replica RSS "
          f"{max(result['rss_mb']):.1f} MB; a killed backup serving again after "
          f"{result['restart_ready_s']:.2f} s, caught up after "
          f"{result['restart_caught_up_s']:.2f} s, RSS then {result['restarted_rss_mb']:.1f} MB")
    print("RESULT " + json.dumps({
        "bft_long_requests": result["requests"],
        "bft_long_rss_mb_max": round(max(result["rss_mb"]), 1),
        "bft_long_restart_ready_s": round(result["restart_ready_s"], 3),
        "bft_long_restart_caught_up_s": round(result["restart_caught_up_s"], 3),
        "bft_long_restarted_rss_mb": round(result["restarted_rss_mb"], 1)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
