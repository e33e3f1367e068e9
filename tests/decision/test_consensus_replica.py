"""The sans-IO replica driven by hand: fast path, batching, pipelining, exactly-once, restarts.

A perfect FIFO network (``Net``) moves outboxes between replicas, so each test states exactly
which messages flow; faults are the simulator's business (test_sim_*).
"""

from __future__ import annotations

import random
from collections import deque

import msgspec
import pytest

from agora.decision.consensus import (
    Broadcast,
    Client,
    ClientBusy,
    Committed,
    MemoryStorage,
    Replica,
    ReplicaConfig,
    Reply,
    Request,
    Send,
    Status,
    ToClient,
    decode,
    encode,
)
from agora.decision.consensus.messages import (
    Commit,
    DoViewChange,
    Prepare,
    PrepareOk,
    PreVote,
    PreVoteOk,
    RequestBatch,
    StartViewChange,
)
from agora.decision.consensus.storage import FsyncPolicy
from agora.decision.sim.storage import SimStorage

CLUSTER = 11


class Net:
    """Replicas on a lossless FIFO network; every message crosses as wire bytes."""

    def __init__(self, n: int = 3, storages: list | None = None, **config: int) -> None:
        self.n = n
        self.now = 1_000
        self.config = config
        self.storages = storages or [MemoryStorage() for _ in range(n)]
        self.replicas = [self._boot(r) for r in range(n)]
        self.queue: deque[tuple[int, int, bytes]] = deque()
        self.committed: dict[int, list[Committed]] = {r: [] for r in range(n)}
        self.replies: list[Reply] = []  # the leader's
        self.acks: list[Reply] = []  # backup acknowledgements
        self.sent: list[tuple[int, int, object]] = []
        self.down: set[int] = set()

    def _boot(self, r: int, applied_index: int = 0, incarnation: int = 1) -> Replica:
        replica = Replica(ReplicaConfig(cluster=CLUSTER, replica=r, n=self.n, **self.config),
                          self.storages[r], applied_index=applied_index,
                          incarnation=incarnation)
        replica.start(self.now)
        return replica

    def restart(self, r: int, applied_index: int = 0, incarnation: int = 2) -> list:
        replica = Replica(ReplicaConfig(cluster=CLUSTER, replica=r, n=self.n, **self.config),
                          self.storages[r], applied_index=applied_index, incarnation=incarnation)
        self.replicas[r] = replica
        out = replica.start(self.now)
        self.route(r, out)
        return out

    def route(self, src: int, out: list) -> None:
        for item in out:
            if isinstance(item, Send):
                self.queue.append((src, item.to, encode(item.message)))
            elif isinstance(item, Broadcast):
                for dst in range(self.n):
                    if dst != src:
                        self.queue.append((src, dst, encode(item.message)))
            elif isinstance(item, ToClient):
                reply = item.message
                leader = reply.replica == reply.view % self.n
                (self.replies if leader else self.acks).append(reply)
            elif isinstance(item, Committed):
                self.committed[src].append(item)

    def submit(self, client: int, number: int, payload: bytes = b"x", budget_ns: int = 0,
               to: int = 0) -> None:
        self.route(to, self.replicas[to].submit(client, number, payload, budget_ns, self.now))

    def step(self) -> tuple[int, int, object]:
        src, dst, data = self.queue.popleft()
        message = decode(data)
        if dst in self.down:
            return src, dst, message
        self.sent.append((src, dst, message))
        self.route(dst, self.replicas[dst].on_message(message, self.now))
        return src, dst, message

    def commit_each(self, clients: range) -> None:
        """Request 1 of each client, one at a time, then the heartbeat that carries the commit
        number to the backups."""
        for client in clients:
            self.submit(client, 1)
            self.pump()
        self.tick(3_000_000)
        self.pump()

    def pump(self, limit: int = 10_000) -> None:
        while self.queue and limit:
            self.step()
            limit -= 1

    def tick(self, advance_ns: int) -> None:
        self.now += advance_ns
        for r, replica in enumerate(self.replicas):
            if r not in self.down:
                self.route(r, replica.on_tick(self.now))


