"""A Byzantine-mode replica that crashes and restarts from its records stays honest: it keeps
its votes, its P set, its executed log and its view, and emits only what its application has
not applied yet."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agora.decision.bft import AuthMode, BftConfig, BftReplica, Phase
from agora.decision.bft import storage as bft_storage
from agora.decision.bft.durable import StorageBehind
from agora.decision.bft.messages import (
    ClientRequest,
    Commit,
    PrePrepare,
    Sealed,
    ViewChange,
    decode,
    decode_inner,
    digest,
)
from agora.decision.bft.storage import (
    ExecRecord,
    FileBftStorage,
    MemoryBftStorage,
    NewViewRecord,
    SlotRecord,
    StorageDamaged,
    ViewRecord,
)
from agora.decision.consensus.messages import Broadcast, Committed
from agora.decision.consensus.storage import FsyncPolicy
from tests.decision.test_bft_replica import CLUSTER, Net


def durable_net() -> tuple[Net, list[MemoryBftStorage]]:
    net = Net()
    storages = [MemoryBftStorage() for _ in range(4)]
    for r in range(4):
        net.replicas[r] = BftReplica(BftConfig(cluster=CLUSTER, replica=r, n=4), net.keys,
                                     storages[r])
        net.replicas[r].start(0)
    return net, storages


def restart(net: Net, storages: list[MemoryBftStorage], r: int, applied: int) -> list:
    storages[r].flush()  # the transport flushes each step before its sends
    storages[r].crash()
    net.replicas[r] = BftReplica(BftConfig(cluster=CLUSTER, replica=r, n=4), net.keys,
                                 storages[r], applied_index=applied)
    return net.replicas[r].start(net.now)


def commit(net: Net, storages: list[MemoryBftStorage], payloads: list[bytes]) -> None:
    for payload in payloads:
        net.submit(payload)
        net.run()
        for storage in storages:
            storage.flush()


def test_a_restarted_replica_resumes_its_log_and_emits_only_what_was_not_applied():
    net, storages = durable_net()
    commit(net, storages, [b"a", b"b", b"c"])
    out = restart(net, storages, 2, applied=1)
    again = [item for item in out if isinstance(item, Committed)]
    assert [(c.index, c.payload) for c in again] == [(2, b"b"), (3, b"c")]
    replica = net.replicas[2]
    assert replica.executed == 3 and replica.phase is Phase.NORMAL and replica.view == 0
    assert replica.stats.recoveries == 1
    commit(net, storages, [b"d"])
    assert net.replicas[2].executed == 4
    assert net.committed[2][-1].payload == b"d" and net.committed[2][-1].index == 4


def test_a_restarted_backup_still_refuses_a_second_batch_at_the_same_slot():
    net, storages = durable_net()
    net.cut = {1, 2, 3}  # the primary's pre-prepare is queued; deliver it to replica 1 only
    net.submit(b"x")
    net.run()
    net.cut = set()
    request = net.replicas[0].slots[1][1]
    first = PrePrepare(CLUSTER, 0, 0, 1, digest(request), request)
    net.replicas[1].on_message(net.keys.seal(0, first, AuthMode.MACS), 0)
    restart(net, storages, 1, applied=0)
    other = ()  # an equivocating primary's twin for the same (view, seq)
    twin = PrePrepare(CLUSTER, 0, 0, 1, digest(other), other)
    out = net.replicas[1].on_message(net.keys.seal(0, twin, AuthMode.MACS), 0)
    assert out == [] and net.replicas[1].stats.dropped_equivocation == 1
    assert net.replicas[1].slots[1][0] == digest(request)


def test_a_restarted_replica_tells_the_truth_about_what_it_prepared():
    net, storages = durable_net()
    net.submit(b"y")
    while net.queue:  # everyone prepares; every Commit is lost, so nobody executes
        to, data = net.queue.popleft()
        message = decode(data)
        if to >= 0 and not (isinstance(message, Sealed)
                            and isinstance(decode_inner(message.body), Commit)):
            net.route(to, net.replicas[to].on_message(message, net.now))
    assert 1 in net.replicas[3].pset and net.replicas[3].executed == 0
    restart(net, storages, 3, applied=0)
    out: list = []
    net.replicas[3]._start_view_change(1, net.now, out)  # it suspects the primary
    [vc] = [decode_inner(item.message.body) for item in out if isinstance(item, Broadcast)]
    assert isinstance(vc, ViewChange)
    assert [e.seq for e in vc.prepared] == [1] and vc.prepared[0].batch[0].payload == b"y"


def test_a_restart_in_a_view_change_sends_its_view_change_again():
    net, storages = durable_net()
    replica = net.replicas[2]
    out: list = []
    replica._start_view_change(1, 0, out)
    storages[2].flush()
    again = restart(net, storages, 2, applied=0)
    assert net.replicas[2].view == 1 and net.replicas[2].phase is Phase.VIEW_CHANGE
    [vc] = [decode_inner(i.message.body) for i in again if isinstance(i, Broadcast)]
    assert isinstance(vc, ViewChange) and vc.view == 1


def test_a_restarted_primary_of_a_new_view_numbers_from_its_last_choice():
    # view 0 pre-prepared 1..3; the new view's decision chose only 1 (2 and 3 stay unused):
    # restarted, its primary (replica 1) goes on at 2, as it did before (it went on at 4)
    def batch(k: int) -> tuple[ClientRequest, ...]:
        return (ClientRequest(CLUSTER, 1, k, 0, b"p%d" % k),)

    storage = MemoryBftStorage()
    for record in [*(SlotRecord(0, k, digest(batch(k)), batch(k)) for k in (1, 2, 3)),
                   ViewRecord(1), NewViewRecord(1, Sealed(CLUSTER, 1, b"", b"signed")),
                   SlotRecord(1, 1, digest(batch(1)), batch(1))]:
        storage.append(record)
    storage.flush()
    replica = BftReplica(BftConfig(cluster=CLUSTER, replica=1, n=4), Net().keys, storage)
    replica.start(0)
    assert replica.view == 1 and replica.is_primary and replica.next_seq == 2


def test_storage_behind_the_application_is_refused():
    net, storages = durable_net()
    commit(net, storages, [b"a", b"b"])
    with pytest.raises(StorageBehind, match="applied 5"):
        restart(net, storages, 1, applied=5)


def test_unflushed_records_die_with_the_process():
    storage = MemoryBftStorage()
    storage.append(ViewRecord(1))
    storage.flush()
    storage.append(ViewRecord(2))
    storage.crash()
    assert storage.load() == [ViewRecord(1)]


def test_file_storage_round_trip_torn_tail_and_refused_batch_policy(tmp_path):
    storage = FileBftStorage(tmp_path, FsyncPolicy.ALWAYS)
    records = [ViewRecord(3), SlotRecord(3, 1, b"d" * 32, ()), ExecRecord(1, ())]
    for record in records:
        storage.append(record)
    storage.flush()
    storage.close()
    with open(tmp_path / "bft.log", "ab") as f:
        f.write(b"\x10\x00\x00\x00torn")  # a frame header and half a payload: a crash mid-write
    again = FileBftStorage(tmp_path)
    assert list(again.load()) == records
    again.append(ViewRecord(4))
    again.close()
    third = FileBftStorage(tmp_path)
    assert list(third.load()) == [*records, ViewRecord(4)]
    third.close()
    with pytest.raises(ValueError, match="batch"):
        FileBftStorage(tmp_path / "other", FsyncPolicy.BATCH)


def test_a_record_damaged_before_the_end_is_refused_not_cut(tmp_path):
    storage = FileBftStorage(tmp_path)
    for view in (1, 2, 3):
        storage.append(ViewRecord(view))
    storage.close()
    data = bytearray((tmp_path / "bft.log").read_bytes())
    data[len(data) // 2] ^= 0xFF  # a flipped byte in the second record, records follow it
    (tmp_path / "bft.log").write_bytes(bytes(data))
    damaged = FileBftStorage(tmp_path)
    with pytest.raises(StorageDamaged, match="damaged record at byte"):
        list(damaged.load())
    damaged.close()
    assert (tmp_path / "bft.log").read_bytes() == bytes(data), "nothing was cut"
    (tmp_path / "bft.log").write_bytes(bytes(data[:len(data) // 3]) + bytes(40))
    zeros = FileBftStorage(tmp_path)  # a torn append the file system padded with zeros
    assert list(zeros.load()) == [ViewRecord(1)]
    zeros.close()


def _request(k: int) -> ClientRequest:
    return ClientRequest(CLUSTER, 1, k, 0, b"r%d" % k, ())


@pytest.mark.parametrize("kind", ["memory", "file"])
def test_every_storage_reads_its_execution_records_back(tmp_path, kind):
    storage = MemoryBftStorage() if kind == "memory" else FileBftStorage(tmp_path)
    batches = [(_request(k),) * (k % 3) for k in range(1, 8)]
    for seq, batch in enumerate(batches, 1):
        storage.append(SlotRecord(0, seq, b"d" * 32, batch))
        storage.append(ExecRecord(seq, batch))
    assert storage.read_batches(2, 4) == batches[1:5]
    assert storage.read_batches(7, 1) == batches[6:]
    for first, count in ((0, 2), (5, 4)):
        with pytest.raises(LookupError, match="asked for"):
            storage.read_batches(first, count)
    if kind == "file":
        storage.close()
        storage = FileBftStorage(tmp_path)
        list(storage.load())
        assert storage.read_batches(1, 7) == batches
        storage.append(ExecRecord(8, (_request(9),)))
        assert storage.read_batches(7, 2) == [batches[6], (_request(9),)]
        storage.close()


def test_a_replica_keeps_its_latest_batches_and_fills_a_peer_from_its_storage(tmp_path):
    """With log_memory 4 a replica holds 4 to 8 executed batches; a peer 40 behind is filled
    from the others' files, a stable checkpoint at a time."""
    net = Net()
    storages = [FileBftStorage(tmp_path / str(r)) for r in range(4)]
    for r in range(4):
        net.replicas[r] = BftReplica(BftConfig(cluster=CLUSTER, replica=r, n=4, log_memory=4,
                                               fill_max=8, checkpoint_every=4), net.keys,
                                     storages[r])
        net.replicas[r].start(0)
    net.cut = {3}
    for k in range(40):
        net.submit(b"x%d" % k)
        net.run(ticks=1)
    log = net.replicas[0].log
    assert log.executed >= 40 and 4 <= len(log.batches) < 8 and log.base >= 32
    payloads = [r.payload for batch in log.range(1, log.executed) for r in batch if r.client_id]
    assert payloads == [b"x%d" % k for k in range(40)]  # the older ones read back from the file
    net.cut = set()
    net.run(ticks=10)
    assert [c.payload for c in net.committed[3]] == [b"x%d" % k for k in range(40)]
    assert net.replicas[3].stats.fills >= 5
    for storage in storages:
        storage.close()


