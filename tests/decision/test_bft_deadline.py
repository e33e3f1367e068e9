"""Deadlines in the Byzantine mode (``bft/deadline.py``): the verdict rule, certificates a backup
refuses, delivery in log order, agreement on the verdict, restarts and a withholding primary."""

from __future__ import annotations

import hmac

import hypothesis.strategies as st
from hypothesis import given

from agora.decision.bft import AuthMode, BftClient, BftConfig, BftReplica, Phase
from agora.decision.bft.deadline import LATE, certificate, verdicts
from agora.decision.bft.messages import ClientRequest, Sealed, Timing, decode, encode
from agora.decision.bft.storage import MemoryBftStorage
from agora.decision.consensus.messages import Committed
from tests.decision.test_bft_replica import CLUSTER, Net

MS = 1_000_000


class TimedNet(Net):
    """``Net`` whose clock advances ``step_ns`` per delivered datagram, with budgets."""

    def __init__(self, step_ns: int = 0, **kwargs) -> None:
        super().__init__(**kwargs)
        self.step_ns = step_ns
        self.clients = {1: self.client, 2: BftClient(CLUSTER, 2, self.keys)}

    def route(self, source: int, out: list) -> None:
        self.now += self.step_ns
        super().route(source, out)

    def ask(self, payload: bytes, budget_ns: int, client: int = 1) -> None:
        self.client = self.clients[client]
        self.route(-1, self.client.request(payload, budget_ns, self.now))


def timing(net: Net, sender: int, seq: int, elapsed: tuple[int, ...],
           auth: AuthMode = AuthMode.MACS) -> Sealed:
    return net.keys.seal(sender, Timing(CLUSTER, sender, seq, elapsed), auth)


# ---------------------------------------------------------------- the pure rule

def test_the_verdict_is_the_f_plus_1_th_smallest_value_against_the_budget():
    net = Net()
    cert = tuple(timing(net, r, 3, (e, 10)) for r, e in ((0, 1), (1, 50), (2, 7)))
    # column 0: 1, 7, 50 -> 7; column 1: 10, 10, 10 -> 10
    assert verdicts([8, 10], cert, 3, f=1) == [False, False]
    assert verdicts([6, 9], cert, 3, f=1) == [True, True]


def test_a_timing_of_the_wrong_shape_or_batch_counts_as_late():
    net = Net()
    good = timing(net, 0, 3, (0,))
    assert verdicts([5], (good, timing(net, 1, 3, (0, 0)), timing(net, 2, 4, (0,))), 3,
                    f=1) == [True]
    garbage = Sealed(CLUSTER, 2, b"\xc1", macs=good.macs)
    assert verdicts([5], (good, timing(net, 1, 3, (0,)), garbage), 3, f=1) == [False]


@given(correct=st.lists(st.integers(0, 100), min_size=3, max_size=5),
       faulty=st.lists(st.sampled_from((0, LATE)), min_size=0, max_size=2),
       budget=st.integers(0, 100))
def test_f_liars_cannot_move_the_verdict_outside_the_correct_replicas_measurements(
        correct, faulty, budget):
    f = 2  # n = 7: a certificate of 5 timings, at most 2 from liars
    values = (correct + faulty)[:2 * f + 1]
    liars = max(0, len(values) - len(correct))
    honest = values[:len(values) - liars]
    if len(values) < 2 * f + 1:
        return
    net = Net(n=7)
    cert = tuple(timing(net, r, 1, (v,)) for r, v in enumerate(values))
    abandoned = verdicts([budget], cert, 1, f)[0]
    if all(v > budget for v in honest):
        assert abandoned
    if all(v <= budget for v in honest):
        assert not abandoned


# ---------------------------------------------------------------- replicas

def test_a_request_in_budget_is_delivered_after_its_certificate_executes():
    net = TimedNet()
    net.ask(b"buy", 5 * MS)
    net.run()
    assert net.accepted[-1].abandoned is False and net.accepted[-1].index == 1
    for r in range(4):
        assert [(c.payload, c.abandoned) for c in net.committed[r]] == [(b"buy", False)]
        replica = net.replicas[r]
        assert replica.executed == 2  # the request's batch, then its certificate's
        certificate = replica.log.range(2, 2)[0][0]
        assert certificate.client_id == 0 and certificate.request_number == 1
        assert replica.stats.deadline_total == 1 and replica.stats.deadline_abandoned == 0
        assert not replica.undecided and not replica.held


def test_executed_requests_and_certificates_leave_the_primary_s_view_state():
    """What a primary remembers so as not to propose a request or a certificate twice in a view
    shrinks back once they execute: a long view must not hold a session's worth of it."""
    net = TimedNet()
    for k in range(12):
        net.ask(b"order %d" % k, 5 * MS if k % 2 else 0)
        net.run()
    primary = net.replicas[0]
    assert primary.view == 0 and primary.executed >= 12 and len(net.accepted) == 12
    assert not primary.assigned and not primary.certified and not primary.waiting


