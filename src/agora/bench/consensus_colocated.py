"""Commit latency of a proposer inside a replica's process, as a decision node's agents propose.

Run as ``python -m agora.bench.consensus_colocated``. ``agora bench consensus`` times a
*separate* blocking proposer process: its commit takes three hops (proposer -> leader ->
acknowledging backup -> proposer), each a process wake-up. A decision node
(``agora.trading.decision_node``) runs its agents in its replica's own process and event loop
instead, so on two of the three nodes of n = 3 a commit needs one hop less between processes: on
the leader's node a proposal reaches the leader without leaving the process, and on the
acknowledging backup's node the acknowledgement does. Only the third node's proposals take three
hops. Whether that saves time depends on what the shared process and its event loop cost, which
is what this measures.

This measures that placement: n = 3 replica processes on the asyncio driver a decision node runs
(``--io asyncio``, the benchmark's batching options), each also running a proposer, a
:class:`~agora.decision.transport.client.ClusterClient` in the replica's event loop, as the agent
host's is. On its turn (SIGUSR2 from this driver, one node at a time) a node's proposer commits
``count`` requests one at a time, one per millisecond, after ``warmup`` unrecorded ones, and
writes the latencies (submit to the settled reply, on its loop) to its directory. Beside them, in
the same run: the blocking proposer of ``agora bench consensus`` against this cluster (three
hops), and the UDP floors one per millisecond over two and three hops, unpinned and with every
process on one vCPU (``placement``).

Ends with a ``RESULT {json}`` line. Its figures are p50/p99 per role (leader's node, acknowledging
backup's node, third node) and for the separate proposer. The ``agora bench consensus`` target
(n = 3 commit p50 <= 200 us) is stated there for the separate proposer: this adds how an agent of
each node fares, not a replacement for it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import tempfile
import time
import traceback
from pathlib import Path

from agora.bench.consensus import REPLICA_OPTIONS, _sync_latency, udp_floor
from agora.bench.latency import percentiles
from agora.bench.placement import one_vcpu
from agora.core.clock import WallClock
from agora.decision.transport import replica_main
from agora.decision.transport.client import ClusterClient
from agora.decision.transport.cluster import ProcessCluster

RESULT_FILE = "colocated.json"
REPLICA_FLAG = "--colocated-replica"  # the driver starts the replica processes with it
ROLES = ("leader", "acker", "third")


# ---------------------------------------------------------------- inside a replica process


async def _propose(args: argparse.Namespace) -> None:
    """One turn: ``args.warmup`` then ``args.count`` commits, one at a time, one per ms; the
    latencies and the view of the last reply go to ``RESULT_FILE`` in the replica's directory."""
    peers = replica_main.parse_peers(args.peers)
    client = await ClusterClient.connect(args.cluster, peers, WallClock(), pool=1)
    samples: list[int] = []
    view = 0
    try:
        for i in range(args.warmup + args.count):
            await asyncio.sleep(0.001)
            started = time.perf_counter_ns()
            outcome = await client.submit(b"colocated-%d-%d" % (args.id, i))
            if i >= args.warmup:
                samples.append(time.perf_counter_ns() - started)
            if outcome.reply is not None:
                view = outcome.reply.view
    finally:
        client.close()
    path = args.dir / RESULT_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"replica": args.id, "view": view, "latencies_ns": samples}))
    tmp.replace(path)


async def _serve(args: argparse.Namespace) -> int:
    loop = asyncio.get_running_loop()
    turns: set[asyncio.Task[None]] = set()

    def finished(task: asyncio.Task[None]) -> None:
        turns.discard(task)
        if not task.cancelled() and task.exception() is not None:  # the driver times out
            traceback.print_exception(task.exception(), file=sys.stderr)

    def turn() -> None:
        task = loop.create_task(_propose(args))
        turns.add(task)
        task.add_done_callback(finished)

    loop.add_signal_handler(signal.SIGUSR2, turn)
    return await replica_main.main(args)


def replica(argv: list[str]) -> int:
    """A replica process (``--io asyncio``) with a proposer in its loop, started by SIGUSR2."""
    parser = replica_main.build_parser()
    parser.add_argument("--count", type=int, default=3_000)
    parser.add_argument("--warmup", type=int, default=300)
    args = parser.parse_args(argv)
    replica_main.check_counts(parser, args)
    if args.io != "asyncio" or args.mode != "cft":
        parser.error("the co-located proposer runs beside a crash-mode replica on --io asyncio")
    return replica_main.start(_serve(args))