@settings(max_examples=40, deadline=None)
@given(views=st.lists(st.integers(0, 2**40), min_size=1, max_size=30),
       chunk=st.integers(1, 200), tail=st.sampled_from(["none", "torn", "zeros", "damage"]))
def test_a_load_in_any_chunks_finds_the_records_and_judges_the_tail_as_a_whole_read(
        tmp_path_factory, views, chunk, tail):
    path = tmp_path_factory.mktemp("bft")
    storage = FileBftStorage(path)
    drafts = [ViewRecord(v) if v % 3 else ExecRecord(0, (_request(v % 50 + 1),))
              for v in views]
    records = [ExecRecord(k, r.batch) if type(r) is ExecRecord else r
               for k, r in zip(_exec_numbers(drafts), drafts, strict=True)]
    execs = [r for r in records if type(r) is ExecRecord]
    for record in records:
        storage.append(record)
    storage.close()
    data = (path / "bft.log").read_bytes()
    extra = {"none": b"", "torn": data[:3], "zeros": bytes(30),
             "damage": b"\x05\x00\x00\x00\x00\x00\x00\x00hello" + data[:20]}[tail]
    (path / "bft.log").write_bytes(data + extra)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(bft_storage, "SCAN_CHUNK", chunk)
        again = FileBftStorage(path)
        if tail == "damage":
            with pytest.raises(StorageDamaged, match=f"damaged record at byte {len(data)}"):
                list(again.load())
        else:
            assert list(again.load()) == records
            assert (path / "bft.log").stat().st_size == len(data)  # a torn tail is cut
            if execs:
                assert again.read_batches(1, len(execs)) == [r.batch for r in execs]
        again.close()


def _exec_numbers(records):
    """Sequence numbers 1, 2, ... for the execution records (others keep a placeholder)."""
    k = 0
    for record in records:
        if type(record) is ExecRecord:
            k += 1
        yield k
