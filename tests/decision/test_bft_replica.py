"""The sans-IO PBFT replica driven by hand: normal case, authentication drops, view change
rules (the pure ``decide``), NewView checks and configuration."""

from __future__ import annotations

import hmac
import itertools
from collections import deque

import msgspec
import pytest

from agora.decision.bft import AuthMode, BftClient, BftConfig, BftReplica, Keyring, Phase
from agora.decision.bft.messages import (
    ZERO_CHAIN,
    ClientReply,
    ClientRequest,
    Commit,
    NewView,
    PEntry,
    Prepare,
    QEntry,
    Sealed,
    Status,
    ViewChange,
    decode,
    decode_inner,
    digest,
    encode,
)
from agora.decision.bft.storage import FileBftStorage, MemoryBftStorage, StorageDamaged
from agora.decision.bft.suspicion import FRESH_HEARTBEATS
from agora.decision.bft.view_change import NULL_DIGEST, decide
from agora.decision.consensus.messages import Broadcast, Committed, Send, ToClient
from agora.decision.consensus.storage import FsyncPolicy

CLUSTER = 7


class Net:
    """FIFO delivery of wire bytes among n replicas and one client; ``cut`` drops a replica."""

    def __init__(self, n: int = 4, auth: AuthMode = AuthMode.MACS, **config: int) -> None:
        self.keys = Keyring("test", n)
        self.replicas = [BftReplica(BftConfig(cluster=CLUSTER, replica=r, n=n, auth=auth,
                                              **config), self.keys) for r in range(n)]
        self.client = BftClient(CLUSTER, 1, self.keys)
        self.queue: deque[tuple[int, bytes]] = deque()
        self.committed: dict[int, list[Committed]] = {r: [] for r in range(n)}
        self.accepted: list = []
        self.cut: set[int] = set()
        self.now = 0
        for replica in self.replicas:
            replica.start(0)

    def route(self, source: int, out: list) -> None:
        n = len(self.replicas)
        for item in out:
            if isinstance(item, Send):
                self.queue.append((item.to, encode(item.message)))
            elif isinstance(item, Broadcast):
                for r in range(n):
                    if r != source:
                        self.queue.append((r, encode(item.message)))
            elif isinstance(item, ToClient):
                self.queue.append((-1, encode(item.message)))
            elif isinstance(item, Committed):
                self.committed[source].append(item)

    def run(self, ticks: int = 0) -> None:
        for _ in range(ticks + 1):
            while self.queue:
                to, data = self.queue.popleft()
                message = decode(data)
                if to == -1:
                    reply = self.client.on_reply(message, self.now)
                    if reply is not None:
                        self.accepted.append(reply)
                elif to not in self.cut:
                    self.route(to, self.replicas[to].on_message(message, self.now))
            if ticks:
                self.now += 1_000_000
                for r, replica in enumerate(self.replicas):
                    if r not in self.cut:
                        self.route(r, replica.on_tick(self.now))
                self.route(-1, self.client.on_tick(self.now))

    def submit(self, payload: bytes) -> None:
        self.route(-1, self.client.request(payload, 0, self.now))


@pytest.mark.parametrize("auth", list(AuthMode))
def test_normal_case_commits_everywhere_and_the_client_accepts_f_plus_1_replies(auth):
    net = Net(auth=auth)
    for k in range(3):
        net.submit(b"order-%d" % k)
        net.run()
        assert net.accepted[-1].request_number == k + 1 and net.accepted[-1].index == k + 1
    for r in range(4):
        assert [c.payload for c in net.committed[r]] == [b"order-0", b"order-1", b"order-2"]
    assert all(replica.executed == 3 and replica.view == 0 for replica in net.replicas)


def test_one_replica_cut_off_is_tolerated_and_catches_up_by_state_transfer():
    net = Net()
    net.cut = {3}
    for k in range(5):
        net.submit(b"x%d" % k)
        net.run(ticks=1)
    assert len(net.committed[0]) == 5 and net.committed[3] == []
    net.cut = set()
    net.run(ticks=30)  # idle checkpoints, then Status -> Fill
    assert net.committed[3] == net.committed[0]
    assert net.replicas[3].stats.fills >= 1


