"""Instructions per message of the venue's order paths, counted by callgrind.

``python benchmarks/venue_instructions.py [--small N] [--big N]`` (needs valgrind). Timings on a
shared VM move by 20% from one run to the next; instruction counts move only when the code
does, so two builds compare in one run each (``PYTHONPATH=<other checkout>/src``).

For OUCH (Enter Order / Cancel pairs) and FIX (NewOrderSingles that rest), 64 messages per
read, ``python -m agora.bench.venue_cpu`` runs under ``valgrind --tool=callgrind`` at two sizes,
once driving the venue and once with ``--prepare-only`` (start-up and encoding the load, no
venue work). The figure is ``((I_big - I_small) - (P_big - P_small)) / (n_big - n_small)``: the
venue's own instructions per message. Instructions are not time: a cache miss or a system call
costs more than it counts, so this complements ``agora bench gateway``, it does not replace it.
"""

from __future__ import annotations

import argparse
import json
import sys
from concurrent.futures import ThreadPoolExecutor

from agora.bench import callgrind


def instructions(protocol: str, count: int, prepare_only: bool) -> int:
    return callgrind.instructions("agora.bench.venue_cpu", [
        "--protocol", protocol, "--batch", "64", str(count),
        *(["--prepare-only"] if prepare_only else [])])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", type=int, default=1_000, help="pairs (OUCH) / orders (FIX)")
    parser.add_argument("--big", type=int, default=3_000)
    args = parser.parse_args()
    if not callgrind.available():
        print("valgrind is not installed (Debian: apt-get install valgrind)", file=sys.stderr)
        return 1
    jobs = [(p, n, prep) for p in ("ouch", "fix") for n in (args.small, args.big)
            for prep in (False, True)]
    with ThreadPoolExecutor(max_workers=2) as pool:  # valgrind runs one thread per process
        counts = dict(zip(jobs, pool.map(lambda job: instructions(*job), jobs), strict=True))
    result = {}
    for protocol, per_count in (("ouch", 2), ("fix", 1)):  # messages per pair / per order
        venue = [counts[protocol, n, False] - counts[protocol, n, True]
                 for n in (args.small, args.big)]
        per_message = (venue[1] - venue[0]) / ((args.big - args.small) * per_count)
        result[f"{protocol}_instructions_per_message"] = round(per_message)
        what = "Enter Order / Cancel" if protocol == "ouch" else "NewOrderSingle"
        print(f"{protocol}: {per_message:,.0f} instructions per {what} message, 64 per read")
    print("RESULT " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
