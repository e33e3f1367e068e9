"""Instructions per committed request of the consensus commit path, counted by callgrind.

``python benchmarks/consensus_instructions.py [--small N] [--big N]`` (needs valgrind; about a
minute). ``python -m agora.bench.consensus_cpu --nodes N`` runs what the three processes of an
n = 3 cluster run, without their sockets (``NodeCore`` framing and codec, the replica, its log
file and committed record, and a sans-IO client; one request per simulated millisecond, a tick
per request on every node), under ``valgrind --tool=callgrind`` at two sizes. The figure is
``(I_big - I_small) / (n_big - n_small)``: instructions per request, summed over the three
replicas and the client. Compare two builds with ``PYTHONPATH=<other checkout>/src``; see
``agora.bench.callgrind`` for what such a count does and does not say.
"""

from __future__ import annotations

import argparse
import json
import sys
from concurrent.futures import ThreadPoolExecutor

from agora.bench import callgrind


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", type=int, default=1_000, help="requests of the small run")
    parser.add_argument("--big", type=int, default=3_000, help="requests of the big run")
    args = parser.parse_args()
    if not callgrind.available():
        print("valgrind is not installed (Debian: apt-get install valgrind)", file=sys.stderr)
        return 1
    sizes = (args.small, args.big)
    with ThreadPoolExecutor(max_workers=2) as pool:  # valgrind runs one thread per process
        counts = list(pool.map(lambda n: callgrind.instructions(
            "agora.bench.consensus_cpu", ["--nodes", str(n)]), sizes))
    per_request = (counts[1] - counts[0]) / (args.big - args.small)
    print(f"{per_request:,.0f} instructions per committed request (n = 3: three replicas and "
          f"the client, one request at a time)")
    print("RESULT " + json.dumps({"n3_instructions_per_request": round(per_request)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