def test_a_request_commits_at_the_leader_after_one_round_trip():
    net = Net(3)
    net.submit(1, 1, b"hello")
    kinds = []
    while not net.committed[0]:
        kinds.append(type(net.step()[2]).__name__)
    # leader -> 2 backups (Prepare), first PrepareOk back: f = 1 backup + the leader suffice
    assert kinds == ["Prepare", "Prepare", "PrepareOk"]
    assert net.committed[0] == [Committed(1, 0, 1, 1, b"hello", False)]
    # backup 1 told the client before its PrepareOk, so the leader does not repeat it
    assert net.acks == [Reply(CLUSTER, 1, 0, 1, 1, 1, False)] and net.replies == []
    net.pump()
    net.tick(3_000_000)  # heartbeat carries the commit number to the backups
    net.pump()
    assert all(net.committed[r] == net.committed[0] for r in range(3))


def test_the_backups_after_the_leader_acknowledge_fresh_requests_without_a_deadline():
    net = Net(3)
    net.submit(1, 1, b"a")
    net.submit(2, 1, b"b", budget_ns=5_000_000)  # a deadline: its verdict comes with commit
    net.pump()
    assert net.acks == [Reply(CLUSTER, 1, 0, 1, 1, 1, False)]  # replica 1 only (f = 1)
    net.tick(3_000_000)  # the leader resends nothing acked; heartbeats: no second ack
    net.pump()
    assert len(net.acks) == 1
    # the leader answers only what no acknowledgement covered: the request with a deadline
    assert [(r.client_id, r.index) for r in net.replies] == [(2, 2)]

    five = Net(5)
    five.submit(7, 1)
    five.pump()
    assert sorted(r.replica for r in five.acks) == [1, 2]  # the f = 2 backups after the leader

    acker_down = Net(3)
    acker_down.down = {1}
    acker_down.submit(3, 1)
    acker_down.pump()  # commits through backup 2, which does not acknowledge: the leader does
    assert acker_down.acks == [] and acker_down.replies == [Reply(CLUSTER, 0, 0, 3, 1, 1, False)]

    quiet = Net(3, backup_acks=False)
    quiet.submit(1, 1)
    quiet.pump()
    assert quiet.acks == [] and len(quiet.replies) == 1


def test_a_client_settles_on_f_backup_acks_of_one_view_and_index_or_the_leaders_reply():
    def client(n: int) -> Client:
        c = Client(CLUSTER, 3, n)
        c.request(b"p", 0, now_ns=0)
        return c

    ack = Reply(CLUSTER, 1, 0, 3, 1, 9, False)
    assert client(3).on_reply(ack, 1) == ack  # f = 1
    five = client(5)
    assert five.on_reply(ack, 1) is None
    assert five.on_reply(ack, 2) is None, "the same backup twice is one ack"
    assert five.on_reply(Reply(CLUSTER, 2, 0, 3, 1, 8, False), 3) is None, "another index"
    assert five.on_reply(Reply(CLUSTER, 2, 5, 3, 1, 9, False), 3) is None, "another view"
    assert five.on_reply(Reply(CLUSTER, 2, 0, 3, 1, 9, True), 3) is None, "acks never abandon"
    second = Reply(CLUSTER, 2, 0, 3, 1, 9, False)
    assert five.on_reply(second, 4) == second and not five.busy
    leader = client(5)
    assert leader.on_reply(Reply(CLUSTER, 0, 5, 3, 1, 4, False), 1) is not None  # 5 % 5 = 0


def test_pipeline_window_bounds_prepares_in_flight_and_batches_the_queue():
    net = Net(3, pipeline_max=2, batch_max=8)
    for client in range(1, 8):
        net.submit(client, 1)
    assert net.replicas[0].op == 2  # two Prepares in flight, five requests queued
    assert len(net.replicas[0].pending) == 5
    net.pump()
    prepares = [m for _, dst, m in net.sent if isinstance(m, Prepare) and dst == 1]
    assert [len(p.entries) for p in prepares] == [1, 1, 5]
    assert [c.client_id for c in net.committed[0]] == list(range(1, 8))


