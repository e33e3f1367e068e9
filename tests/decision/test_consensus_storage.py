"""Wire codec round trips, and the storages: replay, fsync policies, torn tails, restarts."""

from __future__ import annotations

import random

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from agora.decision.consensus import Committed, FileStorage, FsyncPolicy, MemoryStorage, Status
from agora.decision.consensus.messages import (
    DoViewChange,
    Entry,
    Prepare,
    Recovery,
    Request,
    decode,
    encode,
)
from agora.decision.consensus.storage import CommitWrite, EntriesWrite, replay
from agora.decision.sim.storage import SimStorage

from .test_consensus_replica import Net

entries = st.builds(Entry, st.integers(1, 10**6), st.integers(0, 10**6), st.integers(0, 2**32),
                    st.integers(0, 2**32), st.integers(0, 10**12), st.integers(0, 2**62),
                    st.integers(0, 2**62), st.integers(0, 10**6), st.binary(max_size=64))


@given(st.lists(entries, max_size=5), st.integers(0, 2**32))
def test_messages_round_trip_through_the_wire(log, cluster):
    for message in (
        Prepare(cluster, 1, 2, 3, tuple(log)),
        DoViewChange(cluster, 2, 5, 4, len(log), 0, 0, tuple(log)),
        Request(cluster, 7, 8, 9, b"\x00payload"),
        Recovery(cluster, 1, 3, 99, 4),
    ):
        data = encode(message)
        assert decode(data) == message
        assert encode(decode(data)) == data


def test_decode_rejects_garbage():
    with pytest.raises(msgspec.DecodeError):
        decode(b"\x93\xa7Nothing\x01\x02")
    with pytest.raises(msgspec.DecodeError):
        decode(b"\xff")


def test_replay_truncates_on_rewrite_and_caps_commit():
    e = [Entry(i, 0, 1, i, 0, 0, 0, 0, b"") for i in range(1, 5)]
    f3 = Entry(3, 1, 2, 1, 0, 0, 0, 0, b"new")
    stored = replay(2, 1, [EntriesWrite(1, tuple(e)), CommitWrite(2), EntriesWrite(3, (f3,)),
                           CommitWrite(9)])
    assert stored.entries == [e[0], e[1], f3]
    assert (stored.view, stored.log_view, stored.commit) == (2, 1, 3)
    assert replay(0, 0, [EntriesWrite(1, (e[0],)), EntriesWrite(5, (e[3],))]).entries == [e[0]]


def _entries(first: int, count: int) -> list[Entry]:
    return [Entry(i, 0, 1, i, 0, 0, 0, 0, b"x" * i) for i in range(first, first + count)]


@pytest.mark.parametrize("policy", list(FsyncPolicy))
def test_file_storage_survives_reopen(tmp_path, policy):
    storage = FileStorage(tmp_path, policy, batch_records=2)
    assert storage.load() is None
    storage.write_view(3, 2)
    storage.write_entries(1, _entries(1, 3))
    storage.write_commit(2)
    storage.write_entries(3, _entries(3, 2))
    storage.close()
    again = FileStorage(tmp_path, policy)
    stored = again.load()
    assert (stored.view, stored.log_view, stored.commit) == (3, 2, 2)
    assert stored.entries == _entries(1, 4)
    assert again.durable is (policy is FsyncPolicy.ALWAYS)
    again.close()


def test_file_storage_cuts_a_torn_tail_and_appends_after_it(tmp_path):
    storage = FileStorage(tmp_path)
    storage.write_view(1, 1)
    storage.write_entries(1, _entries(1, 2))
    storage.write_commit(2)
    storage.close()
    with open(tmp_path / "log", "ab") as log:
        log.write(b"\x40\x00\x00\x00\x00\x00\x00\x00half a frame")
    reopened = FileStorage(tmp_path)
    assert reopened.load().entries == _entries(1, 2)
    reopened.write_entries(3, _entries(3, 1))
    reopened.close()
    last = FileStorage(tmp_path)
    assert last.load().entries == _entries(1, 3)
    last.close()


def test_file_storage_rejects_a_bad_batch_size(tmp_path):
    with pytest.raises(ValueError, match="batch_records"):
        FileStorage(tmp_path, FsyncPolicy.BATCH, batch_records=0)