def test_a_replica_far_behind_is_filled_a_stable_checkpoint_at_a_time():
    """40 batches behind with fill_max 8: Fills of at most 8 batches, each up to a stable
    checkpoint (every 4), each asked for as soon as the last one applied; the batches arrive
    in order and once."""
    net = Net(fill_max=8, checkpoint_every=4)
    net.cut = {3}
    for k in range(40):
        net.submit(b"x%d" % k)
        net.run(ticks=1)
    assert len(net.committed[0]) == 40 and net.committed[3] == []
    sizes: list[int] = []
    behind = net.replicas[3]
    on_fill = behind._on_fill
    behind._on_fill = lambda m, now, out: (sizes.append((m.start, len(m.batches))),
                                           on_fill(m, now, out))
    net.cut = set()
    net.run(ticks=10)  # two Status periods: one to start, then each Fill asks for the next
    assert net.committed[3] == net.committed[0]
    applied = [(start, size) for start, size in sizes if size]
    assert len(applied) >= 5 and all(size <= 8 for _, size in applied)
    assert sorted({start for start, _ in applied}) == list(range(1, 41, 8))


def test_a_silent_primary_is_replaced_by_a_view_change():
    net = Net()
    net.cut = {0}
    net.submit(b"x")
    net.run(ticks=60)
    assert net.accepted and net.accepted[0].index == 1
    live = net.replicas[1:]
    assert all(r.view == 1 and r.phase is Phase.NORMAL for r in live)
    assert live[0].stats.views_started == 1


def _sealed_prepare(keys: Keyring, sender: int, view: int = 0) -> Sealed:
    return keys.seal(sender, Prepare(CLUSTER, sender, view, 1, b"d" * 32), AuthMode.MACS)


def test_bad_authentication_is_dropped_and_counted():
    net = Net()
    target = net.replicas[2]
    good = _sealed_prepare(net.keys, 1)
    bad_mac = Sealed(CLUSTER, 1, good.body, macs=tuple(b"\0" * 32 for _ in range(4)))
    claims_other = Sealed(CLUSTER, 3, good.body, macs=good.macs)  # envelope: 3, body: 1
    stranger = Sealed(CLUSTER, 9, good.body, macs=good.macs)
    bad_sig = Sealed(CLUSTER, 1, good.body, signature=b"\1" * 64)
    for message in (bad_mac, claims_other, stranger, bad_sig):
        assert target.on_message(message, 0) == []
    assert target.stats.dropped_auth == 4
    assert target.on_message(Sealed(CLUSTER + 1, 1, good.body, macs=good.macs), 0) == []
    target.on_message(good, 0)
    target.on_message(good, 0)  # a replay of a counted vote
    assert target.stats.duplicates == 1 and target.stats.dropped_auth == 4


def test_view_change_and_new_view_must_be_signed_even_in_mac_mode():
    keys = Keyring("test", 4)
    vc = ViewChange(CLUSTER, 1, 1, 0, ZERO_CHAIN, (), (), ())
    sealed = keys.seal(1, vc, AuthMode.MACS)
    assert sealed.signature and not sealed.macs
    macs = tuple(hmac.digest(keys.pair_key(1, r), sealed.body, "sha256") for r in range(4))
    macs_only = Sealed(CLUSTER, 1, sealed.body, macs=macs)  # authentic MACs, yet refused
    assert keys.open(2, macs_only, AuthMode.MACS) is None
    assert keys.open(2, sealed, AuthMode.MACS) == vc


def test_a_replayed_old_view_message_is_dropped():
    net = Net()
    net.cut = {0}
    net.submit(b"x")
    net.run(ticks=60)
    replica = net.replicas[2]
    before = replica.stats.dropped_view
    replica.on_message(_sealed_prepare(net.keys, 1, view=0), net.now)
    old_vc = net.keys.seal(3, ViewChange(CLUSTER, 3, 1, 0, ZERO_CHAIN, (), (), ()),
                           AuthMode.MACS)
    replica.on_message(old_vc, net.now)  # view 1 is already installed
    assert replica.stats.dropped_view == before + 2


