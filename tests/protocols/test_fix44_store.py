"""``FileSeqStore.batch`` against writing at once: the same disk state whenever a batch ends.

A batch only defers the ``seqnums`` rewrite and the log flush to its end, so after every batch
the log must hold exactly the bytes the unbatched store wrote, and a restart must load the
same numbers and messages from either directory (and the numbers the live store holds). The
``seqnums`` bytes themselves may differ: the unbatched store skips rewriting a sender number
its log already implies, the batch writes the current one. The session's reads (``on_bytes``,
one batch each) must answer with the same actions and leave the same disk state as a session
whose store writes at once.
"""

import tempfile
from contextlib import contextmanager
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from agora.core.clock import SimClock
from agora.protocols.fix44.session import Send, State
from agora.protocols.fix44.store import FileSeqStore
from tests.protocols.test_fix44_session import T0, logged_on_acceptor, order


class ImmediateStore(FileSeqStore):
    """The reference: every write reaches the file when it is made, batch or not."""

    @contextmanager
    def batch(self):
        yield


def state(store: FileSeqStore) -> tuple[int, int, dict[int, bytes]]:
    return store.next_sender, store.next_target, store.get_messages(1, 10**9)


def on_disk(directory: Path) -> tuple[bytes, tuple[int, int, dict[int, bytes]]]:
    """The log's bytes and what a restart would load from ``directory``."""
    store = FileSeqStore(directory, fsync=False)
    try:
        return (directory / "messages.log").read_bytes(), state(store)
    finally:
        store.close()


_OPS = st.one_of(
    st.tuples(st.just("app"), st.binary(min_size=1, max_size=30)),  # stored, then numbered
    st.tuples(st.just("admin"), st.just(b"")),  # numbered, not stored
    st.tuples(st.just("target"), st.integers(1, 50)),
    st.tuples(st.just("reset"), st.just(b"")),
)


def apply(store: FileSeqStore, ops) -> None:
    """What the session does to its store for each op."""
    for op, arg in ops:
        if op == "app":
            store.store_message(store.next_sender, arg)
            store.set_next_sender(store.next_sender + 1)
        elif op == "admin":
            store.set_next_sender(store.next_sender + 1)
        elif op == "target":
            store.set_next_target(arg)
        else:
            store.reset()


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.lists(_OPS, max_size=8), st.booleans()), min_size=1, max_size=6))
def test_a_batch_leaves_the_files_an_immediate_store_writes(batches):
    with tempfile.TemporaryDirectory() as tmp:
        a_dir, b_dir = Path(tmp, "batched"), Path(tmp, "immediate")
        a, b = FileSeqStore(a_dir, fsync=False), FileSeqStore(b_dir, fsync=False)
        for ops, nested in batches:
            with a.batch():
                if nested:  # an inner batch leaves the writing to the outer one
                    with a.batch():
                        apply(a, ops)
                else:
                    apply(a, ops)
            apply(b, ops)
            assert on_disk(a_dir) == on_disk(b_dir)
            assert on_disk(a_dir)[1] == state(a) == state(b)
        a.close()
        b.close()


_READS = st.lists(st.one_of(
    st.integers(1, 12),  # an order with this MsgSeqNum (in order, a gap, or too low)
    st.sampled_from(["resend", "gapfill", "reset", "test", "garbage", "logout"]),
), min_size=1, max_size=5)
_SENDS = st.integers(0, 3)  # reports the venue sends in one batch, as the gateway's flush does


def read_bytes(peer, item) -> bytes:
    if isinstance(item, int):
        return peer.app(item, seq=item, poss_dup=item % 3 == 0, orig=T0)
    if item == "resend":
        return peer.msg("2", [(7, 1), (16, 0)])
    if item == "gapfill":
        return peer.msg("4", [(123, "Y"), (36, peer.seq + 2)])
    if item == "reset":
        return peer.msg("4", [(36, peer.seq + 1)])
    if item == "test":
        return peer.msg("1", [(112, "t")])
    if item == "logout":
        return peer.msg("5")
    return b"8=FIX.4.4\x019=5\x01garbage"


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(_READS, _SENDS), min_size=1, max_size=5))
def test_session_reads_answer_and_store_like_an_immediate_store(reads):
    with tempfile.TemporaryDirectory() as tmp:
        sessions = []
        for name, cls in (("batched", FileSeqStore), ("immediate", ImmediateStore)):
            clock = SimClock(T0, step_ns=1_000)
            store = cls(Path(tmp, name), fsync=False)
            sessions.append((*logged_on_acceptor(clock, store=store), store, Path(tmp, name)))
        for read, sends in reads:
            answers = []
            for session, peer, store, directory in sessions:
                actions = session.on_bytes(b"".join(read_bytes(peer, item) for item in read))
                with store.batch():
                    out = [session.send_app(order(100 + k)) for k in range(sends)
                           if session.state is State.ACTIVE]
                answers.append(([a.data if isinstance(a, Send) else a for a in actions], out,
                                on_disk(directory), session.state))
            assert answers[0] == answers[1]
        for _session, _peer, store, _directory in sessions:
            store.close()


def test_hold_target_keeps_the_inbound_number_on_disk_until_its_end(tmp_path):
    store = FileSeqStore(tmp_path, fsync=False)
    store.set_next_target(5)
    on_disk = lambda: (tmp_path / "seqnums").read_text().split()  # noqa: E731
    with store.hold_target():
        with store.batch():
            store.set_next_target(9)
        assert [int(x) for x in on_disk()] == [1, 5]
        store.set_next_sender(7)  # not implied by the message log: written at once ...
        assert [int(x) for x in on_disk()] == [7, 5]  # ... with the held inbound number
        with store.hold_target():  # nested: the outer block writes
            store.set_next_target(10)
        assert [int(x) for x in on_disk()] == [7, 5]
    assert [int(x) for x in on_disk()] == [7, 10]
    with store.hold_target():
        store.set_next_target(12)
        store.reset()  # a session reset is not a read's orders: 1 1 at once and at the end
        assert [int(x) for x in on_disk()] == [1, 1]
        store.set_next_sender(3)  # the held inbound number is the reset's now
        assert [int(x) for x in on_disk()] == [3, 1]
        store.set_next_sender(1)
    assert [int(x) for x in on_disk()] == [1, 1]
    store.close()