def test_sim_storage_loses_only_an_unsynced_suffix():
    storage = SimStorage(FsyncPolicy.BATCH, random.Random(1), batch_records=3)
    storage.write_view(0, 0)
    for i in range(1, 6):
        storage.write_entries(i, _entries(i, 1))
    assert len(storage.records) == 3 and len(storage.pending) == 2
    storage.crash(survive=1)
    assert storage.load().entries == _entries(1, 4)
    assert storage.lost_records == 1
    always = SimStorage(FsyncPolicy.ALWAYS, random.Random(1))
    always.write_view(0, 0)
    always.write_entries(1, _entries(1, 2))
    always.crash()
    assert always.load().entries == _entries(1, 2)


def test_replicas_restart_from_file_storage(tmp_path):
    storages = [FileStorage(tmp_path / str(r)) for r in range(3)]
    net = Net(3, storages=storages)
    for client in range(1, 4):
        net.submit(client, 1, b"durable")
    net.pump()
    net.tick(3_000_000)
    net.pump()
    storages[1].close()
    storages[1] = net.storages[1] = FileStorage(tmp_path / "1")
    net.committed[1] = []
    net.restart(1)
    assert net.replicas[1].status is Status.NORMAL
    assert net.committed[1] == [Committed(i, 0, i, 1, b"durable", False) for i in range(1, 4)]
    for storage in storages:
        storage.close()


def test_memory_storage_is_durable_and_starts_empty():
    storage = MemoryStorage()
    assert storage.durable and storage.load() is None


# ---------------------------------------------------------------- the view vote (vote.py)


def test_the_vote_survives_reopen_and_alternates_between_its_slots(tmp_path):
    from agora.decision.consensus.vote import VoteFile

    vote = VoteFile(tmp_path / "vote")
    assert vote.load() is None  # never voted
    for view, log_view in ((1, 0), (2, 2), (7, 2)):
        vote.write(view, log_view)
    vote.close()
    again = VoteFile(tmp_path / "vote")
    assert again.load() == (7, 2)
    again.write(8, 8)  # the counter continues from the disk: the newest slot wins
    again.close()
    assert VoteFile(tmp_path / "vote").load() == (8, 8)
    assert (tmp_path / "vote").stat().st_size == 8192


def test_a_torn_vote_falls_back_to_the_other_slot_and_two_are_an_error(tmp_path):
    from agora.decision.consensus.vote import VoteFile

    vote = VoteFile(tmp_path / "vote")
    vote.write(3, 3)  # counter 1: slot 1
    vote.write(4, 3)  # counter 2: slot 0
    vote.close()
    data = bytearray((tmp_path / "vote").read_bytes())
    data[10] ^= 0xFF  # the newest vote torn mid-write
    (tmp_path / "vote").write_bytes(bytes(data))
    assert VoteFile(tmp_path / "vote").load() == (3, 3)
    data[4096 + 10] ^= 0xFF
    (tmp_path / "vote").write_bytes(bytes(data))
    with pytest.raises(OSError, match="both vote slots are damaged"):
        VoteFile(tmp_path / "vote").load()
    (tmp_path / "vote").write_bytes(bytes(100))
    with pytest.raises(OSError, match="100 bytes"):
        VoteFile(tmp_path / "vote").load()


def test_a_file_storage_takes_over_the_vote_of_an_earlier_agora(tmp_path):
    storage = FileStorage(tmp_path, FsyncPolicy.ALWAYS)
    storage.write_view(0, 0)
    storage.write_entries(1, [Entry(1, 0, 1, 1, 0, 0, 0, 0, b"a")])
    storage.close()
    (tmp_path / "vote").unlink()
    (tmp_path / "view").write_bytes(msgspec.msgpack.encode((5, 4)))  # the old rename-based file
    storage = FileStorage(tmp_path, FsyncPolicy.ALWAYS)
    stored = storage.load()
    assert (stored.view, stored.log_view, len(stored.entries)) == (5, 4, 1)
    assert not (tmp_path / "view").exists()
    storage.close()
    storage = FileStorage(tmp_path, FsyncPolicy.ALWAYS)
    assert storage.load().view == 5
    storage.close()
