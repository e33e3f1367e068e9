"""The blocking-socket replica driver in-process: a single replica served on a thread, a plain
socket as the client. (The multi-process behaviour, kills and restarts included, is the e2e
suite's: ``replica_main`` runs this driver by default.)"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from agora.core.clock import WallClock
from agora.decision.consensus import MemoryStorage, Replica, ReplicaConfig
from agora.decision.consensus.messages import (
    Entry,
    Hello,
    Prepare,
    Reply,
    Request,
    decode,
    encode,
)
from agora.decision.transport.blocking import BlockingNode
from agora.decision.transport.cluster import free_udp_ports
from agora.decision.transport.framing import frames
from agora.decision.transport.node import HELLO_MAX
from agora.decision.transport.record import Recorder, read_records
from agora.decision.transport.sync_client import SyncClient

CLUSTER = 5


class Raising(Replica):
    def on_tick(self, now_ns: int) -> list:
        if self.commit >= 2:
            raise RuntimeError("a replica bug")
        return super().on_tick(now_ns)


@pytest.fixture
def client() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(5)
    yield sock
    sock.close()


def serve(tmp_path: Path, replica_type: type[Replica] = Replica
          ) -> tuple[BlockingNode, threading.Thread]:
    port = free_udp_ports(1)[0]
    replica = replica_type(ReplicaConfig(cluster=CLUSTER, replica=0, n=1), MemoryStorage())
    node = BlockingNode(replica, [("127.0.0.1", port)], WallClock(),
                        Recorder(tmp_path / "committed.log", 0), tick_ns=1_000_000)
    node.open()
    thread = threading.Thread(target=node.serve, daemon=True)
    thread.start()
    return node, thread


def ask(client: socket.socket, node: BlockingNode, number: int) -> Reply:
    request = Request(CLUSTER, 1, number, 0, b"order-%d" % number)
    client.sendto(frames(encode(request), number)[0], node.peers[0])
    reply = decode(client.recv(65_536)[1:])
    assert isinstance(reply, Reply)
    return reply


def test_requests_commit_garbage_is_counted_ticks_run_and_close_ends_serve(tmp_path, client):
    node, thread = serve(tmp_path)
    try:
        client.sendto(b"\x07not a frame", node.peers[0])
        client.sendto(b"\x00\xc1", node.peers[0])  # our framing, undecodable body
        client.sendto(frames(encode(Hello(CLUSTER, 1, 1)), 0)[0], node.peers[0])
        assert [ask(client, node, k).index for k in (1, 2, 3)] == [1, 2, 3]
        assert node.stats.garbage == 2
        ticks = node.replica.marks["heartbeat"]
        threading.Event().wait(0.02)  # idle: the receive timeout keeps the ticks coming
        assert node.replica.marks["heartbeat"] > ticks
    finally:
        node.close()
        thread.join(timeout=5)
    assert not thread.is_alive() and node.failed is None
    records = read_records(tmp_path / "committed.log")
    assert [r.item.payload for r in records if r.item] == [b"order-1", b"order-2", b"order-3"]
    with pytest.raises(OSError):
        node.datagrams.sock.getsockname()  # closed with the node


def test_a_replica_exception_stops_serving_and_is_kept(tmp_path, client):
    node, thread = serve(tmp_path, Raising)
    ask(client, node, 1)
    ask(client, node, 2)
    thread.join(timeout=5)
    assert not thread.is_alive()
    assert isinstance(node.failed, RuntimeError)


def test_a_send_the_kernel_refuses_is_counted_not_raised(tmp_path):
    node, thread = serve(tmp_path)
    try:
        node.datagrams.sendto(b"x" * 70_000, ("127.0.0.1", 9))  # larger than a datagram
        assert node.stats.send_errors == 1
    finally:
        node.close()
        thread.join(timeout=5)


def test_a_sync_client_commits_in_turn_and_times_out_on_a_silent_cluster(tmp_path):
    node, thread = serve(tmp_path)
    try:
        with SyncClient(CLUSTER, node.peers, WallClock(), client_id=3) as client:
            assert [client.commit(b"a").index, client.commit(b"b").index] == [1, 2]
            assert 3 in node.clients  # announced by Hello before the first request
    finally:
        node.close()
        thread.join(timeout=5)
    silent = free_udp_ports(1)
    with SyncClient(CLUSTER, [("127.0.0.1", silent[0])], WallClock(), client_id=4,
                    retry_ns=1_000_000) as client, pytest.raises(TimeoutError, match="client 4"):
        client.commit(b"lost", timeout_s=0.05)


def _drained(replica_index: int, config: dict, datagrams: list[tuple[str, bytes]]
             ) -> BlockingNode:
    """A node of a 3-replica cluster, bound but not serving: ``datagrams`` ((sender, bytes),
    sender "peer" = replica 0's address or "client") are queued, then one drain runs."""
    peers = [("127.0.0.1", port) for port in free_udp_ports(3)]
    replica = Replica(ReplicaConfig(cluster=CLUSTER, replica=replica_index, n=3, **config),
                      MemoryStorage())
    node = BlockingNode(replica, peers, WallClock(), None)
    node.open()
    order: list[str] = []
    step = node.on_datagram
    node.on_datagram = lambda data, addr: (order.append(  # type: ignore[method-assign]
        "peer" if addr in node.peer_addresses else "client"), step(data, addr))
    senders = {"peer": socket.socket(socket.AF_INET, socket.SOCK_DGRAM),
               "client": socket.socket(socket.AF_INET, socket.SOCK_DGRAM)}
    try:
        if replica_index != 0:
            senders["peer"].bind(peers[0])
        for sender, data in datagrams:
            senders[sender].sendto(data, peers[replica_index])
        threading.Event().wait(0.05)
        node._drain(node.datagrams.sock)
    finally:
        for sock in senders.values():
            sock.close()
        node.close()
        node._shut()
    node.order = order  # type: ignore[attr-defined]
    return node


def _request(number: int) -> bytes:
    return frames(encode(Request(CLUSTER, 1, number, 0, b"x")), number)[0]


def test_a_loaded_backup_steps_on_the_leaders_prepare_first_and_sheds_client_retries():
    prepare = Prepare(CLUSTER, 0, 0, 0, (Entry(1, 0, 2, 1, 0, 1, 1, 0, b"p"),))
    node = _drained(1, {}, [("client", _request(k)) for k in range(1, 11)]
                    + [("peer", frames(encode(prepare), 99)[0])])
    assert node.order == ["peer"]  # the Prepare, queued last, went first; no retry was read
    assert node.replica.op == 1
    assert node.stats.client_datagrams_shed == 10
    few = _drained(1, {}, [("client", _request(k)) for k in range(1, 4)]
                   + [("peer", frames(encode(prepare), 99)[0])])
    assert few.order == ["peer", "client", "client", "client"]  # read, after the Prepare
    assert few.stats.client_datagrams_shed == 0


def test_the_leader_stops_reading_clients_once_its_request_queue_is_full():
    node = _drained(0, {"pipeline_max": 1, "batch_max": 1, "pending_max": 1},
                    [("client", frames(encode(Request(CLUSTER, k, 1, 0, b"x")), k)[0])
                     for k in range(1, 5)])
    assert node.replica.op == 1 and len(node.replica.pending) == 1  # one prepared, one queued
    assert node.stats.client_datagrams_shed == 2


def test_hello_registers_a_client_range_and_bad_ones_are_ignored():
    port = free_udp_ports(1)[0]
    replica = Replica(ReplicaConfig(cluster=CLUSTER, replica=0, n=1), MemoryStorage())
    node = BlockingNode(replica, [("127.0.0.1", port)], WallClock(), None)
    node.open()  # bound, not serving: this test steps it by hand
    try:
        for hello in (Hello(CLUSTER + 1, 10, 5),  # another cluster
                      Hello(CLUSTER, 100, 0),  # no ids
                      Hello(CLUSTER, 200, HELLO_MAX + 1)):  # more than one Hello may claim
            node.on_datagram(frames(encode(hello), 1)[0], ("127.0.0.1", 7))
        assert node.clients == {}
        node.on_datagram(frames(encode(Hello(CLUSTER, 40, 3)), 1)[0], ("127.0.0.1", 7))
        assert node.clients == dict.fromkeys((40, 41, 42), ("127.0.0.1", 7))
    finally:
        node._shut()
