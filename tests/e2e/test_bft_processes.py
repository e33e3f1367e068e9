"""The Byzantine-tolerant mode on real processes: 4 replicas (f = 1) over UDP on loopback.

Clients run in threads (blocking :class:`BftSyncClient`s, each request broadcast to every
replica and settled by f + 1 matching MACed replies) while the test kills, pauses or corrupts a
replica. The simulator's checker then runs over the committed records of the correct replicas,
the requests submitted and the replies accepted (agreement, order, exactly once, validity,
integrity, replies) and waits until every correct live replica emitted every committed index.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from agora.core.clock import WallClock
from agora.decision.bft.auth import Keyring
from agora.decision.bft.keys import load_keyring, make_cluster
from agora.decision.consensus.messages import Reply, Request
from agora.decision.sim.bft_cluster import BftChecker
from agora.decision.sim.checker import Checker
from agora.decision.transport.bft_sync_client import BftSyncClient
from agora.decision.transport.cluster import ProcessCluster

pytestmark = pytest.mark.e2e
SECRET = b"agora-e2e-bft-cluster-secret"
CLOCK = WallClock()
N = 4


class Load:
    """``clients`` threads, each committing numbered payloads one at a time until stopped."""

    def __init__(self, cluster: ProcessCluster, clients: int = 2,
                 key_file: Path | None = None) -> None:
        """``key_file``: a client key file for ids 1..clients (else the cluster secret)."""
        self.cluster = cluster
        self.key_file = key_file
        self.submitted: list[tuple[int, int, bytes]] = []  # (client, request number, payload)
        self.replies: list[Reply] = []
        self.errors: list[BaseException] = []
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._run, args=(k,)) for k in range(clients)]

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(timeout=30)

    def _run(self, k: int) -> None:
        if self.key_file is None:
            keyring, client_id = Keyring(SECRET, N), None
        else:
            keyring, client_id = load_keyring(self.key_file, clients=range(k + 1, k + 2)), k + 1
        with BftSyncClient(1, self.cluster.peers, CLOCK, keyring,
                           client_id=client_id) as client:
            i = 0
            while not self.stopping.is_set():
                data = b"decision-%d-%06d" % (k, i)
                with self.lock:
                    self.submitted.append((client.client.client_id, i + 1, data))
                try:
                    reply = client.commit(data, timeout_s=15)
                except BaseException as exc:  # surfaced by the test, never swallowed
                    self.errors.append(exc)
                    return
                with self.lock:
                    self.replies.append(reply)
                i += 1

    def wait_replies(self, count: int, timeout_s: float = 20.0) -> None:
        deadline = time.monotonic() + timeout_s
        while len(self.replies) < count:
            assert not self.errors, self.errors
            if time.monotonic() > deadline:
                pytest.fail(f"only {len(self.replies)} of {count} replies within {timeout_s} s")
            time.sleep(0.01)

    def check(self, correct: set[int], live: set[int] | None = None) -> Checker:
        """The checker over the correct replicas' records; waits until every live correct one
        emitted every committed index."""
        assert not self.errors, self.errors
        deadline = time.monotonic() + 20
        while True:
            checker = self.cluster.check(
                [_request(*s) for s in self.submitted], self.replies, replicas=sorted(correct),
                checker=BftChecker(frozenset(live if live is not None else correct)))
            if not checker.ok or checker.converged(N, False):
                assert checker.ok, checker.failures
                return checker
            if time.monotonic() > deadline:
                pytest.fail(checker.liveness_report(N))
            time.sleep(0.05)


def _request(client_id: int, number: int, payload: bytes) -> Request:
    return Request(1, client_id, number, 0, payload)


def bft_cluster(tmp_path: Path, byzantine: dict[int, str] | None = None, *,
                fsync: str = "none", asyncio: frozenset[int] = frozenset(),
                request_timeout_us: int = 20_000, key_dir: Path | None = None,
                extra: tuple[str, ...] = ()) -> ProcessCluster:
    """``asyncio``: the replicas served on the asyncio driver (``--io asyncio``);
    ``request_timeout_us``: the backups' timer on the primary (a test asserting that no view
    change happens raises it, so a loaded machine's slow requests do not start one);
    ``key_dir``: each replica gets only its own key file from there (else the shared secret)."""
    secret = tmp_path / "secret"
    secret.write_bytes(SECRET + b"\n")
    faults = byzantine or {}
    keys = ["--secret-file", str(secret)] if key_dir is None else []
    return ProcessCluster(
        tmp_path, N, fsync=fsync, extra=["--mode", "bft", *keys,
                                         "--request-timeout-us", str(request_timeout_us),
                                         *extra],
        per_replica=lambda i: ((["--byzantine", faults[i]] if i in faults else [])
                               + (["--io", "asyncio"] if i in asyncio else [])
                               + ([] if key_dir is None
                                  else ["--key-file", str(key_dir / f"replica-{i}.json")])))


def views_when_settled(cluster: ProcessCluster, replicas: range | tuple[int, ...],
                       timeout_s: float = 5.0) -> list[int]:
    """The replicas' views once they all stand in one view, normal (polled: a loaded machine
    may still be finishing a view change); the last views seen if they never do."""
    deadline = time.monotonic() + timeout_s
    while True:
        for r in replicas:
            cluster.signal(r, signal.SIGUSR1)
        time.sleep(0.1)
        stats = [cluster.stats(r) for r in replicas]
        views = [s["view"] for s in stats]
        if ((len(set(views)) == 1 and all(s["status"] == 0 for s in stats))
                or time.monotonic() > deadline):
            return views


def kill_and_restart(cluster: ProcessCluster, load: Load, replica: int, *, during: int = 100,
                     after: int = 100) -> None:
    """SIGKILL ``replica``; once ``during`` more replies came, start it again on its directory
    (its records) and wait for ``after`` more."""
    cluster.signal(replica, signal.SIGKILL)
    load.wait_replies(len(load.replies) + during)
    cluster.start(replica)
    load.wait_replies(len(load.replies) + after)


def test_four_replicas_agree_and_a_killed_backup_does_not_stop_them(tmp_path):
    with bft_cluster(tmp_path, request_timeout_us=500_000) as cluster:
        cluster.start()
        with Load(cluster) as load:
            load.wait_replies(200)
            cluster.signal(3, signal.SIGKILL)  # f = 1: three replicas still make 2f + 1
            done = len(load.replies)
            load.wait_replies(done + 300)
        checker = load.check(correct={0, 1, 2, 3}, live={0, 1, 2})
        codes = cluster.stop()
    assert codes[0] == codes[1] == codes[2] == 0, codes
    assert checker.replies == len(load.replies) >= 500
    assert cluster.last_index(3) < cluster.last_index(0), "the killed replica stopped"
    assert {cluster.stats(r)["view"] for r in range(3)} == {0}, "a dead backup: no view change"


def test_replicas_on_the_asyncio_driver_agree_with_blocking_ones_and_restart(tmp_path):
    """Two replicas on each driver (the primary of view 0 on asyncio); the asyncio backup is
    killed and restarted from its records, then the asyncio primary: a new view."""
    with bft_cluster(tmp_path, asyncio=frozenset({0, 2})) as cluster:
        cluster.start()
        with Load(cluster) as load:
            load.wait_replies(100)
            kill_and_restart(cluster, load, 2)
            cluster.signal(0, signal.SIGKILL)
            load.wait_replies(len(load.replies) + 100)
        checker = load.check(correct={0, 1, 2, 3}, live={1, 2, 3})
        codes = cluster.stop()
    assert codes[1] == codes[2] == codes[3] == 0, codes
    assert checker.replies == len(load.replies) >= 400
    starts = [r for r in cluster.records(2) if r.item is None]
    assert len(starts) == 2 and starts[1].applied >= 50, "resumed after its recorded prefix"
    views = [cluster.stats(r)["view"] for r in (1, 2, 3)]
    assert min(views) >= 1, f"the killed primary was replaced: {views}"


def test_paused_primary_is_replaced_then_catches_up(tmp_path):
    with bft_cluster(tmp_path) as cluster:
        cluster.start()
        with Load(cluster) as load:
            load.wait_replies(100)
            cluster.signal(0, signal.SIGSTOP)  # the primary of view 0
            done = len(load.replies)
            load.wait_replies(done + 200)  # backups timed the requests out: a new view
            cluster.signal(0, signal.SIGCONT)
            load.wait_replies(len(load.replies) + 100)
        checker = load.check(correct={0, 1, 2, 3})
        views = views_when_settled(cluster, range(N))
        assert cluster.stop() == dict.fromkeys(range(N), 0)
    assert min(views) >= 1 and len(set(views)) == 1, f"all in the new view: {views}"
    assert checker.replies == len(load.replies)


def test_equivocating_forging_primary_cannot_split_the_correct_replicas(tmp_path):
    with bft_cluster(tmp_path, {0: "equivocate,forge,replay"}) as cluster:
        cluster.start()
        with Load(cluster) as load:
            load.wait_replies(300)
        checker = load.check(correct={1, 2, 3})
        for r in (1, 2, 3):
            cluster.signal(r, signal.SIGUSR1)
        time.sleep(0.2)
        stats = [cluster.stats(r) for r in (1, 2, 3)]
        codes = cluster.stop()
    assert all(code == 0 for code in codes.values()), codes
    assert all(s["view"] >= 1 for s in stats), "the lying primary was voted out"
    assert checker.replies == len(load.replies)


@pytest.mark.parametrize("fsync", ["none", "always"])
def test_killed_replica_restarts_from_its_records_and_garbage_is_counted(tmp_path, fsync):
    with bft_cluster(tmp_path, fsync=fsync) as cluster:
        cluster.start()
        with Load(cluster, clients=1) as load:
            load.wait_replies(50)
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
                for datagram in (b"", b"\x07x", b"\x00\xff", b"\x00\x93\xa4Nope\x01\x02"):
                    sender.sendto(datagram, cluster.peers[1])
            load.wait_replies(100)
            cluster.signal(1, signal.SIGUSR1)
            time.sleep(0.2)
            assert cluster.stats(1)["garbage"] == 4
            kill_and_restart(cluster, load, 2)  # same directory: its records, then catch up
        checker = load.check(correct={0, 1, 2, 3})
        codes = cluster.stop()
    assert all(code == 0 for code in codes.values()), codes
    starts = [r for r in cluster.records(2) if r.item is None]
    assert len(starts) == 2 and starts[1].applied >= 50, "resumed after its recorded prefix"
    assert checker.replies == len(load.replies)


def test_a_killed_replica_restarts_from_its_snapshot(tmp_path):
    """With ``--snapshot-every 20`` a replica killed after 150 replies restarts from a snapshot
    (its committed record is past it), replays only the records after it and catches up; the
    checker holds every record equal."""
    with bft_cluster(tmp_path, extra=("--snapshot-every", "20")) as cluster:
        cluster.start()
        with Load(cluster, clients=1) as load:
            load.wait_replies(150)
            kill_and_restart(cluster, load, 2, during=50)
            cluster.signal(2, signal.SIGUSR1)
            time.sleep(0.2)
            started = cluster.stats(2)["started_from_checkpoint"]
        checker = load.check(correct={0, 1, 2, 3})
        codes = cluster.stop()
    assert all(code == 0 for code in codes.values()), codes
    # one request a batch (one client): snapshots 20 batches apart, the kill past 150
    assert started >= 100, f"the restart started from the snapshot at batch {started}"
    assert checker.replies == len(load.replies)


def test_a_replica_whose_storage_lost_what_it_applied_refuses_to_start(tmp_path):
    with bft_cluster(tmp_path) as cluster:
        cluster.start()
        with Load(cluster, clients=1) as load:
            load.wait_replies(30)
        cluster.signal(2, signal.SIGKILL)
        shutil.rmtree(cluster.directory(2) / "storage")  # the votes are gone, the record is not
        restarted = subprocess.run(
            [sys.executable, "-m", "agora.decision.transport.replica_main", "--id", "2",
             "--peers", ",".join(f"{h}:{p}" for h, p in cluster.peers),
             "--dir", str(cluster.directory(2)), "--mode", "bft",
             "--secret-file", str(tmp_path / "secret")],
            capture_output=True, text=True, timeout=30)
        cluster.stop()
    assert restarted.returncode == 2
    assert "StorageBehind" in restarted.stderr and "empty directory" in restarted.stderr


def test_replicas_holding_only_their_own_key_files_serve_a_key_file_client(tmp_path):
    """`agora keys bft` files: each replica process gets its own file only, the clients a
    client file; a lying primary (equivocating, forging with its own keys) changes nothing."""
    make_cluster(tmp_path / "keys", N, [(1, 2)])
    with bft_cluster(tmp_path, {0: "equivocate,forge"}, key_dir=tmp_path / "keys") as cluster:
        cluster.start()
        with Load(cluster, key_file=tmp_path / "keys" / "clients-1-2.json") as load:
            load.wait_replies(200)
        checker = load.check(correct={1, 2, 3})
        assert cluster.stop() == dict.fromkeys(range(N), 0)
    assert checker.replies == len(load.replies) >= 200
    assert {r.client_id for r in load.replies} == {1, 2}


@pytest.mark.parametrize(("extra", "reason"), [
    ([], "--key-file"),
    (["--secret-file", "{short}"], "at least 16 bytes"),
    (["--secret-file", "{secret}", "--byzantine", "sneaky"], "unknown behaviours"),
    (["--secret-file", "{secret}", "--fsync", "batch"], "unsafe in --mode bft"),
    (["--secret-file", "{secret}", "--key-file", "{keys}/replica-0.json"], "not both"),
    (["--key-file", "{keys}/replica-1.json"], "not replica 0's (it is replica 1's)"),
    (["--key-file", "{keys}/clients-1-2.json"], "not replica 0's (it holds clients 1-2)"),
    (["--key-file", "{keys7}/replica-0.json"], "is for 7 replicas, --peers names 4"),
    (["--key-file", "{keys}/missing.json"], "No such file"),
])
def test_bad_bft_options_are_refused_with_a_reason(tmp_path, extra, reason):
    (tmp_path / "short").write_bytes(b"tiny")
    (tmp_path / "secret").write_bytes(SECRET)
    make_cluster(tmp_path / "keys", N, [(1, 2)])
    make_cluster(tmp_path / "keys7", 7, [])
    args = [a.format(short=tmp_path / "short", secret=tmp_path / "secret",
                     keys=tmp_path / "keys", keys7=tmp_path / "keys7") for a in extra]
    result = subprocess.run(
        [sys.executable, "-m", "agora.decision.transport.replica_main", "--id", "0",
         "--peers", "127.0.0.1:1,127.0.0.1:2,127.0.0.1:3,127.0.0.1:4", "--dir",
         str(tmp_path / "r0"), "--mode", "bft", *args],
        capture_output=True, text=True, timeout=30)
    assert result.returncode == 2 and reason in result.stderr, result.stderr


def test_a_replica_replaced_with_an_empty_directory_catches_up_by_state_transfer(tmp_path):
    with bft_cluster(tmp_path) as cluster:
        cluster.start()
        with Load(cluster) as load:
            load.wait_replies(150)
            cluster.signal(2, signal.SIGKILL)
            shutil.rmtree(cluster.directory(2))  # its state is gone: it rejoins as a new member
            load.wait_replies(len(load.replies) + 150)
            cluster.start(2)
            load.wait_replies(len(load.replies) + 150)
        checker = load.check(correct={0, 1, 2, 3})  # the new replica's record: from index 1
        cluster.signal(2, signal.SIGUSR1)
        time.sleep(0.2)
        codes = cluster.stop()
    assert all(code == 0 for code in codes.values()), codes
    assert cluster.records(2)[1].item.index == 1, "it emitted the whole log, from the start"
    assert checker.replies == len(load.replies)