# ---------------------------------------------------------------- the driver


def _settle(cluster: ProcessCluster) -> int:
    """A few commits from a separate client, so the cluster has its leader; its view."""
    async def commits() -> int:
        client = await ClusterClient.connect(cluster.cluster, cluster.peers, WallClock(),
                                             pool=1)
        try:
            view = 0
            for i in range(200):
                outcome = await client.submit(b"settle-%d" % i)
                view = outcome.reply.view if outcome.reply is not None else view
            return view
        finally:
            client.close()
    return asyncio.run(commits())


def _turn(cluster: ProcessCluster, replica: int, timeout_s: float) -> dict:
    path = cluster.directory(replica) / RESULT_FILE
    path.unlink(missing_ok=True)
    cluster.signal(replica, signal.SIGUSR2, wait=False)
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        if time.monotonic() > deadline:
            raise RuntimeError(f"replica {replica}'s proposer gave no result in {timeout_s} s")
        time.sleep(0.05)
    return json.loads(path.read_text())


def measure(count: int = 3_000, warmup: int = 300) -> dict:
    """The figures of the module notes (see there)."""
    figures: dict = {"count": count}
    for hops in (2, 3):
        figures[f"udp_{hops}hops_1ms_p50_us"] = percentiles(
            udp_floor(count, gap_s=0.001, hops=hops))[0]
        cpus = one_vcpu()
        if cpus is not None:
            figures[f"udp_{hops}hops_1ms_one_vcpu_p50_us"] = percentiles(
                udp_floor(count, gap_s=0.001, hops=hops, cpus=cpus))[0]
    with tempfile.TemporaryDirectory() as tmp, ProcessCluster(
            Path(tmp), 3, module="agora.bench.consensus_colocated",
            extra=(REPLICA_FLAG, "--io", "asyncio", *REPLICA_OPTIONS, "--count", str(count),
                   "--warmup", str(warmup))) as cluster:
        cluster.start()
        view = _settle(cluster)
        leader = view % 3
        roles = {leader: "leader", (leader + 1) % 3: "acker", (leader + 2) % 3: "third"}
        for r in range(3):
            result = _turn(cluster, r, timeout_s=60 + count * 0.01)
            if result["view"] != view:
                raise RuntimeError(f"the view changed during the run ({view} -> "
                                   f"{result['view']}): the roles no longer hold")
            p50, p99, _ = percentiles(result["latencies_ns"])
            figures[f"{roles[r]}_node_p50_us"], figures[f"{roles[r]}_node_p99_us"] = p50, p99
        sync = _sync_latency(cluster, count, warmup)
        figures["separate_proposer_p50_us"], figures["separate_proposer_p99_us"], _ = \
            percentiles(sync)
    return {k: round(v, 1) if isinstance(v, float) else v for k, v in figures.items()}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if REPLICA_FLAG in argv:  # a process ProcessCluster started (its options come first)
        return replica([a for a in argv if a != REPLICA_FLAG])
    parser = argparse.ArgumentParser(prog="python -m agora.bench.consensus_colocated",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=3_000, help="commits per node")
    parser.add_argument("--warmup", type=int, default=300, help="unrecorded commits first")
    args = parser.parse_args(argv)
    if args.count < 10 or args.warmup < 0:
        parser.error("--count must be >= 10 and --warmup >= 0")
    figures = measure(args.count, args.warmup)
    for role in ROLES:
        print(f"proposer on the {role}'s node: p50 {figures[f'{role}_node_p50_us']:,.1f} us, "
              f"p99 {figures[f'{role}_node_p99_us']:,.1f} us")
    print(f"separate blocking proposer (three hops): p50 "
          f"{figures['separate_proposer_p50_us']:,.1f} us, p99 "
          f"{figures['separate_proposer_p99_us']:,.1f} us")
    print("UDP floors one per ms, p50: " + ", ".join(
        f"{k[4:].replace('_p50_us', '')} {v:,.1f} us" for k, v in figures.items()
        if k.startswith("udp_")))
    print("RESULT " + json.dumps(figures), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
