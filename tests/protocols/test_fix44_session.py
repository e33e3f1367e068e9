"""FIX 4.4 session state machine: logon, gaps, resends, gap fills, timers, persistence."""

from hypothesis import given, settings
from hypothesis import strategies as st

from agora.core.clock import SimClock
from agora.protocols.fix44.codec import decode, encode
from agora.protocols.fix44.enums import OrdType, Side
from agora.protocols.fix44.messages import NewOrderSingle, from_message, to_fields
from agora.protocols.fix44.session import (
    Deliver,
    Disconnect,
    Ignored,
    LoggedOn,
    Role,
    Send,
    Session,
    SessionConfig,
    State,
)
from agora.protocols.fix44.store import FileSeqStore, MemorySeqStore

S = 1_000_000_000
T0 = 1_704_164_645_000_000_000


def order(n: int) -> NewOrderSingle:
    return NewOrderSingle(cl_ord_id=f"c{n}", side=Side.BUY, transact_time=T0,
                          ord_type=OrdType.LIMIT, order_qty=n, price=10_000 * n, symbol="X")


def sent(actions):
    return [decode(a.data) for a in actions if isinstance(a, Send)]


def make(clock, role=Role.ACCEPTOR, store=None, hb=30):
    me, peer = ("VENUE", "CLIENT") if role is Role.ACCEPTOR else ("CLIENT", "VENUE")
    cfg = SessionConfig(sender_comp_id=me, target_comp_id=peer, role=role, heart_bt_int=hb)
    return Session(cfg, clock, store)


class Peer:
    """A hand-driven counterparty writing raw messages (to craft gaps and duplicates)."""

    def __init__(self, clock):
        self.clock, self.seq = clock, 1

    def msg(self, mt, fields=(), *, seq=None, poss_dup=False, orig=None):
        if seq is None:
            seq, self.seq = self.seq, self.seq + 1
        return encode(mt, list(fields), sender="CLIENT", target="VENUE", seq_num=seq,
                      sending_time=self.clock.now_ns(), poss_dup=poss_dup, orig_sending_time=orig)

    def logon(self, hb=30, **kw):
        return self.msg("A", [(98, 0), (108, hb)], **kw)

    def app(self, n, **kw):
        return self.msg("D", to_fields(order(n)), **kw)


def logged_on_acceptor(clock, store=None, hb=30):
    s = make(clock, store=store, hb=hb)
    s.connect()
    peer = Peer(clock)
    peer.seq = s.next_target
    acts = s.on_bytes(peer.logon(hb))
    assert s.state is State.ACTIVE and LoggedOn(hb) in acts
    return s, peer


def pump(a, b, actions, *, drop=lambda m: False):
    """Carry Send actions of ``a`` to ``b`` and back until quiet; returns everything delivered."""
    delivered = {id(a): [], id(b): []}
    queue = [(a, b, actions)]
    while queue:
        src, dst, acts = queue.pop(0)
        for act in acts:
            if isinstance(act, Send) and not drop(decode(act.data)):
                reply = dst.on_bytes(act.data)
                delivered[id(dst)] += [x.message for x in reply if isinstance(x, Deliver)]
                queue.append((dst, src, reply))
    return delivered[id(a)], delivered[id(b)]


def test_logon_handshake_both_roles():
    clock = SimClock(T0)
    ini, acc = make(clock, Role.INITIATOR, hb=15), make(clock, Role.ACCEPTOR, hb=99)
    assert acc.connect() == []
    first = ini.connect()
    assert [m.msg_type for m in sent(first)] == ["A"] and decode(first[0].data)[108] == "15"
    reply = acc.on_bytes(first[0].data)
    assert [m.msg_type for m in sent(reply)] == ["A"] and LoggedOn(15) in reply
    assert acc.heart_bt_int == 15 and acc.state is State.ACTIVE
    out = ini.on_bytes(reply[0].data)
    assert LoggedOn(15) in out and ini.state is State.ACTIVE
    assert (ini.next_sender, ini.next_target, acc.next_sender, acc.next_target) == (2, 2, 2, 2)
    # application traffic both ways
    data = ini.send_app(order(1))
    [d] = [a for a in acc.on_bytes(data) if isinstance(a, Deliver)]
    assert from_message(d.message) == order(1)


def test_first_message_not_logon_disconnects():
    clock = SimClock(T0)
    s = make(clock)
    s.connect()
    acts = s.on_bytes(Peer(clock).app(1))
    assert isinstance(acts[-1], Disconnect) and s.state is State.DISCONNECTED


def test_gap_triggers_resend_request_and_queue_is_replayed():
    clock = SimClock(T0)
    s, peer = logged_on_acceptor(clock)
    m2, m3, m4 = peer.app(2), peer.app(3), peer.app(4)
    acts = s.on_bytes(m4)  # 2 and 3 lost
    [rr] = sent(acts)
    assert rr.msg_type == "2" and (rr[7], rr[16]) == ("2", "0")
    assert not [a for a in acts if isinstance(a, Deliver)]
    assert sent(s.on_bytes(peer.app(5))) == []  # one outstanding ResendRequest is enough
    out = s.on_bytes(m2) + s.on_bytes(m3)
    got = [from_message(a.message).cl_ord_id for a in out if isinstance(a, Deliver)]
    assert got == ["c2", "c3", "c4", "c5"] and s.next_target == 6