def test_batch_max_caps_entries_per_prepare():
    net = Net(3, pipeline_max=64, batch_max=3)
    leader = net.replicas[0]
    leader.pending.extend((Request(CLUSTER, c, 1, 0, b"p"), 0) for c in range(1, 8))
    out = leader.on_tick(net.now)
    sizes = [len(item.message.entries) for item in out if isinstance(item, Broadcast)
             and isinstance(item.message, Prepare)]
    assert sizes == [3, 3, 1]


def test_a_request_batch_is_one_prepare_and_keeps_exactly_once_per_client():
    net = Net(3, batch_max=64)
    net.submit(9, 1, b"done")
    net.pump()
    batch = RequestBatch(CLUSTER, (
        Request(CLUSTER, 1, 1, 0, b"a"), Request(CLUSTER, 2, 1, 0, b"b"),
        Request(CLUSTER, 1, 1, 0, b"a"),  # the same request twice in one batch: once
        Request(CLUSTER + 1, 3, 1, 0, b"foreign"),  # another cluster's request: ignored
        Request(CLUSTER, 9, 1, 0, b"done"),  # a retry of a committed one: the cached reply
        Request(CLUSTER, 4, 1, 0, b"d")))
    net.queue.append((-1, 0, encode(batch)))
    net.pump()
    prepares = [m for _, dst, m in net.sent if isinstance(m, Prepare) and dst == 1]
    assert [len(p.entries) for p in prepares] == [1, 3]
    assert [(c.client_id, c.payload) for c in net.committed[0]] == [
        (9, b"done"), (1, b"a"), (2, b"b"), (4, b"d")]
    assert sorted((r.client_id, r.index) for r in net.acks) == [(1, 2), (2, 3), (4, 4), (9, 1)]
    assert [(r.client_id, r.index) for r in net.replies] == [(9, 1)]  # the retry: cached
    assert net.replicas[1].on_message(batch, net.now) == []  # a backup ignores requests


def test_duplicates_and_retries_commit_once_and_get_the_cached_reply():
    net = Net(3)
    net.submit(5, 1, b"a")
    net.submit(5, 1, b"a")  # duplicate while in flight: dropped
    net.pump()
    net.submit(5, 1, b"a")  # retry after commit: cached reply, no new entry
    net.submit(5, 0 + 1, b"a")
    net.pump()
    assert [c.index for c in net.committed[0]] == [1]
    assert net.acks == [Reply(CLUSTER, 1, 0, 5, 1, 1, False)]  # the commit itself
    assert net.replies == [Reply(CLUSTER, 0, 0, 5, 1, 1, False)] * 2  # the two retries
    net.submit(5, 2, b"b")
    net.pump()
    net.submit(5, 1, b"a")  # older than the last committed: ignored
    assert [c.request_number for c in net.committed[0]] == [1, 2]
    assert net.replicas[0].clients[5].request_number == 2


def test_backup_takes_duplicated_and_reordered_prepares_and_acks_cumulatively():
    net = Net(3)
    backup = net.replicas[1]
    for number in range(1, 4):
        net.submit(number, 1)
    prepares = [decode(data) for src, dst, data in net.queue if dst == 1]
    entries = [e for p in prepares for e in p.entries]
    assert [e.index for e in entries] == [1, 2, 3]
    out = backup.on_message(prepares[2], net.now)  # index 3 first: a gap, asks for the log
    assert [type(item.message).__name__ for item in out] == ["RequestStartView"]
    assert backup.op == 0
    for prepare in (prepares[0], prepares[0], prepares[1], prepares[2], prepares[1]):
        out = backup.on_message(prepare, net.now)
    assert backup.log == entries
    assert [item.message for item in out] == [PrepareOk(CLUSTER, 1, 0, 3)]


