"""One replica process: ``python -m agora.decision.transport.replica_main --id I --peers ...``.

``--peers`` lists every replica's ``host:port`` in replica order (this one binds entry ``I``).
``--dir D`` holds ``storage/`` (the replica's :class:`FileStorage`, fsync policy ``--fsync``),
``committed.log`` (the record a test checks) and ``stats.json`` (written on SIGUSR1 and at exit).
A restart with the same ``--dir`` resumes: durable restart with ``--fsync always``, VR recovery
otherwise, and the committed record continues after its last index.

The socket is served by a blocking ``recvfrom`` loop (``--io blocking``, the default: see
``blocking.py``) or a uvloop event loop (``--io asyncio``). Prints ``ready`` once the socket is
bound and the replica started. SIGTERM/SIGINT end it cleanly;
a replica exception ends it with status 2 and the traceback on stderr.

``--mode bft`` runs the Byzantine-tolerant replica (``decision.bft``, n = 3f + 1) instead
(``bft_node.py``, on either driver: ``--io blocking`` is the default here too): its keys come
from its own ``--key-file`` (``agora keys bft``: its private key, the public keys, its own MAC
keys; ``bft/keys.py``) or, for development, from a cluster secret in ``--secret-file`` that
every replica and client holds (so any of them could act as any other), ``--auth`` picks MACs
or signatures for the normal case, and ``--byzantine`` makes
this replica misbehave on purpose (tests only; see ``sim/byzantine.py``). Its records go to
``D/storage/bft.log`` before each step's sends (``--fsync none``: survives a process crash;
``always``: a power cut; ``batch`` is refused in this mode), and a restart with the same
``--dir`` resumes from them.

Embedding: ``main(args, on_committed=hook)`` (either mode, on the asyncio driver) calls
``hook(item)`` for every ``Committed`` right after it is recorded (an exception in the hook ends
the process like a replica bug), and ``start`` runs such a coroutine with this process's GC and
event-loop settings; the decision node (``agora.trading.decision_node``) is built that way. In
Byzantine mode ``Committed.view`` is always 0 (see ``bft/replica.py``): a hook must not read it.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import signal
import sys
import traceback
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import TypeVar

import uvloop

from agora.core.clock import WallClock
from agora.core.gc_tuning import tune_gc
from agora.decision.bft.auth import Keyring
from agora.decision.bft.config import AuthMode, BftConfig
from agora.decision.bft.keys import load_keyring
from agora.decision.bft.replica import BftReplica
from agora.decision.bft.storage import FileBftStorage
from agora.decision.consensus.config import ReplicaConfig
from agora.decision.consensus.file_storage import CompactedLogError, FileStorage
from agora.decision.consensus.messages import Committed
from agora.decision.consensus.replica import Replica
from agora.decision.consensus.storage import FsyncPolicy
from agora.decision.sim.byzantine import BEHAVIOURS, Byzantine
from agora.decision.transport.bft_node import AsyncBftNode, BftNode
from agora.decision.transport.blocking import BlockingNode
from agora.decision.transport.framing import Address
from agora.decision.transport.record import Recorder
from agora.decision.transport.udp import ReplicaNode


def parse_peers(text: str) -> list[Address]:
    peers = []
    for item in text.split(","):
        host, _, port = item.strip().rpartition(":")
        peers.append((host or "127.0.0.1", int(port)))
    return peers


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="replica_main", description=__doc__.splitlines()[0])
    p.add_argument("--id", type=int, required=True)
    p.add_argument("--peers", required=True, help="host:port,host:port,... in replica order")
    p.add_argument("--dir", type=Path, required=True)
    p.add_argument("--fsync", choices=[f.value for f in FsyncPolicy], default="none")
    p.add_argument("--cluster", type=int, default=1)
    p.add_argument("--tick-us", type=int, default=1_000)
    p.add_argument("--heartbeat-us", type=int, default=2_000)
    p.add_argument("--view-change-us", type=int, default=10_000)
    p.add_argument("--resend-us", type=int, default=3_000)
    p.add_argument("--batch-max", type=int, default=32)
    p.add_argument("--pipeline-max", type=int, default=8)
    p.add_argument("--io", choices=["blocking", "asyncio"], default="blocking",
                   help="Serve the socket with a blocking recvfrom loop (faster: one system "
                        "call per wake-up) or on a uvloop event loop.")
    p.add_argument("--no-backup-acks", action="store_true",
                   help="Only the leader answers clients (one hop longer; for comparison).")
    p.add_argument("--repair-max", type=int, default=2_048,
                   help="Entries per StartView/RecoveryResponse; a lagging replica asks for "
                        "the rest (messages above one datagram are fragmented).")
    p.add_argument("--log-memory", type=int, default=None,
                   help="Applied log entries (--mode bft: executed batches) kept in memory, up "
                        "to twice that; older ones are read back from the storage file for a "
                        "replica that lags that far (default 16,384; bft 8,192).")
    p.add_argument("--checkpoint-every", type=int, default=65_536,
                   help="Applied entries between checkpoints of the client table, so a restart "
                        "applies what follows the last one (0: none).")
    bft = p.add_argument_group("Byzantine mode (--mode bft)")
    p.add_argument("--mode", choices=["cft", "bft"], default="cft",
                   help="Crash-tolerant VR (n = 2f + 1, the default) or PBFT (n = 3f + 1).")
    bft.add_argument("--key-file", type=Path,
                     help="This replica's own key file (`agora keys bft`): its private key, the "
                          "public keys, its own MAC keys.")
    bft.add_argument("--secret-file", type=Path,
                     help="Development only, instead of --key-file: a cluster secret every "
                          "replica and client derives every key from (whoever holds it can "
                          "act as any replica).")
    bft.add_argument("--auth", choices=[m.value for m in AuthMode], default="macs")
    bft.add_argument("--request-timeout-us", type=int, default=20_000,
                     help="A request known but not executed this long starts a view change.")
    bft.add_argument("--fill-max", type=int, default=256,
                     help="Executed batches per state transfer (Fill) to a replica behind.")
    bft.add_argument("--snapshot-every", type=int, default=8_192,
                     help="Executed batches or requests between restart snapshots, so a "
                          "restart replays what follows the last one (0: none).")
    bft.add_argument("--byzantine", default="",
                     help="Comma-separated faults this replica commits on purpose (tests): "
                          + ", ".join(BEHAVIOURS))
    return p


def bft_keyring(args: argparse.Namespace) -> Keyring:
    """This replica's keys, once the Byzantine-mode options are checked (ValueError or OSError
    names what is wrong): its own key file, or (development) the cluster secret."""
    if args.fsync == "batch":
        raise ValueError("--fsync batch is unsafe in --mode bft (a vote could outlive its "
                         "record): use none or always")
    unknown = set(args.byzantine.split(",")) - set(BEHAVIOURS) - {""}
    if unknown:
        raise ValueError(f"--byzantine: unknown behaviours {sorted(unknown)}")
    n = len(parse_peers(args.peers))
    if (args.key_file is None) == (args.secret_file is None):
        raise ValueError("--mode bft needs --key-file (this replica's keys, from `agora keys "
                         "bft`) or, for development, --secret-file; not both")
    if args.key_file is not None:
        keyring = load_keyring(args.key_file, replica=args.id)
        if keyring.n != n:
            raise ValueError(f"{args.key_file} is for {keyring.n} replicas, --peers names {n}")
        return keyring
    secret = args.secret_file.read_bytes().strip()
    if len(secret) < 16:
        raise ValueError(f"{args.secret_file}: the cluster secret must be at least 16 bytes")
    return Keyring(secret, n)


CommittedHook = Callable[[Committed], None]


class HookedRecorder(Recorder):
    """A recorder that hands each committed item to the application once it is written."""

    def __init__(self, path: Path, replica: int, hook: CommittedHook) -> None:
        super().__init__(path, replica)
        self.hook = hook

    def committed(self, item: Committed, now_ns: int) -> None:
        super().committed(item, now_ns)
        self.hook(item)

    def committed_all(self, items: Sequence[Committed], now_ns: int) -> None:
        super().committed_all(items, now_ns)
        for item in items:
            self.hook(item)


def _log_memory(args: argparse.Namespace) -> dict[str, int]:
    """``--log-memory`` if given: each mode's configuration has its own default."""
    return {} if args.log_memory is None else {"log_memory": args.log_memory}