def test_client_rejects_forged_replies_and_needs_f_plus_1_matching():
    keys = Keyring("test", 4)
    client = BftClient(CLUSTER, 1, keys)
    client.request(b"p", 0, 0)
    forged = ClientReply(CLUSTER, 0, 0, 1, 1, 5, b"\0" * 32)
    assert client.on_reply(forged, 0) is None and client.rejected == 1
    first = keys.seal_reply(ClientReply(CLUSTER, 0, 0, 1, 1, 5))
    lie = keys.seal_reply(ClientReply(CLUSTER, 1, 0, 1, 1, 9))
    again = keys.seal_reply(ClientReply(CLUSTER, 0, 0, 1, 1, 5))
    assert client.on_reply(first, 0) is None
    assert client.on_reply(lie, 0) is None
    assert client.on_reply(again, 0) is None  # the same replica twice is one vote
    reply = client.on_reply(keys.seal_reply(ClientReply(CLUSTER, 2, 0, 1, 1, 5)), 0)
    assert reply is not None and reply.index == 5


def test_a_request_with_a_bad_client_mac_is_ignored():
    net = Net()
    request = ClientRequest(CLUSTER, 1, 1, 0, b"p", tuple(b"\0" * 32 for _ in range(4)))
    assert net.replicas[0].on_message(request, 0) == []
    assert net.replicas[0].waiting == {} and net.replicas[0].stats.dropped_auth == 1


# ------------------------------------------------------------------ decide (pure)

def _req(k: int) -> ClientRequest:
    return ClientRequest(CLUSTER, 1, k, 0, b"r%d" % k)


def _vc(replica: int, prepared=(), preprepared=(), view: int = 5) -> ViewChange:
    return ViewChange(CLUSTER, replica, view, 0, ZERO_CHAIN, (), tuple(prepared),
                      tuple(preprepared))


def test_decide_keeps_a_committed_batch_against_a_byzantine_higher_view_claim():
    good, evil = (_req(1),), (_req(2),)
    dg, de = digest(good), digest(evil)
    # d committed at seq 1 in view 2: correct replicas 0 and 1 prepared it; 3 is Byzantine
    # and claims it prepared something else in view 4 (with a matching pre-prepare claim).
    vcs = [_vc(0, [PEntry(1, 2, dg, good)], [QEntry(1, 2, dg)]),
           _vc(2, [], []),
           _vc(3, [PEntry(1, 4, de, evil)], [QEntry(1, 4, de)])]
    assert decide(vcs, 1) is None  # not enough evidence yet: wait for more view changes
    vcs.append(_vc(1, [PEntry(1, 2, dg, good)], [QEntry(1, 2, dg)]))
    decision = decide(vcs, 1)
    assert decision is not None and decision.choices[1].digest == dg and decision.max_seq == 1


def test_decide_chooses_null_for_gaps_and_waits_without_a_quorum():
    batch = (_req(1),)
    d = digest(batch)
    vcs = [_vc(0, [PEntry(2, 1, d, batch)], [QEntry(2, 1, d)]),
           _vc(1, [PEntry(2, 1, d, batch)], [QEntry(2, 1, d)]), _vc(2)]
    decision = decide(vcs, 1)
    assert decision is not None and decision.max_seq == 2 and 1 not in decision.choices
    assert decide(vcs[:2], 1) is None
    assert digest(()) == NULL_DIGEST


def test_a_new_view_from_a_non_primary_or_with_a_forged_view_change_is_refused():
    net = Net()
    keys = net.keys
    vcs = tuple(keys.seal(r, _vc(r, view=1), AuthMode.MACS) for r in (1, 2, 3))
    target = net.replicas[2]
    wrong_sender = keys.seal(2, NewView(CLUSTER, 2, 1, vcs), AuthMode.MACS)
    target.on_message(wrong_sender, 0)
    assert target.view == 0
    tampered = (Sealed(CLUSTER, 1, encode(_vc(1, view=1)), signature=bytes(64)), *vcs[1:])
    target.on_message(keys.seal(1, NewView(CLUSTER, 1, 1, tampered), AuthMode.MACS), 0)
    assert target.view == 0 and target.stats.dropped_invalid == 1
    target.on_message(keys.seal(1, NewView(CLUSTER, 1, 1, vcs), AuthMode.MACS), 0)
    assert target.view == 1 and target.phase is Phase.NORMAL


def test_config_requires_3f_plus_1():
    for n in (3, 5, 6):
        with pytest.raises(ValueError):
            BftConfig(cluster=1, replica=0, n=n)
    assert BftConfig(cluster=1, replica=0, n=7).f == 2