def test_a_request_executed_late_is_abandoned_by_every_replica_and_the_client_is_told():
    net = TimedNet(step_ns=200_000)  # every datagram takes 0.2 ms: PBFT takes a few ms
    net.ask(b"buy", 1 * MS)
    net.run()
    assert net.accepted[-1].abandoned is True
    assert {(c.index, c.abandoned) for r in range(4) for c in net.committed[r]} == {(1, True)}
    assert all(replica.stats.deadline_abandoned == 1 for replica in net.replicas)


def test_requests_after_a_deadline_request_wait_for_its_verdict():
    net = TimedNet()
    net.ask(b"first", 5 * MS, client=1)
    net.ask(b"second", 0, client=2)
    primary = net.replicas[0]
    # deliver the clients' broadcasts only: the primary batches both, nothing executes yet
    while net.queue and not primary.executed:
        to, data = net.queue.popleft()
        if to >= 0:
            net.route(to, net.replicas[to].on_message(decode(data), net.now))
    net.run()
    for r in range(4):
        assert [c.payload for c in net.committed[r]] == [b"first", b"second"]
        assert [c.index for c in net.committed[r]] == [1, 2]


def test_a_backup_refuses_certificates_that_are_not_2f_plus_1_authentic_timings():
    net = TimedNet()
    net.ask(b"buy", 5 * MS)
    backup = net.replicas[1]
    # run until every replica executed batch 1 but before a certificate could execute
    net.replicas[0]._certificates = lambda room: []  # a primary that withholds certificates
    net.run()
    assert backup.executed == 1 and 1 in backup.undecided
    mine = backup.undecided[1].elapsed
    others = [timing(net, r, 1, (0,)) for r in (0, 2, 3)]
    own = timing(net, 1, 1, mine)

    def ok(timings: tuple[Sealed, ...], seq: int = 1, slot: int = 2) -> bool:
        return backup._request_ok(certificate(CLUSTER, seq, timings), slot)

    assert ok(tuple(others))
    assert ok((others[0], own, others[1]))  # its own signature verifies like any other
    body = others[1].body
    maced = Sealed(CLUSTER, 2, body, macs=tuple(
        b"" if r == 2 else hmac.digest(net.keys.pair_key(2, r), body, "sha256")
        for r in range(4)))
    assert not maced.signature and not ok((others[0], maced, others[2]))  # MACed: refused
    assert not ok(tuple(others[:2]))  # 2f
    assert not ok((others[0], others[0], others[1]))  # one replica twice
    assert not ok(tuple(others), slot=1)  # a certificate of its own slot or a later one
    forged = Sealed(CLUSTER, 2, others[1].body, signature=others[0].signature)
    assert not ok((others[0], forged, others[2]))
    wrong_batch = timing(net, 3, 5, (0,))
    assert not ok((others[0], others[1], wrong_batch))


def test_a_primary_withholding_certificates_is_voted_out_and_the_next_one_decides():
    net = TimedNet()
    net.replicas[0]._certificates = lambda room: []
    net.ask(b"buy", 500 * MS)
    net.run(ticks=80)
    live = net.replicas[1:]
    assert all(r.view >= 1 and r.phase is Phase.NORMAL for r in live)
    assert net.accepted and net.accepted[-1].abandoned is False
    assert [(c.payload, c.abandoned) for c in net.committed[1]] == [(b"buy", False)]


def test_a_restarted_replica_resends_the_timing_it_measured_before_the_crash():
    net = TimedNet(step_ns=10_000)
    storages = [MemoryBftStorage() for _ in range(4)]
    for r in range(4):
        net.replicas[r] = BftReplica(BftConfig(cluster=CLUSTER, replica=r, n=4), net.keys,
                                     storages[r])
        net.replicas[r].start(0)
    net.replicas[0]._certificates = lambda room: []
    net.ask(b"buy", 5 * MS)
    net.run()
    before = net.replicas[2].undecided[1].elapsed
    assert before[0] < LATE
    storages[2].flush()
    storages[2].crash()
    net.replicas[2] = BftReplica(BftConfig(cluster=CLUSTER, replica=2, n=4), net.keys,
                                 storages[2], applied_index=0)
    out = net.replicas[2].start(net.now)
    assert not [item for item in out if isinstance(item, Committed)]  # still undecided
    assert net.replicas[2].undecided[1].elapsed == before
    resent = net.replicas[2].on_tick(net.now + 5 * MS)
    bodies = [item.message.body for item in resent if hasattr(item, "message")]
    assert encode(Timing(CLUSTER, 2, 1, before)) in bodies


def test_a_certificate_whose_payload_is_not_timings_is_refused():
    net = TimedNet()
    net.replicas[0]._certificates = lambda room: []
    net.ask(b"buy", 5 * MS)
    net.run()
    backup = net.replicas[1]
    for payload in (b"", b"\xc1", encode((1, 2, 3)), encode(("x",) * 3)):
        cert = ClientRequest(CLUSTER, 0, 1, 0, payload)
        assert not backup._request_ok(cert, 2), payload
    assert verdicts([5], (), 1, f=1) == [True]  # nothing readable: abandoned, everywhere alike