def _recorder(args: argparse.Namespace, on_committed: CommittedHook | None) -> Recorder:
    record = args.dir / "committed.log"
    return (Recorder(record, args.id) if on_committed is None
            else HookedRecorder(record, args.id, on_committed))


BftDriver = TypeVar("BftDriver", BftNode, AsyncBftNode)


def build_bft(args: argparse.Namespace, keyring: Keyring, driver: type[BftDriver],
              on_committed: CommittedHook | None = None) -> BftDriver:
    """The Byzantine-mode replica's node on ``driver`` (an :class:`AsyncBftNode` is built
    inside the running loop), from options :func:`bft_keyring` accepted; not bound yet."""
    peers = parse_peers(args.peers)
    config = BftConfig(
        cluster=args.cluster, replica=args.id, n=len(peers), auth=AuthMode(args.auth),
        request_timeout_ns=args.request_timeout_us * 1000,
        view_change_timeout_ns=args.view_change_us * 1000, resend_ns=args.resend_us * 1000,
        batch_max=args.batch_max, pipeline_max=args.pipeline_max, fill_max=args.fill_max,
        snapshot_every=args.snapshot_every, **_log_memory(args))
    kinds = frozenset(k for k in args.byzantine.split(",") if k)
    byzantine = (Byzantine(args.id, len(peers), kinds, keyring, config.auth,
                           random.Random(args.id)) if kinds else None)
    args.dir.mkdir(parents=True, exist_ok=True)
    recorder = _recorder(args, on_committed)
    storage = FileBftStorage(args.dir / "storage", FsyncPolicy(args.fsync))
    try:
        replica = BftReplica(config, keyring, storage, applied_index=recorder.applied)
        return driver(replica, peers, WallClock(), recorder, tick_ns=args.tick_us * 1000,
                      byzantine=byzantine)
    except BaseException:
        recorder.close()
        storage.close()
        raise


