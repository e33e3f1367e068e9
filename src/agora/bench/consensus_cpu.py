"""The consensus protocol's own CPU cost, without sockets: ``python -m agora.bench.consensus_cpu``.

n sans-IO replicas step in one process; every message goes through the wire codec (encode, then
decode at the receiver) and is delivered at once. The figure is the CPU time per committed request
summed over all replicas: what the protocol and codec cost, to set beside the end-to-end latency of
``agora bench consensus`` (the rest is transport: process wake-ups, syscalls, scheduling).

``--nodes COUNT`` measures instead what the three processes of an n = 3 cluster run, without
their sockets: :class:`NodeCore` (framing, codec, outbox execution) over a ``Replica`` with a
:class:`FileStorage` (fsync none) and a committed record each, and a sans-IO client, one request
at a time with a tick per request on every node, on a clock that moves a millisecond per
request (the benchmark's rate), so the replicas' timers fire alike in every run.
``benchmarks/consensus_instructions.py`` counts its instructions with callgrind.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import deque
from pathlib import Path

import msgspec

from agora.decision.consensus import (
    Broadcast,
    MemoryStorage,
    Replica,
    ReplicaConfig,
    Send,
    decode,
    encode,
)
from agora.decision.consensus.client import Client
from agora.decision.consensus.file_storage import FileStorage
from agora.decision.consensus.messages import Hello
from agora.decision.consensus.storage import FsyncPolicy
from agora.decision.transport.client import replies_in
from agora.decision.transport.framing import Address, Reassembler, frames
from agora.decision.transport.node import NodeCore
from agora.decision.transport.record import Recorder


def measure(n: int = 3, commits: int = 5_000, payload_bytes: int = 60) -> dict:
    config = ReplicaConfig(cluster=1, replica=0, n=n)
    replicas = {i: Replica(msgspec.structs.replace(config, replica=i), MemoryStorage())
                for i in range(n)}
    queue: deque[tuple[int, bytes]] = deque()
    now = 1_000  # one instant: no timeouts fire, only the normal path runs

    def route(sender: int, items: list) -> None:
        for item in items:
            if isinstance(item, Send):
                queue.append((item.to, encode(item.message)))
            elif isinstance(item, Broadcast):
                data = encode(item.message)
                queue.extend((r, data) for r in replicas if r != sender)

    def pump() -> int:
        delivered = 0
        while queue:
            to, data = queue.popleft()
            delivered += 1
            route(to, replicas[to].on_message(decode(data), now))
        return delivered

    for i, replica in replicas.items():
        route(i, replica.start(now))
    pump()
    payload = b"x" * payload_bytes
    messages = 0
    start = time.process_time()
    for k in range(1, commits + 1):
        route(0, replicas[0].submit(1_000 + k, 1, payload, 0, now))
        messages += pump()
    cpu = time.process_time() - start
    assert all(r.commit >= commits for r in replicas.values()), "not every request committed"
    return {
        "n": n,
        "commits": commits,
        "messages_per_commit": round(messages / commits, 2),
        "cpu_us_per_commit": round(cpu / commits * 1e6, 1),
        "cpu_us_per_message": round(cpu / messages * 1e6, 2),
    }


class _SteppedClock:
    """Time that moves only when the measurement says: a millisecond per request, so the
    replicas' timers (heartbeats, resends) fire the same way in every run, however slowly it
    runs (under callgrind, 50x)."""

    def __init__(self) -> None:
        self.now = 1_000_000_000

    def now_ns(self) -> int:
        return self.now


class _Wire:
    """The sending half of a node's socket: datagrams queue in the shared ``wire``."""

    def __init__(self, me: Address, wire: deque) -> None:
        self.me, self.wire = me, wire

    def sendto(self, data: bytes, addr: Address) -> None:
        self.wire.append((self.me, data, addr))

    def is_closing(self) -> bool:
        return False


def measure_nodes(requests: int = 5_000, payload_bytes: int = 94) -> dict:
    """CPU per committed request of three :class:`NodeCore` s and a client (see the notes)."""
    peers: list[Address] = [("127.0.0.1", 9_000 + i) for i in range(3)]
    me: Address = ("127.0.0.1", 9_100)
    wire: deque[tuple[Address, bytes, Address]] = deque()
    clock = _SteppedClock()
    client = Client(1, 1, 3, retry_ns=60_000_000_000)  # no retries: nothing is lost here
    reassembler = Reassembler()
    with tempfile.TemporaryDirectory(prefix="agora-consensus-cpu-") as tmp:
        nodes: dict[Address, NodeCore] = {}
        for i, addr in enumerate(peers):
            recorder = Recorder(Path(tmp) / f"r{i}.rec", i)
            replica = Replica(ReplicaConfig(cluster=1, replica=i, n=3),
                              FileStorage(Path(tmp) / f"r{i}", FsyncPolicy.NONE))
            nodes[addr] = NodeCore(replica, peers, clock, recorder)
            nodes[addr].begin(_Wire(addr, wire))

        def deliver() -> object | None:
            settled = None
            while wire:
                src, data, dst = wire.popleft()
                if dst != me:
                    nodes[dst].on_datagram(data, src)
                    continue
                for reply in replies_in(reassembler, data, src):
                    settled = client.on_reply(reply, clock.now_ns()) or settled
            return settled

        def send(message: object, to: list[Address]) -> None:
            for datagram in frames(encode(message), 0):
                wire.extend((me, datagram, addr) for addr in to)

        send(Hello(1, 1, 1), peers)
        deliver()
        payload = b"x" * payload_bytes
        start = time.process_time()
        for _ in range(requests):
            clock.now += 1_000_000  # the benchmark's one request per millisecond
            for item in client.request(payload, 0, clock.now_ns()):
                send(item.message, [peers[item.to]] if type(item) is Send else peers)
            if deliver() is None:
                raise RuntimeError(f"request {client.request_number} was not settled")
            for node in nodes.values():
                node.on_tick()
            deliver()
        cpu = time.process_time() - start
        committed = min(node.stats.committed for node in nodes.values())
        for node in nodes.values():
            node.replica.storage.close()  # type: ignore[attr-defined]
            node.recorder.close()  # type: ignore[union-attr]
    if committed < requests:
        raise RuntimeError(f"{committed} of {requests} requests committed on every replica")
    return {"requests": requests, "cpu_us_per_request": round(cpu / requests * 1e6, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m agora.bench.consensus_cpu",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, metavar="COUNT",
                        help="measure COUNT requests through three NodeCores instead")
    args = parser.parse_args(argv)
    if args.nodes is not None:
        result = measure_nodes(args.nodes)
        print(f"{result['cpu_us_per_request']} us CPU per request (three nodes and the client)")
        print("RESULT " + json.dumps(result), flush=True)
        return 0
    results = [measure(n) for n in (3, 5, 7)]
    for r in results:
        print(f"n={r['n']}: {r['cpu_us_per_commit']} us CPU per commit (all replicas), "
              f"{r['messages_per_commit']} messages, {r['cpu_us_per_message']} us per message")
    print("RESULT " + json.dumps({f"n{r['n']}_cpu_us_per_commit": r["cpu_us_per_commit"]
                                  for r in results}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