def test_a_backup_without_its_leader_starts_a_view_change_and_a_new_leader_commits():
    net = Net(3)
    net.submit(1, 1)
    net.pump()
    net.down.add(0)  # the leader is gone for good
    for _ in range(40):
        net.tick(1_000_000)
        net.pump()
    assert net.replicas[1].status is Status.NORMAL and net.replicas[1].view == 1
    net.submit(2, 1, to=1)
    net.pump()
    assert [c.client_id for c in net.committed[1]] == [1, 2]
    assert [c.view for c in net.committed[1]] == [0, 1]
    assert net.replicas[2].log == net.replicas[1].log


def test_a_new_leader_sends_no_start_view_to_a_silent_replica_which_asks_when_it_hears():
    """The old leader took no part in the view change, so its committed prefix is unknown: the
    new leader sends it no StartView (it would have to carry the log from entry 1); back, it
    hears the new view's heartbeat, asks from its commit number and catches up from there."""
    net = Net(3)
    net.commit_each(range(1, 6))
    net.down.add(0)
    for _ in range(40):
        net.tick(1_000_000)
        net.pump()
    assert net.replicas[1].status is Status.NORMAL and net.replicas[1].view == 1
    assert not [m for src, dst, m in net.sent if dst == 0 and type(m).__name__ == "StartView"]
    net.submit(6, 1, to=1)
    net.pump()
    net.down.clear()
    for _ in range(5):
        net.tick(3_000_000)
        net.pump()
    old = net.replicas[0]
    assert (old.view, old.status, old.commit) == (1, Status.NORMAL, 6)
    assert old.log == net.replicas[1].log
    asked = [m for src, dst, m in net.sent if src == 0 and type(m).__name__ == "RequestStartView"]
    assert asked and asked[0].base == 5  # its commit number: the prefix it can vouch for


def test_a_voter_waits_for_the_new_leaders_commit_and_sends_only_the_log_after_it():
    """A DoViewChange carries the log after the commit number the new leader announced; a
    voter that has its f + 1 votes before that announcement waits for it rather than send its
    whole log (and resend it every resend interval: at n = 7 with thousands of entries, those
    starved the replicas through failover after failover)."""
    net = Net(5)
    net.commit_each(range(1, 41))
    voter = net.replicas[3]
    assert voter.commit == voter.op == 40
    dvcs = []
    for sender in (2, 4):  # f + 1 = 3 votes for view 1 with its own, none from its leader 1
        out = voter.on_message(StartViewChange(CLUSTER, sender, 1, 40), net.now)
        dvcs += [item for item in out if isinstance(item, Send)
                 and isinstance(item.message, DoViewChange)]
    assert voter.status is Status.VIEW_CHANGE and dvcs == []
    out = voter.on_message(StartViewChange(CLUSTER, 1, 1, 38), net.now)  # the leader's
    dvc = [item.message for item in out if isinstance(item, Send)
           and isinstance(item.message, DoViewChange)]
    assert [(m.base, m.op, len(m.entries)) for m in dvc] == [(38, 40, 2)]
    assert [item.to for item in out if isinstance(item, Send)] == [1]


@pytest.mark.parametrize("pre_vote", [True, False])
def test_a_backup_cut_off_alone_asks_first_and_leaves_a_healthy_cluster_alone(pre_vote: bool):
    net = Net(3, pre_vote=pre_vote)
    net.submit(1, 1)
    net.pump()
    net.down.add(2)  # cut off (or stopped) for 30 ms: the leader and backup 1 carry on
    for _ in range(30):
        net.tick(1_000_000)
        net.pump()
    net.down.clear()
    out = net.replicas[2].on_tick(net.now)  # it wakes: its leader has been silent for 30 ms
    asks = [type(item.message).__name__ for item in out if isinstance(item, Broadcast)]
    assert asks == (["PreVote"] if pre_vote else ["StartViewChange"])
    net.route(2, out)
    net.pump()
    for _ in range(5):
        net.tick(1_000_000)
        net.pump()
    views = [replica.view for replica in net.replicas]
    if pre_vote:  # nobody agreed (the leader is alive, backup 1 hears it): nothing happened
        assert views == [0, 0, 0]
        assert all(replica.status is Status.NORMAL for replica in net.replicas)
    else:  # VR without a pre-vote: the whole cluster follows it into a view change
        assert min(views) >= 1