def build(args: argparse.Namespace, on_committed: CommittedHook | None = None
          ) -> tuple[Replica, list[Address], Recorder, FileStorage]:
    """The replica, its peers, its committed record and its storage, from the options."""
    peers = parse_peers(args.peers)
    config = ReplicaConfig(
        cluster=args.cluster, replica=args.id, n=len(peers),
        heartbeat_ns=args.heartbeat_us * 1000, view_change_timeout_ns=args.view_change_us * 1000,
        resend_ns=args.resend_us * 1000, batch_max=args.batch_max,
        pipeline_max=args.pipeline_max, repair_max=args.repair_max,
        backup_acks=not args.no_backup_acks, checkpoint_every=args.checkpoint_every,
        **_log_memory(args))
    args.dir.mkdir(parents=True, exist_ok=True)
    storage = FileStorage(args.dir / "storage", FsyncPolicy(args.fsync))
    recorder = _recorder(args, on_committed)
    replica = Replica(config, storage, applied_index=recorder.applied,
                      incarnation=recorder.incarnation)
    return replica, peers, recorder, storage


async def main(args: argparse.Namespace, on_committed: CommittedHook | None = None, *,
               keyring: Keyring | None = None) -> int:
    """The replica on this event loop (``--io asyncio``, and for programs that embed it);
    ``keyring``: the Byzantine mode's keys (read with :func:`bft_keyring` if None)."""
    node: ReplicaNode
    storage: FileStorage | FileBftStorage | None
    if args.mode == "bft":
        bft_node = build_bft(args, bft_keyring(args) if keyring is None else keyring,
                             AsyncBftNode, on_committed)
        node, storage = bft_node, bft_node.bft.storage  # type: ignore[assignment]
        await bft_node.open()
    else:
        replica, peers, recorder, storage = build(args, on_committed)
        node = await ReplicaNode.serve(replica, peers, WallClock(), recorder,
                                       tick_ns=args.tick_us * 1000)
    stats_path = args.dir / "stats.json"
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGUSR1, node.dump_stats, stats_path)
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, node.close)
    if node.failed is None:  # a replica that cannot start says why below, never "ready"
        print("ready", flush=True)
    try:
        await node.stopped
    except BaseException as exc:
        report_failure(exc)
        return 2
    finally:
        node.dump_stats(stats_path)
        if storage is not None:
            storage.close()
    return 0


def serve_blocking(args: argparse.Namespace, keyring: Keyring | None = None) -> int:
    """The replica on a blocking socket (``--io blocking``, the default for this process);
    ``keyring``: the Byzantine mode's keys."""
    storage: FileStorage | FileBftStorage | None
    if args.mode == "bft":
        assert keyring is not None
        bft_node = build_bft(args, keyring, BftNode)
        node: BlockingNode = bft_node
        storage = bft_node.bft.storage  # type: ignore[assignment]
    else:
        replica, peers, recorder, storage = build(args)
        node = BlockingNode(replica, peers, WallClock(), recorder, tick_ns=args.tick_us * 1000)
    stats_path = args.dir / "stats.json"
    signal.signal(signal.SIGUSR1, lambda *_: node.dump_stats(stats_path))
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: node.close())
    try:
        node.open()
        if node.failed is None:  # a replica that cannot start says why below, never "ready"
            print("ready", flush=True)
            node.serve()
    finally:
        node.dump_stats(stats_path)
        if storage is not None:
            storage.close()
    if node.failed is not None:
        report_failure(node.failed)
        return 2
    return 0


def report_failure(exc: BaseException) -> None:
    """Why the replica stopped, on stderr: a bug's traceback, or one line for what the operator
    must mend (a compacted directory that cannot restart)."""
    if isinstance(exc, CompactedLogError):
        print(f"error: {exc}", file=sys.stderr, flush=True)
    else:
        traceback.print_exception(exc)


def start(coroutine: Coroutine[object, object, int]) -> int:
    """Run a replica process's main coroutine with its GC settings, on uvloop."""
    tune_gc()
    return uvloop.run(coroutine)


def check_counts(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Refuse (``parser.error``) the counts no replica can run with; for every parser built on
    :func:`build_parser`."""
    memory = 1 if args.log_memory is None else args.log_memory
    if min(args.checkpoint_every, args.snapshot_every) < 0 or min(args.fill_max, memory) < 1:
        parser.error("--checkpoint-every and --snapshot-every must be >= 0, --fill-max and "
                     "--log-memory >= 1")


def run(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    check_counts(parser, args)
    keyring = None
    if args.mode == "bft":
        try:
            keyring = bft_keyring(args)
        except (OSError, ValueError) as exc:
            parser.error(str(exc))
    if args.io == "asyncio":
        return start(main(args, keyring=keyring))
    tune_gc()
    return serve_blocking(args, keyring)


if __name__ == "__main__":
    sys.exit(run())
