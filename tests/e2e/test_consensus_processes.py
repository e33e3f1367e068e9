"""Consensus on real processes: 3 replicas over UDP on loopback, faults by signal, an outside check.

Every test runs the simulator's ``Checker`` over the committed records of every replica
incarnation, the requests the client submitted and the replies it accepted (agreement, order,
exactly once, validity, integrity, replies), then waits for convergence (every replica, restarted
or resumed ones included, emitted every committed index). A replica that raises exits non-zero,
which fails the test at shutdown.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
import uvloop

from agora.core.clock import WallClock
from agora.decision.sim.checker import Checker
from agora.decision.transport.client import ClusterClient, Outcome, open_loop
from agora.decision.transport.cluster import ProcessCluster
from agora.decision.transport.record import read_records

pytestmark = pytest.mark.e2e
CLOCK = WallClock()


def payload(i: int) -> bytes:
    return b"decision-%06d" % i


async def converge(cluster: ProcessCluster, client: ClusterClient,
                   timeout_s: float = 10.0) -> Checker:
    """Poll the records until every replica emitted every committed index (or time runs out)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        checker = cluster.check(client.submitted, client.replies)
        if not checker.ok or checker.converged(cluster.n, client.in_flight > 0):
            return checker
        if loop.time() > deadline:
            pytest.fail(checker.liveness_report(cluster.n))
        await asyncio.sleep(0.05)


async def settle(client: ClusterClient) -> int:
    """Commit a few requests one at a time: replicas start some 100 ms apart, and one that
    starts early may time out on a leader still importing and begin a view change."""
    for i in range(20):
        outcome = await client.submit(b"warm-%d" % i)
    assert outcome.reply is not None
    return outcome.reply.view


def run_cluster(tmp_path, scenario: Callable[[ProcessCluster, ClusterClient],
                                             Awaitable[list[Outcome]]],
                make: Callable[[Path], ProcessCluster] = lambda root: ProcessCluster(root, 3),
                ) -> tuple[Checker, list[Outcome]]:
    """``make`` builds the cluster (three replicas on loopback unless told otherwise)."""
    async def main() -> tuple[Checker, list[Outcome]]:
        with make(tmp_path) as cluster:
            cluster.start()
            client = await ClusterClient.connect(
                cluster.cluster, cluster.peers, CLOCK, keep_log=True, pool=64,
                local_host=getattr(cluster, "client_host", "127.0.0.1"))
            try:
                await settle(client)
                outcomes = await scenario(cluster, client)
                checker = await converge(cluster, client)
            finally:
                client.close()
            codes = cluster.stop()
        assert all(code == 0 for code in codes.values()), f"a replica failed: {codes}"
        assert checker.ok, checker.failures
        return checker, outcomes

    return uvloop.run(main())


def all_replied(outcomes: list[Outcome]) -> None:
    missing = [i for i, o in enumerate(outcomes) if o.reply is None]
    assert not missing, f"{len(missing)} requests got no reply, first {missing[:5]}"