def test_a_pre_vote_is_refused_by_a_replica_that_hears_its_leader_and_granted_otherwise():
    net = Net(3)
    net.submit(1, 1)
    net.pump()
    backup = net.replicas[1]
    ask = PreVote(CLUSTER, 2, 1)
    assert backup.on_message(ask, net.now) == []  # it heard the leader just now
    assert net.replicas[0].on_message(ask, net.now) == []  # a leader never agrees
    later = net.now + 100_000_000  # nothing heard from the leader for 100 ms
    assert [item.message for item in backup.on_message(ask, later)] == [
        PreVoteOk(CLUSTER, 1, 1)]
    assert backup.view == 0 and backup.status is Status.NORMAL  # answering changes nothing
    assert backup.on_message(PreVote(CLUSTER, 2, 0), later) == []  # behind us: no


def test_pre_vote_grants_from_an_earlier_silence_do_not_count_again():
    net = Net(5)
    net.submit(1, 1)
    net.pump()
    backup = net.replicas[1]
    silent = net.now + 100_000_000
    backup.on_tick(silent)  # asks for view 1
    backup.on_message(PreVoteOk(CLUSTER, 2, 1), silent)
    assert backup.pre_votes == {1, 2} and backup.view == 0  # f = 2: one more needed
    later = silent + 50_000_000  # it heard its leader meanwhile; now silence again
    backup.marks["heard"] = silent + 10_000_000
    backup.on_tick(later)
    assert backup.pre_votes == {1}, "a new round starts from scratch"
    backup.on_message(PreVoteOk(CLUSTER, 3, 1), later)
    assert backup.view == 0 and backup.status is Status.NORMAL


def test_durable_restart_re_emits_from_the_application_point():
    net = Net(3)
    for client in range(1, 5):
        net.submit(client, 1)
    net.pump()
    net.tick(3_000_000)
    net.pump()
    before = net.committed[1]
    assert len(before) == 4
    net.committed[1] = []
    net.restart(1, applied_index=2)
    assert net.replicas[1].status is Status.NORMAL
    assert net.committed[1] == before[2:]  # 3 and 4 again, exactly once each


def test_restarted_leader_hands_over_to_the_next_view():
    net = Net(3)
    net.submit(1, 1)
    net.pump()
    out = net.restart(0)
    assert net.replicas[0].status is Status.VIEW_CHANGE and net.replicas[0].view == 1
    assert any(isinstance(item, Broadcast) and type(item.message).__name__ == "StartViewChange"
               for item in out)


def test_a_restarted_leader_re_emits_its_log_without_replying_to_every_client_again():
    """A restart re-applies the stored log; the clients heard of those entries long ago, so
    no reply goes out for them (a long session's restart would send one per entry)."""
    net = Net(3)
    net.commit_each(range(1, 6))
    out = net.restart(0)
    assert [item.index for item in out if isinstance(item, Committed)] == [1, 2, 3, 4, 5]
    assert not [item for item in out if isinstance(item, ToClient)]


def test_lossy_restart_recovers_from_the_cluster_before_taking_part():
    rng_storages = [SimStorage(FsyncPolicy.NONE, random.Random(r)) for r in range(3)]
    net = Net(3, storages=rng_storages)
    for client in range(1, 4):
        net.submit(client, 1)
    net.pump()
    rng_storages[2].crash(survive=0)  # nothing was synced: the backup's whole log is gone
    assert rng_storages[2].load().entries == []
    net.committed[2] = []
    net.restart(2)
    recovering = net.replicas[2]
    assert recovering.status is Status.RECOVERING
    assert recovering.on_message(Prepare(CLUSTER, 0, 0, 3, ()), net.now) == []  # no part yet
    net.pump()
    assert recovering.status is Status.NORMAL
    assert recovering.log == net.replicas[0].log
    assert [c.client_id for c in net.committed[2]] == [1, 2, 3]