def test_wire_round_trip():
    keys = Keyring("test", 4)
    sealed = keys.seal(1, Commit(CLUSTER, 1, 3, 9, b"d"), AuthMode.MACS)
    assert decode(encode(sealed)) == sealed
    assert decode_inner(sealed.body) == Commit(CLUSTER, 1, 3, 9, b"d")
    # a Status from a replica without the suspect flag (appended later) still decodes
    older = msgspec.msgpack.encode(["Status", CLUSTER, 2, 4, 17])
    assert decode_inner(older) == Status(CLUSTER, 2, 4, 17, False)
    assert decode_inner(encode(Status(CLUSTER, 2, 4, 17, True))).suspect


def test_the_trust_claims_canary_lets_one_liar_rewrite_a_committed_batch():
    good, evil = (_req(1),), (_req(2),)
    dg, de = digest(good), digest(evil)
    vcs = [_vc(0, [PEntry(1, 2, dg, good)], [QEntry(1, 2, dg)]), _vc(2),
           _vc(3, [PEntry(1, 4, de, evil)], [QEntry(1, 4, de)]),
           _vc(1, [PEntry(1, 2, dg, good)], [QEntry(1, 2, dg)])]
    assert decide(vcs, 1).choices[1].digest == dg
    assert decide(vcs, 1, claims=1).choices[1].digest == de  # what rule A2 prevents


def _behind_replica(ahead: list[tuple[int, int]]) -> BftReplica:
    """Replica 3 knows a request whose pre-prepare never reached it, then hears the Status of
    peers (sender, view) that executed 5 batches."""
    keys = Keyring("test", 4)
    replica = BftReplica(BftConfig(cluster=CLUSTER, replica=3, n=4), keys)
    replica.start(0)
    [request] = BftClient(CLUSTER, 1, keys).request(b"x", 0, 0)
    replica.on_message(request.message, 0)
    for sender, view in ahead:
        replica.on_message(_status_of(replica, sender, view, 5), 1_000)
    return replica


def test_a_replica_behind_a_live_view_catches_up_instead_of_leaving_it():
    timeout = BftConfig(cluster=CLUSTER, replica=0, n=4).request_timeout_ns
    live = _behind_replica([(1, 0), (2, 0)])  # f + 1 peers progressed under this primary
    live.on_tick(timeout + 1)
    assert live.phase is Phase.NORMAL and live.view == 0
    live.on_tick(2 * timeout)  # the timers restarted: still waiting for the Fill
    assert live.phase is Phase.NORMAL and live.stats.view_changes_begun == 0
    # one of them left the view (its Status names another): its progress no longer counts
    moved_on = _status_of(live, 2, 1, 5)
    live.on_message(moved_on, 2 * timeout)
    live.on_tick(3 * timeout + 1)
    assert live.suspecting and live.stats.suspicions == 1
    live.on_message(_suspect_status(live, 1, 0, executed=5), 3 * timeout + 2)  # f + 1
    assert live.phase is Phase.VIEW_CHANGE and live.view == 1
    for ahead in ([(1, 0)], [(1, 0), (2, 1)]):  # f peers (maybe liars), or another view
        suspicious = _behind_replica(ahead)
        suspicious.on_tick(timeout + 1)
        assert suspicious.suspecting and suspicious.phase is Phase.NORMAL, ahead


_BEATS = itertools.count(1)  # each Status of a test newer than the last (suspicion.py)


def _status_of(to: BftReplica, sender: int, view: int, executed: int = 0,
               suspect: bool = False, *, boot: int = 1) -> Sealed:
    """A Status of ``sender`` for replica ``to``, sent after it heard ``to``'s incarnation."""
    seen = tuple(to.boot if r == to.me else 0 for r in range(to.config.n))
    status = Status(CLUSTER, sender, view, executed, suspect, boot, next(_BEATS), seen)
    return to.keys.seal(sender, status, AuthMode.MACS)


def _suspect_status(to: BftReplica, sender: int, view: int, executed: int = 0) -> Sealed:
    return _status_of(to, sender, view, executed, True)


def _statuses(out: list) -> list[Status]:
    inner = [decode_inner(item.message.body) for item in out if isinstance(item, Broadcast)]
    return [m for m in inner if isinstance(m, Status)]


