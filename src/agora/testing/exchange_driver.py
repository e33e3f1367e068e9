"""A process that feeds the seeded workload into an on-disk exchange, for crash tests.

``python -m agora.testing.exchange_driver DIR --orders N`` recovers DIR, then submits the
workload's commands from the recovered sequence number on, committing each one and printing
``acked <seq>`` only after the commit (so every acknowledged command is in the journal). Time is
1 us per sequence number, so a restarted run stamps exactly what an uninterrupted
run would. A test SIGKILLs it at a random moment, restarts it, and compares.
"""

from __future__ import annotations

import argparse
import sys

from agora.bench.workload import engine_workload, setup_commands
from agora.exchange.journal import FsyncPolicy
from agora.exchange.store import Exchange, open_exchange

NS_PER_SEQ = 1_000


class SeqClock:
    """Stamps ``(seq being assigned) * NS_PER_SEQ``: identical across restarts."""

    def __init__(self) -> None:
        self.exchange: Exchange | None = None

    def now_ns(self) -> int:
        return (self.exchange.last_seq + 1) * NS_PER_SEQ


def session_commands(orders: int, seed: int, symbols: int = 3) -> list:
    return setup_commands(symbols) + engine_workload(orders, seed=seed, symbols=symbols)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("directory")
    parser.add_argument("--orders", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--fsync", default="none", choices=[p.value for p in FsyncPolicy])
    parser.add_argument("--snapshot-every", type=int, default=0)
    args = parser.parse_args(argv)
    commands = session_commands(args.orders, args.seed)
    clock = SeqClock()
    with open_exchange(args.directory, fsync=FsyncPolicy(args.fsync), clock=clock) as ex:
        clock.exchange = ex
        start = ex.last_seq
        for problem in ex.recovery.problems:
            print(f"recovery {problem}", flush=True)
        print(f"recovered {start}", flush=True)
        for command in commands[start:]:
            ex.submit(command)
            ex.commit()
            seq = ex.last_seq
            sys.stdout.write(f"acked {seq}\n")
            sys.stdout.flush()
            if args.snapshot_every and seq % args.snapshot_every == 0:
                ex.snapshot()
    print("done", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