async def wait_replies(client: ClusterClient, count: int, timeout_s: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while len(client.replies) < count:
        if loop.time() > deadline:
            pytest.fail(f"only {len(client.replies)} of {count} replies within {timeout_s} s")
        await asyncio.sleep(0.002)


def test_three_replicas_agree_and_every_request_commits_once(tmp_path):
    async def scenario(cluster, client):
        plain = await open_loop(client, CLOCK, rate=2_000, count=300, payload=payload)
        budgeted = await open_loop(client, CLOCK, rate=1_000, count=100, budget_ns=50_000_000,
                                   payload=lambda i: payload(1_000 + i))
        return plain + budgeted

    checker, outcomes = run_cluster(tmp_path, scenario)
    all_replied(outcomes)
    assert len(checker.by_request) == 420 and checker.replies == 420  # with the 20 warm-ups
    assert checker.deadline_figures() == (100, 0)  # 50 ms budgets on an idle loopback: all met
    assert len({o.reply.view for o in outcomes if o.reply}) == 1, "no view change when calm"


def test_a_burst_goes_out_in_request_batches_and_commits_once(tmp_path):
    async def scenario(cluster, client):
        sent, datagrams = client.requests_sent, client.request_datagrams
        futures = [client.submit(payload(i)) for i in range(64)]  # one loop turn: the pool
        await asyncio.sleep(0)  # the end-of-turn send has run; no reply or retry yet
        assert client.requests_sent - sent == 64
        assert client.request_datagrams - datagrams == 1, "one RequestBatch datagram"
        return list(await asyncio.gather(*futures))

    checker, outcomes = run_cluster(tmp_path, scenario)
    all_replied(outcomes)
    assert sorted(o.reply.index for o in outcomes) == list(range(21, 85))
    assert len(checker.by_request) == 84 and checker.replies == 84


def test_sigkill_leader_mid_load_new_view_then_restart_catches_up(tmp_path):
    async def scenario(cluster, client):
        load = asyncio.ensure_future(open_loop(client, CLOCK, rate=1_000, count=600,
                                               payload=payload))
        await wait_replies(client, 150)
        killed.append(client.view % cluster.n)
        cluster.signal(killed[0], signal.SIGKILL)  # the leader
        await wait_replies(client, 400)
        cluster.start(killed[0])  # same directory: VR recovery (fsync none), then catch up
        return await load

    killed: list[int] = []

    _, outcomes = run_cluster(tmp_path, scenario)
    all_replied(outcomes)
    views = [o.reply.view for o in outcomes if o.reply]
    assert max(views) > views[0], "the load continued in a new view"
    record = read_records(tmp_path / f"r{killed[0]}" / "committed.log")
    starts = [i for i, r in enumerate(record) if r.item is None]
    assert len(starts) == 2
    before = [r.item.index for r in record[:starts[1]] if r.item is not None]
    # resumed right after its recorded prefix (the client heard of ~150 commits before the
    # kill, some from backup acknowledgements that can precede the leader's own record)
    assert record[starts[1]].applied == before[-1] >= 100


async def signal_a_backup_under_load(cluster: ProcessCluster, client: ClusterClient,
                                     sig: signal.Signals, after: int
                                     ) -> tuple[asyncio.Future[list[Outcome]], int]:
    """500 requests at 1,000/s; once ``after`` are answered, ``sig`` to the backup after the
    leader. Returns the load and that backup."""
    load = asyncio.ensure_future(open_loop(client, CLOCK, rate=1_000, count=500,
                                           payload=payload))
    await wait_replies(client, after)
    backup = (client.view + 1) % cluster.n
    cluster.signal(backup, sig)
    return load, backup


def test_sigstop_backup_then_sigcont_catches_up(tmp_path):
    async def scenario(cluster, client):
        load, backup = await signal_a_backup_under_load(cluster, client, signal.SIGSTOP, 100)
        await wait_replies(client, 300)  # f = 1: the leader and the other backup commit alone
        cluster.signal(backup, signal.SIGCONT)
        return await load

    _, outcomes = run_cluster(tmp_path, scenario)
    all_replied(outcomes)
    # the load did not wait for the paused backup (f = 1), and when it woke, its leader silent
    # for 200+ ms on its clock, it asked before acting (pre-vote): nobody agreed, no view change
    assert outcomes[-1].replied_ns - outcomes[0].submitted_ns < 2_000_000_000
    assert len({o.reply.view for o in outcomes if o.reply}) == 1


def test_a_backup_far_behind_catches_up_from_entries_the_leader_reads_back_from_its_file(
        tmp_path):
    """With ``--log-memory 16`` the others keep at most 32 applied entries in memory, so the
    paused backup's 400 missing entries come from the leader's log file (FileStorage
    read_entries) in its repairs; the checker then holds every record equal."""
    async def scenario(cluster, client):
        await wait_replies(client, 20)
        backup = (client.view + 1) % cluster.n
        cluster.signal(backup, signal.SIGSTOP)
        outcomes = await open_loop(client, CLOCK, rate=2_000, count=400, payload=payload)
        cluster.request_stats()
        leader = client.view % cluster.n
        await asyncio.sleep(0.3)
        bases.append(cluster.stats(leader)["log_base"])
        cluster.signal(backup, signal.SIGCONT)
        return outcomes

    bases: list[int] = []
    make = lambda root: ProcessCluster(root, 3, extra=("--log-memory", "16"))  # noqa: E731
    checker, outcomes = run_cluster(tmp_path, scenario, make)
    all_replied(outcomes)
    assert bases[0] >= 380, f"the leader kept {420 - bases[0]} entries in memory"
    assert len(checker.by_request) == 420  # converge() waited for every replica's record


def test_a_killed_backup_restarts_from_its_checkpoint(tmp_path):
    """With ``--checkpoint-every 50`` a backup killed after ~300 commits restarts from a
    checkpoint its storage wrote (its application, the committed record, is past it), and the
    checker holds every record equal once it caught up."""
    async def scenario(cluster, client):
        load, backup = await signal_a_backup_under_load(cluster, client, signal.SIGKILL, 300)
        await wait_replies(client, 400)
        cluster.start(backup)
        cluster.request_stats()
        await asyncio.sleep(0.3)
        started.append(cluster.stats(backup)["started_from_checkpoint"])
        return await load

    started: list[int] = []
    make = lambda root: ProcessCluster(root, 3, extra=("--checkpoint-every", "50"))  # noqa: E731
    _, outcomes = run_cluster(tmp_path, scenario, make)
    all_replied(outcomes)
    # killed past 300 commits (20 warm-up ones before them), checkpoints 50-82 entries apart
    assert started[0] >= 200, f"the restart started from checkpoint {started[0]}"


def test_sigstop_leader_wakes_in_an_old_view_without_breaking_safety(tmp_path):
    async def scenario(cluster, client):
        load = asyncio.ensure_future(open_loop(client, CLOCK, rate=1_000, count=500,
                                               payload=payload))
        await wait_replies(client, 100)
        paused.append(client.view % cluster.n)
        cluster.signal(paused[0], signal.SIGSTOP)  # its socket keeps queueing newer-view traffic
        await wait_replies(client, 300)
        cluster.signal(paused[0], signal.SIGCONT)  # wakes as leader of its old view, with a backlog
        return await load

    paused: list[int] = []

    _, outcomes = run_cluster(tmp_path, scenario)
    all_replied(outcomes)
    assert max(o.reply.view for o in outcomes if o.reply) >= 1
    woke = json.loads((tmp_path / f"r{paused[0]}" / "stats.json").read_text())
    assert woke["view"] >= 1 and woke["status"] == 0, "the old leader joined the new view"


# ---------------------------------------------------------------- a consensus bug, sans-IO


def test_garbage_datagrams_are_counted_and_change_nothing(tmp_path):
    bad = [
        b"",  # empty
        b"\x07not our framing",  # unknown frame type
        b"\x01\x00",  # a fragment header cut short
        b"\x00" + b"\x93\xa7Nothing\x01\x02",  # whole-message frame, undecodable body
        b"\x00\xff",  # whole-message frame, not msgpack at all
    ]

    async def scenario(cluster, client):
        load = asyncio.ensure_future(open_loop(client, CLOCK, rate=1_000, count=300,
                                               payload=payload))
        await wait_replies(client, 100)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            for address in cluster.peers:
                for datagram in bad:
                    sender.sendto(datagram, address)
        return await load

    holder: list = []

    def keep(cluster_scenario):
        async def wrapped(cluster, client):
            holder.append(cluster)
            return await cluster_scenario(cluster, client)
        return wrapped

    _, outcomes = run_cluster(tmp_path, keep(scenario))
    all_replied(outcomes)
    cluster = holder[0]
    assert [cluster.stats(r)["garbage"] for r in range(cluster.n)] == [len(bad)] * cluster.n


def test_replicas_compact_their_logs_and_a_killed_one_restarts_on_its_compacted_log(tmp_path):
    """With ``--checkpoint-every 100`` every replica's log is released below the cluster's
    lowest durable checkpoint as the session goes (its committed record synced past it first).
    A backup killed after that restarts from its checkpoint on its compacted log, catches up,
    and the checker holds every record equal; the others never released what it needed."""
    async def scenario(cluster, client):
        first = await open_loop(client, CLOCK, rate=2_000, count=1_200, payload=payload)
        load, backup = await signal_a_backup_under_load(cluster, client, signal.SIGKILL, 1_300)
        await wait_replies(client, 1_500)
        cluster.start(backup)
        outcomes = first + await load
        await converge(cluster, client)
        cluster.request_stats()
        await asyncio.sleep(0.3)
        compacted.extend(cluster.stats(r)["compacted"] for r in range(cluster.n))
        killed.append(backup)
        return outcomes

    compacted: list[int] = []
    killed: list[int] = []
    make = lambda root: ProcessCluster(root, 3, extra=("--checkpoint-every", "100"))  # noqa: E731
    checker, outcomes = run_cluster(tmp_path, scenario, make)
    all_replied(outcomes)
    assert len(checker.by_request) == 1_720
    # every replica released most of its log; the restarted one too, after its restart
    assert all(upto >= 1_000 for upto in compacted), compacted
    log = tmp_path / f"r{killed[0]}" / "storage" / "log"
    assert log.stat().st_blocks * 512 < log.stat().st_size or not hole_punching(tmp_path)


def hole_punching(tmp_path: Path) -> bool:
    """Whether this file system frees a punched range's blocks (else compaction only refuses
    the released entries; see ``compaction.py``)."""
    from agora.decision.consensus.compaction import punch
    scratch = tmp_path / "scratch"
    scratch.write_bytes(b"\1" * (1 << 16))
    with open(scratch, "r+b") as f:
        os.fsync(f.fileno())
        before = os.fstat(f.fileno()).st_blocks
        return punch(f.fileno(), 0, 1 << 15) and os.fstat(f.fileno()).st_blocks < before