@pytest.mark.parametrize("pre_vote", [True, False])
def test_a_replica_that_joined_a_view_late_asks_before_moving_the_cluster_on(pre_vote: bool):
    """Found on real links (``test_consensus_netns``): an old leader, its link mended, hears view
    1's leader and joins view 1 in view-change status, but its StartView is slow to come (ARP
    had to resolve again). Its view-change timer must not drag a cluster with a live leader
    through view after view: with pre-vote it keeps asking for the StartView instead."""
    net = Net(3, pre_vote=pre_vote)
    net.submit(1, 1)
    net.pump()
    net.down.add(0)  # the leader is cut off; 1 and 2 go on in view 1
    for _ in range(40):
        net.tick(1_000_000)
        net.pump()
    assert [(r.view, r.status) for r in net.replicas[1:]] == [(1, Status.NORMAL)] * 2
    old = net.replicas[0]
    old.on_message(Commit(CLUSTER, 1, 1, net.replicas[1].commit), net.now)  # heard once
    assert old.status is Status.VIEW_CHANGE and old.view == 1
    for _ in range(60):  # 60 ms in which nothing reaches it (what it sends gets through)
        net.now += 1_000_000
        for r, replica in enumerate(net.replicas):
            net.route(r, replica.on_tick(net.now))
        net.pump()
    if not pre_vote:  # VR as written: the others follow it into the next views
        assert min(r.view for r in net.replicas[1:]) >= 2
        return
    assert [r.view for r in net.replicas] == [1, 1, 1]
    assert [r.status for r in net.replicas[1:]] == [Status.NORMAL] * 2
    net.down.clear()
    for _ in range(5):
        net.tick(1_000_000)
        net.pump()
    assert old.status is Status.NORMAL and old.view == 1 and old.log == net.replicas[1].log


def test_commit_messages_from_a_later_view_make_a_replica_catch_up():
    net = Net(3)
    net.submit(1, 1)
    net.pump()
    stale = net.replicas[2]
    out = stale.on_message(Commit(CLUSTER, 1, 1, 1), net.now)
    assert stale.status is Status.VIEW_CHANGE and stale.view == 1
    assert [type(item.message).__name__ for item in out] == ["RequestStartView"]


def test_foreign_cluster_and_spoofed_senders_are_ignored():
    net = Net(3)
    backup = net.replicas[1]
    assert backup.on_message(Commit(CLUSTER + 1, 0, 0, 5), net.now) == []
    assert backup.on_message(Commit(CLUSTER, 1, 0, 5), net.now) == []  # "from" itself
    assert backup.on_message(Commit(CLUSTER, 9, 0, 5), net.now) == []  # no such replica


def test_messages_of_an_older_view_are_ignored_and_a_view_change_answers_by_kind():
    """The dispatch's view and status rules, message kind by kind: a stale view's Prepare,
    Commit or PrepareOk changes nothing; while changing views, a Prepare or Commit of the new
    view asks for it (the view started without us), a PrepareOk does not."""
    net = Net(3)
    net.submit(1, 1)
    net.pump()
    backup = net.replicas[1]
    before = (backup.view, backup.status, backup.op, backup.commit)
    for stale in (Prepare(CLUSTER, 0, -1, 0, ()), Commit(CLUSTER, 0, -1, 9),
                  PrepareOk(CLUSTER, 2, -1, 9)):
        assert backup.on_message(stale, net.now) == []
    assert (backup.view, backup.status, backup.op, backup.commit) == before
    changing = net.replicas[2]
    changing._start_view_change(1, net.now, [])
    assert changing.status is Status.VIEW_CHANGE
    assert changing.on_message(PrepareOk(CLUSTER, 1, 1, 1), net.now) == []
    asked = changing.on_message(Commit(CLUSTER, 1, 1, 1), net.now)
    assert [type(item.message).__name__ for item in asked] == ["RequestStartView"]