def test_resend_with_possdup_and_gap_fill_between_sessions():
    clock = SimClock(T0)
    ini, acc = make(clock, Role.INITIATOR), make(clock, Role.ACCEPTOR)
    acc.connect()
    pump(ini, acc, ini.connect())
    # venue sends app 2, heartbeat 3 (admin), app 4; the client loses 2..4, sees 5
    lost = [acc.send_app(order(2))]
    clock.advance(30 * S)
    [beat] = acc.on_timer()  # an admin message: gap-filled, never resent
    assert decode(beat.data).msg_type == "0"
    lost.append(beat.data)
    lost.append(acc.send_app(order(4)))
    fifth = acc.send_app(order(5))
    acts = ini.on_bytes(fifth)
    [rr] = sent(acts)
    assert (rr.msg_type, rr[7], rr[16]) == ("2", "2", "0")
    replay = acc.on_bytes(acts[0].data)
    msgs = sent(replay)
    assert [(m.msg_type, m.seq_num) for m in msgs] == [("D", 2), ("4", 3), ("D", 4), ("D", 5)]
    assert all(m.poss_dup and 122 in m for m in msgs)
    assert msgs[0][122] == decode(lost[0])[52] != msgs[0][52]
    assert msgs[1][123] == "Y" and msgs[1][36] == "4"
    delivered = []
    for a in replay:
        delivered += [x.message for x in ini.on_bytes(a.data) if isinstance(x, Deliver)]
    assert [from_message(m).cl_ord_id for m in delivered] == ["c2", "c4", "c5"]
    assert ini.next_target == acc.next_sender == 6


def test_possdup_duplicate_ignored_and_too_low_logs_out():
    clock = SimClock(T0)
    s, peer = logged_on_acceptor(clock)
    s.on_bytes(peer.app(2))
    acts = s.on_bytes(peer.app(2, seq=2, poss_dup=True, orig=T0))
    assert acts == [Ignored("duplicate MsgSeqNum 2 (PossDup)")]
    acts = s.on_bytes(peer.app(2, seq=2))
    [logout] = sent(acts)
    assert logout.msg_type == "5" and "expecting 3 but received 2" in logout[58]
    assert isinstance(acts[-1], Disconnect) and s.state is State.DISCONNECTED


def test_sequence_reset_gap_fill_and_reset():
    clock = SimClock(T0)
    s, peer = logged_on_acceptor(clock)
    fill = peer.msg("4", [(123, "Y"), (36, 7)], seq=2, poss_dup=True, orig=T0)
    assert s.on_bytes(fill) == [] and s.next_target == 7
    reset = peer.msg("4", [(36, 20)], seq=99)
    assert s.on_bytes(reset) == [] and s.next_target == 20
    back = peer.msg("4", [(36, 5)], seq=1)
    [rej] = sent(s.on_bytes(back))
    assert rej.msg_type == "3" and rej[373] == "5" and rej[371] == "36"
    assert s.next_target == 20


def test_possdup_without_orig_sending_time_rejected():
    clock = SimClock(T0)
    s, peer = logged_on_acceptor(clock)
    [rej] = sent(s.on_bytes(peer.app(2, poss_dup=True)))
    assert (rej.msg_type, rej[373], rej[371], rej[45]) == ("3", "1", "122", "2")
    assert s.next_target == 3


def test_malformed_message_rejected_and_consumes_seq():
    clock = SimClock(T0)
    s, peer = logged_on_acceptor(clock)
    bad = peer.msg("D", [(11, "a"), (11, "b")])
    [rej] = sent(s.on_bytes(bad))
    assert (rej[45], rej[373], rej[371], rej[372]) == ("2", "13", "11", "D")
    assert s.next_target == 3
    garbled = bytearray(peer.app(3))
    garbled[-3] ^= 1  # corrupt the checksum digits
    acts = s.on_bytes(bytes(garbled))
    assert isinstance(acts[0], Ignored) and s.next_target == 3


def test_test_request_answered_with_heartbeat():
    clock = SimClock(T0)
    s, peer = logged_on_acceptor(clock)
    [hb] = sent(s.on_bytes(peer.msg("1", [(112, "ping")])))
    assert hb.msg_type == "0" and hb[112] == "ping"


def test_heartbeat_and_test_request_timers():
    clock = SimClock(T0)
    s, _ = logged_on_acceptor(clock, hb=10)
    clock.advance(9 * S)
    assert s.on_timer() == []
    clock.advance(1 * S)
    [hb] = sent(s.on_timer())
    assert hb.msg_type == "0"
    clock.advance(2 * S)  # 12 s since the peer's last message: TestRequest
    [tr] = sent(s.on_timer())
    assert tr.msg_type == "1"
    clock.advance(9 * S)
    assert s.on_timer() == []
    clock.advance(1 * S)
    acts = s.on_timer()
    assert isinstance(acts[-1], Disconnect) and s.state is State.DISCONNECTED