def test_a_backup_whose_timer_ran_out_alone_suspects_the_view_and_stays_in_it():
    """Found under CPU load: a backup whose request timer ran out while the primary was only
    slow moved to view 1 alone and stood there for good. Now it suspects view 0 (its Status
    says so at once), keeps serving it, and starts ViewChange(1) only with f + 1 suspecting:
    a peer's suspicion of view 0 or its view change to a later view; a suspicion of another
    view or an old one does not count; the primary's suspicion of its own view counts like any,
    and f + 1 suspecting replicas pull along one whose timer has not run out."""
    timeout = BftConfig(cluster=CLUSTER, replica=0, n=4).request_timeout_ns
    alone = _behind_replica([])
    out = alone.on_tick(timeout + 1)
    assert alone.phase is Phase.NORMAL and alone.view == 0 and alone.suspecting
    assert [(m.view, m.suspect) for m in _statuses(out)] == [(0, True)]
    assert alone.stats.view_changes_begun == 0 and alone.stats.suspicions == 1
    alone.on_message(_suspect_status(alone, 2, 5), timeout + 2)  # another view: no
    alone.on_tick(timeout + 3)
    assert alone.phase is Phase.NORMAL and alone.stats.suspicions == 1  # counted once
    # the request executes (a Fill from peers, here: the suspicion ends without a view change)
    alone.waiting.clear()
    out = alone.on_tick(timeout + alone.config.status_ns + 4)
    assert not alone.suspecting and [m.suspect for m in _statuses(out)] == [False]

    joined = _behind_replica([])
    joined.on_tick(timeout + 1)
    joined.on_message(_suspect_status(joined, 2, 0), timeout + 2)
    assert joined.phase is Phase.VIEW_CHANGE and joined.view == 1

    # a suspicion counts for FRESH_HEARTBEATS Status periods (its sender repeats it each; one
    # that died suspecting stops counting)
    stale = _behind_replica([])
    stale.on_message(_suspect_status(stale, 2, 0), 1_000)
    assert timeout > 1_000 + FRESH_HEARTBEATS * stale.config.status_ns
    stale.on_tick(timeout + 1)
    assert stale.suspecting and stale.phase is Phase.NORMAL
    stale.on_message(_suspect_status(stale, 2, 0), timeout + 2)  # repeated: fresh again
    assert stale.phase is Phase.VIEW_CHANGE and stale.view == 1

    # a replica whose own timer has not run out follows f + 1 suspecting replicas, but not a
    # suspicion replayed after the suspecting replica's progress ended it
    keys = stale.keys
    follower = BftReplica(BftConfig(cluster=CLUSTER, replica=3, n=4), keys)
    follower.start(0)
    old = _suspect_status(follower, 1, 0)  # replica 1 suspects at executed 0...
    follower.on_message(old, 1_000)
    assert follower.phase is Phase.NORMAL and not follower.suspecting  # f: not yet
    over = _status_of(follower, 1, 0, 1)  # ...then executes
    follower.on_message(over, 2_000)
    follower.on_message(old, 3_000)  # a faulty replica replays the old suspicion
    follower.on_message(_suspect_status(follower, 2, 0), 4_000)
    assert follower.phase is Phase.NORMAL, "a replayed suspicion counted"
    follower.on_message(_suspect_status(follower, 1, 0, executed=1), 5_000)  # it suspects again
    assert follower.phase is Phase.VIEW_CHANGE and follower.view == 1

    pulled = _behind_replica([])
    other = BftReplica(BftConfig(cluster=CLUSTER, replica=1, n=4), pulled.keys)
    other.start(0)
    vc_out: list = []
    other._start_view_change(1, 0, vc_out)
    [vc] = [item.message for item in vc_out if isinstance(item, Broadcast)]
    pulled.on_message(vc, 1_000)  # one later view change: alone, not enough to follow
    assert pulled.phase is Phase.NORMAL
    pulled.on_tick(timeout + 1)  # its own timer too: f + 1
    assert pulled.phase is Phase.VIEW_CHANGE and pulled.view == 1

    keys = Keyring("test", 4)
    primary = BftReplica(BftConfig(cluster=CLUSTER, replica=0, n=4), keys)
    primary.start(0)
    [request] = BftClient(CLUSTER, 1, keys).request(b"x", 0, 0)
    primary.on_message(request.message, 0)
    primary.on_tick(timeout + 1)  # (a correct primary can be stuck: suspicion.py)
    assert primary.suspecting and primary.phase is Phase.NORMAL and primary.view == 0
    primary.on_message(_suspect_status(primary, 1, 0), timeout + 2)
    assert primary.phase is Phase.VIEW_CHANGE and primary.view == 1


