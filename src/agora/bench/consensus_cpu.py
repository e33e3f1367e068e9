"""The consensus protocol's own CPU cost, without sockets: ``python -m agora.bench.consensus_cpu``.

n sans-IO replicas step in one process; every message goes through the wire codec (encode, then
decode at the receiver) and is delivered at once. The figure is the CPU time per committed request
summed over all replicas: what the protocol and codec cost, to set beside the end-to-end latency of
``agora bench consensus`` (the rest is transport: process wake-ups, syscalls, scheduling).
"""

from __future__ import annotations

import json
import sys
import time
from collections import deque

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


if __name__ == "__main__":
    results = [measure(n) for n in (3, 5, 7)]
    for r in results:
        print(f"n={r['n']}: {r['cpu_us_per_commit']} us CPU per commit (all replicas), "
              f"{r['messages_per_commit']} messages, {r['cpu_us_per_message']} us per message")
    print("RESULT " + json.dumps({f"n{r['n']}_cpu_us_per_commit": r["cpu_us_per_commit"]
                                  for r in results}), flush=True)
    sys.exit(0)