def test_config_rejects_an_even_cluster_and_bad_limits():
    with pytest.raises(ValueError, match="odd"):
        ReplicaConfig(cluster=1, replica=0, n=4)
    with pytest.raises(ValueError, match="replica 3"):
        ReplicaConfig(cluster=1, replica=3, n=3)
    with pytest.raises(ValueError, match="pipeline_max"):
        ReplicaConfig(cluster=1, replica=0, n=3, pipeline_max=0)
    assert ReplicaConfig(cluster=1, replica=0, n=5).commit_quorum == 3


def test_replica_refuses_steps_before_start():
    replica = Replica(ReplicaConfig(cluster=1, replica=0, n=3), MemoryStorage())
    with pytest.raises(RuntimeError, match="start"):
        replica.on_tick(0)
    replica.start(0)
    with pytest.raises(RuntimeError, match="once"):
        replica.start(0)


def test_single_replica_commits_alone():
    net = Net(1)
    net.submit(1, 1, b"solo")
    assert net.committed[0] == [Committed(1, 0, 1, 1, b"solo", False)]


def test_client_retries_by_broadcast_with_the_remaining_budget():
    client = Client(CLUSTER, 3, 3, retry_ns=1_000)
    out = client.request(b"p", 5_000, now_ns=100)
    assert out == [Send(0, Request(CLUSTER, 3, 1, 5_000, b"p"))]
    with pytest.raises(ClientBusy):
        client.request(b"q", 0, now_ns=100)
    assert client.on_tick(500) == []
    assert client.on_tick(1_100) == [Broadcast(Request(CLUSTER, 3, 1, 4_000, b"p"))]
    assert client.on_tick(9_000) == [Broadcast(Request(CLUSTER, 3, 1, 1, b"p"))]
    assert client.on_reply(Reply(CLUSTER, 2, 4, 3, 0, 1, False), 9_000) is None  # stale number
    reply = Reply(CLUSTER, 1, 4, 3, 1, 7, True)
    assert client.on_reply(reply, 9_100) == reply and not client.busy
    assert client.request(b"q", 0, now_ns=9_200) == [Send(4 % 3, Request(CLUSTER, 3, 2, 0, b"q"))]


def _pump(replicas: dict, queue: list, now: int, *, cut: int | None = None) -> None:
    """Deliver queued messages (``(to, message)``) until quiet; hold those to or from ``cut``."""
    held = []
    while queue:
        to, message = queue.pop(0)
        if cut is not None and (to == cut or getattr(message, "replica", -1) == cut):
            held.append((to, message))
            continue
        for item in replicas[to].on_message(message, now):
            _route(replicas, to, item, queue)
    queue.extend(held)


def _route(replicas: dict, sender: int, item: object, queue: list) -> None:
    if isinstance(item, Send):
        queue.append((item.to, item.message))
    elif isinstance(item, Broadcast):
        queue.extend((r, item.message) for r in replicas if r != sender)


def test_capped_start_view_must_not_truncate_an_excluded_replicas_applied_log():
    """Regression (found on real processes under overload): a new leader that never heard a
    replica's commit number sends it a StartView from index 0, capped at ``repair_max``; the
    replica used to adopt that short prefix and cut entries it had already applied."""
    config = ReplicaConfig(cluster=1, replica=0, n=3, repair_max=2)
    replicas = {i: Replica(msgspec.structs.replace(config, replica=i), MemoryStorage())
                for i in range(3)}
    queue: list = []
    for i, replica in replicas.items():
        for item in replica.start(0):
            _route(replicas, i, item, queue)
    for number in range(1, 6):
        for item in replicas[0].submit(1 + number, 1, b"op%d" % number, 0, 1_000):
            _route(replicas, 0, item, queue)
        _pump(replicas, queue, 1_000)
    assert replicas[0].applied == 5  # replica 0 led view 0 and applied 5 entries
    late = 1_000 + 10 * config.view_change_timeout_ns
    for i in (1, 2):  # replica 0 is cut off; 1 and 2 move to view 1 without hearing from it
        for item in replicas[i].on_tick(late):
            _route(replicas, i, item, queue)
    _pump(replicas, queue, late, cut=0)
    assert replicas[1].view == 1 and replicas[1].status is Status.NORMAL
    # the StartView held for replica 0 has base 0 (its commit was never heard) and 2 entries
    _pump(replicas, queue, late)
    assert replicas[0].applied == 5 and replicas[0].view == 1
    assert [e.payload for e in replicas[0].log] == [e.payload for e in replicas[1].log]