def test_a_status_older_than_its_senders_latest_is_dropped_whole():
    """A faulty replica forwards a correct one's old suspect Status (its MAC still valid) after
    that replica stopped suspecting without executing more: the old rule (drop one less far
    executed) let it count, and with a faulty replica's own suspicion make f + 1. Each Status
    now names its sender's incarnation and its count in it; an older one, or one of a replaced
    incarnation, is dropped whole, while a restarted sender (a new incarnation) counts afresh."""
    keys = Keyring("test", 4)
    follower = BftReplica(BftConfig(cluster=CLUSTER, replica=3, n=4), keys)
    follower.start(0)
    suspect = _suspect_status(follower, 1, 0)  # replica 1 suspects view 0 at executed 0...
    follower.on_message(suspect, 1_000)
    follower.on_message(_status_of(follower, 1, 0), 2_000)  # ...then no more, executed still 0
    assert follower.on_message(suspect, 3_000) == []  # the replay: dropped, no answer either
    assert follower.stats.dropped_stale == 1 and follower.suspicions == {}
    follower.on_message(_suspect_status(follower, 2, 0), 4_000)  # the faulty replica's own
    assert follower.phase is Phase.NORMAL and follower.view == 0, "a replayed suspicion counted"

    # replica 1 restarts (a later boot, its count from 1, less far executed than before): its
    # suspicion counts, and one of its previous incarnation no longer can
    restarted = keys.seal(1, Status(CLUSTER, 1, 0, 0, False, 2, 1), AuthMode.MACS)
    follower.on_message(restarted, 5_000)
    assert follower.on_message(suspect, 5_500) == [] and follower.stats.dropped_stale == 2
    assert follower.phase is Phase.NORMAL and follower.status_from[1] == (2, 1)
    named = tuple(follower.boot if r == 3 else 0 for r in range(4))  # it has heard replica 3
    follower.on_message(keys.seal(1, Status(CLUSTER, 1, 0, 0, True, 2, 2, named), AuthMode.MACS),
                        6_000)
    assert follower.phase is Phase.VIEW_CHANGE and follower.view == 1


def test_a_restarted_replica_counts_no_status_made_before_its_restart():
    """A replica that has just restarted knows none of its peers' Status messages, so the rule
    above cannot tell a peer's latest from an older one a faulty replica replays to it; with
    the faulty replica's own suspicion that made f + 1. Each Status now names the boot of its
    receiver that its sender has heard: one that does not name the receiver's current boot is
    answered (here: the votes for a slot stuck past ``resend_ns``) and teaches the sender's
    boot, but its suspicion does not count; the sender's next Status, naming it, counts."""
    keys = Keyring("test", 4)
    config = BftConfig(cluster=CLUSTER, replica=3, n=4)
    memory = MemoryBftStorage()
    before = BftReplica(config, keys, memory)
    before.start(0)
    old = _suspect_status(before, 1, 0)  # replica 1 suspected view 0 (heard incarnation 1)
    memory.crash()
    replica = BftReplica(config, keys, memory)
    replica.start(10_000)
    batch = (_req(1),)
    replica.slots[1] = (digest(batch), batch)  # prepared by us, stuck
    replica.slot_ns[1] = 10_000
    later = 10_000 + replica.config.resend_ns + 1
    out = replica.on_message(old, later)  # the replay
    assert [decode_inner(item.message.body).seq for item in out if isinstance(item, Send)] == [1]
    assert replica.stats.unconfirmed_status == 1 and replica.suspicions == {}
    assert replica.status_from[1] == (1, decode_inner(old.body).beat)
    replica.on_message(_suspect_status(replica, 2, 0), later + 1)  # the faulty replica's own
    assert replica.phase is Phase.NORMAL and replica.view == 0, "a replayed suspicion counted"
    [status] = _statuses(replica.on_tick(later + replica.config.status_ns))
    assert status.seen == (0, 1, 1, replica.boot) and replica.boot == before.boot + 1
    replica.on_message(_suspect_status(replica, 1, 0), later + 2)  # sent after hearing it
    assert replica.phase is Phase.VIEW_CHANGE and replica.view == 1


