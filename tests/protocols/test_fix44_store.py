"""``FileSeqStore``: its batches against writing at once, its reads against ``MemorySeqStore``.

The stored messages are read back from the log file (the store keeps only where they are), so
they must equal the reference's at any point, inside a batch, and after a restart; a log that
is damaged, or cut short under a running store, is an error rather than a short resend.

``FileSeqStore.batch`` against writing at once: the same disk state whenever a batch ends.

A batch only defers the ``seqnums`` rewrite and the log flush to its end, so after every batch
the log must hold exactly the bytes the unbatched store wrote, and a restart must load the
same numbers and messages from either directory (and the numbers the live store holds). The
``seqnums`` bytes themselves may differ: the unbatched store skips rewriting a sender number
its log already implies, the batch writes the current one. The session's reads (``on_bytes``,
one batch each) must answer with the same actions and leave the same disk state as a session
whose store writes at once.
"""

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agora.core.clock import SimClock
from agora.protocols.fix44.codec import FixError
from agora.protocols.fix44.session import Send, State
from agora.protocols.fix44.store import FileSeqStore, MemorySeqStore
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


_RANGES = st.lists(st.tuples(st.integers(0, 60), st.integers(0, 60)), max_size=4)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.lists(_OPS, max_size=10), _RANGES, st.booleans()), max_size=6))
def test_the_file_store_reads_back_what_the_memory_store_holds(steps):
    """Messages read back from the log (live, and after a restart) against the reference."""
    with tempfile.TemporaryDirectory() as tmp:
        reference, store = MemorySeqStore(), FileSeqStore(tmp, fsync=False)
        for ops, ranges, restart in steps:
            with store.batch():  # a read inside a batch sees the messages not yet flushed
                apply(store, ops)
                apply(reference, ops)
                for begin, end in ranges:
                    assert store.get_messages(begin, end) == reference.get_messages(begin, end)
            if restart:
                store.close()
                store = FileSeqStore(tmp, fsync=False)
            for begin, end in ranges:
                assert store.get_messages(begin, end) == reference.get_messages(begin, end)
        store.close()


def test_the_log_holds_the_messages_and_memory_only_where_they_are(tmp_path):
    store = FileSeqStore(tmp_path, fsync=False)
    for seq in range(1, 1001):
        store.store_message(seq, b"35=8\x01" + b"x" * 150)
    assert store._messages == {}  # the bytes are in the file, not in the process
    assert len(store._seqs) == 1000 and store.get_messages(500, 501) == {
        500: b"35=8\x01" + b"x" * 150, 501: b"35=8\x01" + b"x" * 150}
    store.close()


def test_a_log_whose_numbers_go_back_is_refused_as_corrupt(tmp_path):
    (tmp_path / "messages.log").write_bytes(b"2 1\na\n1 1\nb\n")
    with pytest.raises(FixError, match="MsgSeqNum 1, not above the one before it"):
        FileSeqStore(tmp_path, fsync=False)


def test_a_log_cut_short_under_a_running_store_is_an_error_not_a_short_resend(tmp_path):
    store = FileSeqStore(tmp_path, fsync=False)
    store.store_message(1, b"abc")
    store.store_message(2, b"defg")
    store.get_messages(1, 1)  # flushed
    os.truncate(tmp_path / "messages.log", 10)
    with pytest.raises(FixError, match="shorter than this session wrote"):
        store.get_messages(1, 2)
    store.close()


def test_storing_a_number_not_above_the_last_is_a_bug_and_says_so(tmp_path):
    store = FileSeqStore(tmp_path, fsync=False)
    store.store_message(3, b"a")
    with pytest.raises(ValueError, match="MsgSeqNum 3 stored after 3"):
        store.store_message(3, b"b")
    store.close()


@pytest.mark.parametrize("chunk", [1, 7, 100, 1 << 20])
def test_a_restart_indexes_the_log_a_chunk_at_a_time_as_a_whole_read_would(tmp_path,
                                                                           monkeypatch, chunk):
    """A restart reads messages.log a chunk at a time (a long session's log is not held in
    memory): records cut anywhere by the chunks index alike, a torn last record is cut off,
    and damage before the end is still an error, whatever the chunk size."""
    from agora.protocols.fix44 import store as store_module

    messages = {seq: b"35=8\x01" + b"x" * (seq * 37 % 300) + b"\n\x01" for seq in range(1, 200)}
    writer = FileSeqStore(tmp_path, fsync=False)
    for seq, raw in messages.items():
        writer.store_message(seq, raw)
    writer.close()
    data = (tmp_path / "messages.log").read_bytes()
    monkeypatch.setattr(store_module, "SCAN_CHUNK", chunk)
    (tmp_path / "messages.log").write_bytes(data + b"200 50\n35=8")  # a torn last record
    store = FileSeqStore(tmp_path, fsync=False)
    assert store.get_messages(1, 300) == messages and store.next_sender == 200
    store.close()
    assert (tmp_path / "messages.log").read_bytes() == data
    middle = data.index(b"\n100 ")  # the head of record 100, damaged
    (tmp_path / "messages.log").write_bytes(data[: middle + 1] + b"1x0 5\nabcde\n"
                                            + data[middle + 1 :])
    with pytest.raises(FixError, match=f"corrupt record at byte {middle + 1}"):
        FileSeqStore(tmp_path, fsync=False)