def test_test_request_answered_keeps_session():
    clock = SimClock(T0)
    s, peer = logged_on_acceptor(clock, hb=10)
    clock.advance(12 * S)
    [tr] = sent(s.on_timer())
    s.on_bytes(peer.msg("0", [(112, tr[112])]))
    clock.advance(10 * S)
    assert s.state is State.ACTIVE
    assert not any(isinstance(a, Disconnect) for a in s.on_timer())


def test_logon_timeout():
    clock = SimClock(T0)
    s = make(clock, Role.INITIATOR)
    s.connect()
    clock.advance(10 * S)
    assert isinstance(s.on_timer()[-1], Disconnect)


def test_logout_handshake():
    clock = SimClock(T0)
    ini, acc = make(clock, Role.INITIATOR), make(clock, Role.ACCEPTOR)
    acc.connect()
    pump(ini, acc, ini.connect())
    out = ini.logout("done")
    assert ini.state is State.LOGOUT_SENT
    reply = acc.on_bytes(out[0].data)
    assert [m.msg_type for m in sent(reply)] == ["5"] and acc.state is State.LOGOUT_RECEIVED
    assert ini.on_bytes(reply[0].data) == [Disconnect("logout complete")]
    clock.advance(10 * S)
    assert isinstance(acc.on_timer()[-1], Disconnect)


def test_comp_id_problem():
    clock = SimClock(T0)
    s, _ = logged_on_acceptor(clock)
    raw = encode("0", [], sender="EVIL", target="VENUE", seq_num=2, sending_time=T0)
    acts = s.on_bytes(raw)
    msgs = sent(acts)
    assert [m.msg_type for m in msgs] == ["3", "5"] and msgs[0][373] == "9"
    assert isinstance(acts[-1], Disconnect)


def test_sending_time_accuracy():
    clock = SimClock(T0)
    s, _ = logged_on_acceptor(clock)
    raw = encode("0", [], sender="CLIENT", target="VENUE", seq_num=2,
                 sending_time=T0 - 500 * S)
    msgs = sent(s.on_bytes(raw))
    assert [m.msg_type for m in msgs] == ["3", "5"] and msgs[0][373] == "10"


def test_reset_seq_num_flag_on_logon():
    clock = SimClock(T0)
    store = MemorySeqStore()
    store.next_sender, store.next_target = 50, 60
    s = make(clock, store=store)
    s.connect()
    acts = s.on_bytes(Peer(clock).msg("A", [(98, 0), (108, 30), (141, "Y")]))
    [reply] = sent(acts)
    assert reply.seq_num == 1 and reply[141] == "Y" and s.next_target == 2


def test_persistence_across_restart(tmp_path):
    clock = SimClock(T0)
    store = FileSeqStore(tmp_path / "venue")
    s, peer = logged_on_acceptor(clock, store=store)
    s.on_bytes(peer.app(2))
    first = s.send_app(order(7))
    s.send_app(order(8))
    assert (s.next_sender, s.next_target) == (4, 3)
    store.close()
    # restart: a new process, new store object over the same directory
    store2 = FileSeqStore(tmp_path / "venue")
    assert (store2.next_sender, store2.next_target) == (4, 3)
    s2, peer2 = logged_on_acceptor(clock, store=store2)
    assert s2.next_sender == 5  # the logon reply used 4
    replay = sent(s2.on_bytes(peer2.msg("2", [(7, 2), (16, 0)])))
    assert [(m.msg_type, m.seq_num) for m in replay] == [("D", 2), ("D", 3), ("4", 4)]
    assert replay[0][122] == decode(first)[52] and replay[0].body() == decode(first).body()
    store2.close()


def test_file_store_torn_tail_and_reset(tmp_path):
    store = FileSeqStore(tmp_path, fsync=False)
    store.store_message(1, b"abc")
    store.set_next_sender(2)
    store.close()
    with open(tmp_path / "messages.log", "ab") as f:
        f.write(b"2 10\nabc")  # an append interrupted by a crash
    store = FileSeqStore(tmp_path, fsync=False)
    assert store.get_messages(1, 9) == {1: b"abc"} and store.next_sender == 2
    store.store_message(2, b"x\ny")
    store.close()
    store = FileSeqStore(tmp_path, fsync=False)
    assert store.get_messages(1, 9) == {1: b"abc", 2: b"x\ny"} and store.next_sender == 3
    store.reset()
    store.close()
    store = FileSeqStore(tmp_path, fsync=False)
    assert (store.next_sender, store.next_target, store.get_messages(1, 9)) == (1, 1, {})
    store.close()


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(st.binary(max_size=40), st.integers(1, 8)), max_size=12))
def test_fuzzed_input_never_crashes_the_session(items):
    clock = SimClock(T0)
    s, peer = logged_on_acceptor(clock)
    for item in items:
        if s.state is State.DISCONNECTED:
            break
        data = peer.app(item, seq=item, poss_dup=item % 2 == 0, orig=T0) if isinstance(
            item, int) else item
        for act in s.on_bytes(data):
            assert isinstance(act, Send | Deliver | Disconnect | Ignored | LoggedOn)