def test_each_incarnation_of_a_replica_has_a_later_boot_than_the_last(tmp_path):
    """Status messages are ordered by (boot, beat) (suspicion.py), so a restart must never
    reuse or go below an earlier incarnation's boot, whatever the fsync policy."""
    keys = Keyring("test", 4)
    config = BftConfig(cluster=CLUSTER, replica=1, n=4)
    memory = MemoryBftStorage()
    boots = []
    for _ in range(3):
        replica = BftReplica(config, keys, memory)
        replica.start(0)
        boots.append(replica.boot)
        memory.crash()
    assert boots == [1, 2, 3]
    out = replica.on_tick(replica.config.status_ns + 1)
    assert [(m.boot, m.beat) for m in _statuses(out)] == [(3, 1)]
    for policy in (FsyncPolicy.NONE, FsyncPolicy.ALWAYS):
        directory = tmp_path / policy.value
        first = FileBftStorage(directory, policy)
        boot = first.next_boot()  # the wall clock's nanoseconds (a lost file: still later)
        first.close()
        assert boot > 1_700_000_000 * 10**9
        ahead = (boot + 10**18).to_bytes(8, "big")  # as if the clock had since stepped back
        (directory / "bft.boot").write_bytes(ahead)
        again = FileBftStorage(directory, policy)
        assert again.next_boot() == boot + 10**18 + 1
        again.close()
    (tmp_path / "none" / "bft.boot").write_bytes(b"\x00\x01")  # damaged: refused, not reset
    damaged = FileBftStorage(tmp_path / "none")
    with pytest.raises(StorageDamaged, match=r"bft\.boot: 2 bytes"):
        damaged.next_boot()
    damaged.close()


def test_a_replica_ahead_resends_its_old_view_change_to_a_peer_still_gathering_that_view():
    """Replica 0 sent ViewChange(1), then moved on to view 2; its ViewChange(1) was lost on the
    way to replica 1, which still gathers 2f + 1 of them for view 1 (its timer has not even
    started). Hearing replica 1's ViewChange(1), replica 0 sends its own again."""
    net = Net()
    ahead, behind = net.replicas[0], net.replicas[1]
    ahead._start_view_change(1, 0, [])
    ahead._start_view_change(2, 0, [])
    out: list = []
    behind._start_view_change(1, 0, out)
    [vc] = [item.message for item in out if isinstance(item, Broadcast)]
    resent = ahead.on_message(vc, 1_000)
    assert len(resent) == 1 and isinstance(resent[0], Send) and resent[0].to == 1
    again = decode_inner(resent[0].message.body)
    assert isinstance(again, ViewChange) and again.view == 1 and again.replica == 0
    behind.on_message(resent[0].message, 2_000)
    assert set(behind.vcs[1]) == {0, 1}
    assert ahead.on_message(vc, 3_000) == []  # at most once per resend_ns per peer and view
    # two replicas past view 1 never answer each other's (replayed) old view changes: one that
    # has shown us a later view change has moved on
    moved: list = []
    behind._start_view_change(2, 0, moved)
    [vc2] = [item.message for item in moved if isinstance(item, Broadcast)]
    ahead.on_message(vc2, 4_000)
    later = ahead.config.resend_ns + 10_000
    assert ahead.on_message(vc, later) == []