def test_a_full_queue_answers_queue_full_and_the_request_gets_in_later():
    net = Net(3, pipeline_max=1, batch_max=1, pending_max=1)
    for client in (1, 2, 3):  # 1 is prepared, 2 waits in the queue, 3 finds it full
        net.submit(client, 1)
    assert net.replies == [Reply(CLUSTER, 0, 0, 3, 1, 0, False, True)]
    assert net.replicas[0].stats.requests_dropped == 1
    assert decode(encode(net.replies[0])).queue_full  # the flag crosses the wire
    net.pump()
    net.submit(3, 1)  # the client's retry, once the queue drained
    net.pump()
    assert sorted(c.client_id for c in net.committed[0]) == [1, 2, 3]


def test_queue_full_retries_go_to_the_leader_after_a_doubling_pause():
    client = Client(CLUSTER, 3, 3, retry_ns=4_000_000)
    client.request(b"p", 0, now_ns=0)
    full = Reply(CLUSTER, 1, 4, 3, 1, 0, False, True)  # from the leader of view 4
    assert client.on_reply(full, 100) is None and client.busy
    assert client.queue_full_replies == 1
    assert client.on_tick(400_000) == []
    assert client.on_tick(500_100) == [Send(1, Request(CLUSTER, 3, 1, 0, b"p"))]
    assert client.on_tick(600_000) == []  # one retry per queue-full reply
    client.on_reply(full, 600_000)
    assert client.on_tick(1_500_000) == []  # the pause doubled: 1 ms
    assert client.on_tick(1_600_000) == [Send(1, Request(CLUSTER, 3, 1, 0, b"p"))]
    for _ in range(5):
        client.on_reply(full, 1_700_000)
    assert client.full_pause_ns == 4_000_000  # capped at the retry timer
    # the broadcast timer runs on regardless: a leader that stays full cannot hold the client
    assert client.on_tick(4_000_000) == [Broadcast(Request(CLUSTER, 3, 1, 0, b"p"))]
    settled = Reply(CLUSTER, 1, 4, 3, 1, 9, False)
    assert client.on_reply(settled, 4_100_000) == settled and client.full_retry_ns is None


def test_queue_full_from_a_backup_or_for_another_request_changes_nothing():
    client = Client(CLUSTER, 3, 3, retry_ns=4_000_000)
    client.request(b"p", 0, now_ns=0)
    for reply in (Reply(CLUSTER, 2, 4, 3, 1, 0, False, True),  # a backup never queues
                  Reply(CLUSTER, 1, 4, 3, 7, 0, False, True),  # another request number
                  Reply(CLUSTER + 1, 1, 4, 3, 1, 0, False, True)):  # another cluster
        assert client.on_reply(reply, 100) is None
    assert client.queue_full_replies == 0 and client.full_retry_ns is None
    assert client.on_tick(3_000_000) == []


def test_a_queue_full_retry_keeps_the_remaining_budget_and_survives_a_clock_jump():
    client = Client(CLUSTER, 3, 3, retry_ns=4_000_000)
    client.request(b"p", 3_000_000, now_ns=1_000_000)
    client.on_reply(Reply(CLUSTER, 0, 0, 3, 1, 0, False, True), 1_000_000)
    # the clock went back by a second: the pause would never end, so the retry goes at once
    assert client.on_tick(0) == [Send(0, Request(CLUSTER, 3, 1, 3_000_000, b"p"))]
    client.on_reply(Reply(CLUSTER, 0, 0, 3, 1, 0, False, True), 100)
    assert client.on_tick(2_000_100) == [Send(0, Request(CLUSTER, 3, 1, 1_999_900, b"p"))]
    # the broadcast timer restarted at the jump; by then the budget is spent: 1 ns, still one
    assert client.on_tick(4_000_000) == [Broadcast(Request(CLUSTER, 3, 1, 1, b"p"))]