def test_a_replica_stuck_on_a_slot_sends_its_votes_to_a_peer_ahead_of_it():
    """Found by the simulator (seed 284 at n = 4, one silent replica): a peer that executed
    slot 1 in an earlier view lacked our prepare for it in this one, so it never sent the
    commit we waited for. Our Status exchange with it now carries our votes for slots stuck
    here past ``resend_ns``, whoever is ahead."""
    keys = Keyring("test", 4)
    stuck = BftReplica(BftConfig(cluster=CLUSTER, replica=1, n=4), keys)
    stuck.start(0)
    batch = (_req(1),)
    d = digest(batch)
    stuck.slots[1] = (d, batch)  # pre-prepared at 0, prepared by us, not committed
    stuck.slot_ns[1] = 0
    ahead = _status_of(stuck, 3, 0, 5)  # executed 5, same view
    fresh = stuck.on_message(ahead, stuck.config.resend_ns // 2)
    assert not [item for item in fresh if isinstance(item, Send) and item.to == 3]
    out = stuck.on_message(_status_of(stuck, 3, 0, 5), stuck.config.resend_ns + 1)
    votes = [decode_inner(item.message.body) for item in out
             if isinstance(item, Send) and item.to == 3]
    assert [(type(v), v.seq, v.digest) for v in votes] == [(Prepare, 1, d)]


def test_a_peer_that_executed_a_slot_gets_our_votes_while_its_commit_is_missing():
    """Found by the simulator (seed 20428 at n = 7, two silent replicas): the one replica
    ahead had executed a slot in an earlier view, lacked one prepare for it in this one, so
    never sent the commit that every replica behind needed (2f + 1 = the five correct ones);
    the prepare's sender had executed the slot too and, seeing the replica ahead had, sent it
    nothing more. Now a peer whose commit for an executed slot we do not hold in this view
    gets our votes for it, once the slot is ``resend_ns`` old, while a peer of the view has
    not executed the slot (without one, nobody needs that commit)."""
    net = Net()
    net.submit(b"x")
    net.run()
    replica, ahead, behind = net.replicas[1], 3, 2
    assert replica.executed == 1 and net.replicas[ahead].executed == 1
    d, _ = replica.slots[1]
    replica.commits[(1, d)].discard(ahead)  # its commit to us was lost

    def votes_to_ahead(now: int) -> list:
        out = replica.on_message(_status_of(replica, ahead, 0, 1), now)
        return [(type(v), v.seq) for v in (decode_inner(item.message.body) for item in out
                                           if isinstance(item, Send) and item.to == ahead)]

    early = replica.config.resend_ns // 2
    replica.on_message(_status_of(replica, behind, 0, 0), early)  # replica 2 has not executed
    assert votes_to_ahead(early + 1) == []  # not stuck yet
    later = replica.config.resend_ns + 1
    assert votes_to_ahead(later) == [(Prepare, 1), (Commit, 1)]
    replica.commits[(1, d)].add(ahead)  # its commit came
    assert votes_to_ahead(later + 1) == []
    replica.commits[(1, d)].discard(ahead)
    replica.on_message(_status_of(replica, behind, 0, 1), later + 2)  # replica 2 executed it
    assert votes_to_ahead(later + 3) == []  # nobody needs that commit now


def test_a_status_whose_suspect_flag_is_not_a_bool_is_dropped_and_counted(monkeypatch):
    from agora.decision.bft import auth

    keys = Keyring("test", 4)
    replica = BftReplica(BftConfig(cluster=CLUSTER, replica=3, n=4), keys)
    replica.start(0)
    monkeypatch.setattr(auth, "encode",  # a MACed body from a peer, with "yes" for the flag
                        lambda m: msgspec.msgpack.encode(["Status", CLUSTER, 2, 0, 0, "yes"]))
    bad = keys.seal(2, Status(CLUSTER, 2, 0, 0, True), AuthMode.MACS)
    monkeypatch.undo()
    replica.on_message(bad, 1_000)
    assert replica.stats.dropped_auth == 1
    assert replica.suspicions == {} and replica.status_from == {}


def test_a_status_whose_seen_is_malformed_or_misplaced_never_counts(monkeypatch):
    """``seen`` comes from the sender, maybe a faulty one: boots that are not integers make the
    body undecodable (dropped, counted); one too short, or with the receiver's boot at another
    replica's place, or another boot at its own, does not name this incarnation (answered, not
    counted). One too long that names it at its place counts: its sender is the one suspecting,
    and could say so in a well-formed Status as well."""
    from agora.decision.bft import auth

    keys = Keyring("test", 4)
    replica = BftReplica(BftConfig(cluster=CLUSTER, replica=3, n=4), keys)
    replica.start(0)
    monkeypatch.setattr(auth, "encode",  # a MACed body from a peer whose seen holds a string
                        lambda m: msgspec.msgpack.encode(
                            ["Status", CLUSTER, 2, 0, 0, True, 1, 1, ["boot"]]))
    bad = keys.seal(2, Status(CLUSTER, 2, 0, 0, True), AuthMode.MACS)
    monkeypatch.undo()
    replica.on_message(bad, 1_000)
    assert replica.stats.dropped_auth == 1 and replica.status_from == {}
    boot = replica.boot
    for beat, seen in enumerate([(0, 0, 0), (0, 0, boot, 0), (0, 0, 0, boot + 1),
                                 (0, 0, 0, boot, boot)], start=1):
        suspect = Status(CLUSTER, 2, 0, 0, True, 1, beat, seen)
        replica.on_message(keys.seal(2, suspect, AuthMode.MACS), 1_000 + beat)
        if beat < 4:
            assert replica.suspicions == {}, seen
    assert replica.stats.unconfirmed_status == 3
    assert replica.suspicions == {2: (0, 1_004)}  # the longer one names our boot at our place
