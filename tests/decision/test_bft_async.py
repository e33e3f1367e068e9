"""The Byzantine mode on an event loop: the asyncio BFT node and the async BFT client.

First the client without sockets (a fake transport records datagrams, a ``SimClock`` moves
time), then four :class:`AsyncBftNode` replicas (f = 1) built by ``replica_main.build_bft`` with
a committed hook, on loopback UDP in this test's event loop, and a :class:`BftClusterClient`
proposing to them: with every replica correct, with a lying primary, with a replica gone.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import uvloop

from agora.core.clock import SimClock, WallClock
from agora.decision.bft import BftClient
from agora.decision.bft.auth import Keyring
from agora.decision.bft.messages import ClientReply, ClientRequest, decode, encode
from agora.decision.consensus.messages import Committed, Reply
from agora.decision.transport import replica_main
from agora.decision.transport.bft_client import BftClusterClient
from agora.decision.transport.bft_node import AsyncBftNode
from agora.decision.transport.cluster import free_udp_ports
from agora.decision.transport.framing import frames
from agora.decision.transport.record import read_records
from tests.decision.test_transport_client import FakeTransport

SECRET = b"agora-unit-bft-async-secret"
N = 4
PEERS = [("127.0.0.1", 9001 + r) for r in range(N)]
MS = 1_000_000


def _pool(clock: SimClock, *, first_id: int = 1, pool: int = 1
          ) -> tuple[BftClusterClient, FakeTransport]:
    client = BftClusterClient(1, PEERS, clock, keyring=Keyring(SECRET, N), first_id=first_id,
                              pool=pool, retry_ns=20 * MS)
    transport = FakeTransport(decode)
    client.connection_made(transport)  # type: ignore[arg-type]
    assert transport.sent == [], "no Hello: replicas learn the address from requests"
    return client, transport


def _reply(keys: Keyring, request: ClientRequest, replica: int, index: int) -> bytes:
    reply = keys.seal_reply(ClientReply(1, replica, 0, request.client_id,
                                        request.request_number, index))
    return frames(encode(reply), replica)[0]


def test_the_pool_broadcasts_maced_requests_and_settles_on_f_plus_one_matching_replies():
    async def main() -> None:
        clock = SimClock(1_000)
        keys = Keyring(SECRET, N)
        client, transport = _pool(clock, first_id=7, pool=2)
        futures = [client.submit(b"a", 50 * MS), client.submit(b"b"), client.submit(b"c")]
        await asyncio.sleep(0)
        requests = [m for m, _ in transport.sent]
        assert sorted(addr for _, addr in transport.sent) == sorted(PEERS * 2)
        assert all(isinstance(m, ClientRequest) for m in requests)
        first = requests[0]
        assert (first.client_id, first.payload, first.budget_ns) == (7, b"a", 50 * MS)
        assert all(keys.client_ok(r, first) for r in range(N)), "one valid MAC per replica"
        clock.advance(300_000)
        forged = ClientReply(1, 2, 0, 7, 1, 1, b"\0" * 32)
        client.datagram_received(frames(encode(forged), 1)[0], PEERS[2])
        client.datagram_received(_reply(keys, first, 1, 1), PEERS[1])
        client.datagram_received(_reply(keys, first, 1, 1), PEERS[1])  # a duplicate
        assert not futures[0].done(), "one replica (or a forger) cannot settle a request"
        client.datagram_received(_reply(keys, first, 3, 2), PEERS[3])  # disagrees: a liar
        assert not futures[0].done()
        client.datagram_received(_reply(keys, first, 0, 1), PEERS[0])
        outcome = futures[0].result()
        assert (outcome.reply.index, outcome.reply.client_id, outcome.latency_ns) == (1, 7,
                                                                                       300_000)
        # the backlogged third submission took the settled client id 7 at once
        thirds = [m for m, _ in transport.sent if m.payload == b"c"]
        assert len(thirds) == N and {(m.client_id, m.request_number) for m in thirds} == {(7, 2)}
        client.close()

    uvloop.run(main())


def test_requests_are_rebroadcast_after_the_retry_time():
    async def main() -> None:
        clock = SimClock(1_000)
        client, transport = _pool(clock)
        client.submit(b"x")
        transport.sent.clear()
        for advance_ms, expected in ((10, 0), (11, N)):  # retry_ns is 20 ms
            clock.advance(advance_ms * MS)
            client._tick()
            assert len(transport.sent) == expected
        assert sorted(a for _, a in transport.sent) == PEERS
        assert {(m.client_id, m.request_number) for m, _ in transport.sent} == {(1, 1)}
        client.close()

    uvloop.run(main())


def test_the_future_carries_the_reply_the_sans_io_client_settled_on(monkeypatch):
    """Whatever the sans-IO client reports (its deadline verdict included) reaches the caller
    unchanged: the pool does not rebuild the reply from the last datagram."""
    settled = Reply(1, 0, 0, 1, 1, 5, True)
    monkeypatch.setattr(BftClient, "on_reply", lambda self, reply, now: settled)

    async def main() -> None:
        keys = Keyring(SECRET, N)
        client, transport = _pool(SimClock(1_000))
        future = client.submit(b"x", 10 * MS)
        [(request, _), *_] = transport.sent
        client.datagram_received(_reply(keys, request, 2, 5), PEERS[2])
        assert future.result().reply is settled and future.result().reply.abandoned
        client.close()

    uvloop.run(main())


def test_a_keyring_for_another_cluster_size_is_refused():
    with pytest.raises(ValueError, match="keyring is for 7 replicas"):
        BftClusterClient(1, PEERS, SimClock(0), keyring=Keyring(SECRET, 7))


# ---------------------------------------------------------------- four replicas on loopback


class Loopback:
    """Four asyncio BFT replicas built as ``replica_main`` builds them, each with a hook."""

    def __init__(self, tmp_path: Path, byzantine: dict[int, str] | None = None) -> None:
        (tmp_path / "secret").write_bytes(SECRET)
        self.tmp_path = tmp_path
        self.peers = [("127.0.0.1", port) for port in free_udp_ports(N)]
        self.byzantine = byzantine or {}
        self.hooked: list[list[Committed]] = [[] for _ in range(N)]
        self.nodes: list[AsyncBftNode] = []
        self.clients: list[BftClusterClient] = []

    async def __aenter__(self) -> Loopback:
        peers = ",".join(f"{h}:{p}" for h, p in self.peers)
        for i in range(N):
            fault = ["--byzantine", self.byzantine[i]] if i in self.byzantine else []
            args = replica_main.build_parser().parse_args(
                ["--id", str(i), "--peers", peers, "--dir", str(self.tmp_path / f"r{i}"),
                 "--mode", "bft", "--io", "asyncio", "--secret-file",
                 str(self.tmp_path / "secret"), *fault])
            node = replica_main.build_bft(args, replica_main.bft_keyring(args), AsyncBftNode,
                                          self.hooked[i].append)
            await node.open()
            self.nodes.append(node)
        return self

    async def connect(self, pool: int) -> BftClusterClient:
        """A pool of ``pool`` BFT clients, closed with the cluster."""
        client = await BftClusterClient.connect(1, self.peers, WallClock(),
                                                keyring=Keyring(SECRET, N), pool=pool)
        self.clients.append(client)
        return client

    async def __aexit__(self, *exc: object) -> None:
        for client in self.clients:
            client.close()
        for node in self.nodes:
            node.close()
            if node.bft.storage is not None:
                node.bft.storage.close()

    async def commit(self, client: BftClusterClient, count: int, tag: bytes) -> list[Reply]:
        futures = [client.submit(b"%s-%03d" % (tag, i)) for i in range(count)]
        outcomes = await asyncio.wait_for(asyncio.gather(*futures), 15)
        assert all(node.failed is None for node in self.nodes)
        return [o.reply for o in outcomes]

    async def converged(self, replicas: list[int], count: int) -> list[tuple]:
        """The entries every replica of ``replicas`` handed its hook, once all have ``count``
        (they must be the same entries in the same order)."""
        for _ in range(500):
            if all(len(self.hooked[r]) >= count for r in replicas):
                break
            await asyncio.sleep(0.01)
        logs = [[(c.index, c.view, c.client_id, c.request_number, c.payload)
                 for c in self.hooked[r]] for r in replicas]
        assert all(log == logs[0] for log in logs), "the correct replicas agree"
        assert [e[0] for e in logs[0]] == list(range(1, count + 1))
        return logs[0]


def test_four_asyncio_replicas_commit_what_the_pool_submits_and_hook_every_entry(tmp_path):
    async def main() -> None:
        async with Loopback(tmp_path) as cluster:
            client = await cluster.connect(pool=8)
            replies = await cluster.commit(client, 40, b"p")
            entries = await cluster.converged(list(range(N)), 40)
            assert sorted(r.index for r in replies) == list(range(1, 41))
            assert {e[1] for e in entries} == {0}, "Committed.view is always 0 in this mode"
            assert sorted(e[4] for e in entries) == [b"p-%03d" % i for i in range(40)]
            assert len({e[2] for e in entries}) == 8, "the pool's eight client ids"
            for node in cluster.nodes:
                assert node.stats.committed == 40
                assert set(node.clients) == set(client.clients)
        for i in range(N):  # the hook saw what the committed record holds
            records = [r.item for r in read_records(tmp_path / f"r{i}" / "committed.log")
                       if r.item is not None]
            assert records == cluster.hooked[i]

    uvloop.run(main())


def test_a_lying_primary_is_voted_out_and_the_correct_replicas_agree(tmp_path):
    async def main() -> None:
        async with Loopback(tmp_path, {0: "equivocate,forge"}) as cluster:
            await cluster.commit(await cluster.connect(pool=4), 20, b"a")
            await cluster.converged([1, 2, 3], 20)
            assert all(cluster.nodes[r].stats.view >= 1 for r in (1, 2, 3))

    uvloop.run(main())


def test_a_closed_replica_does_not_stop_the_others(tmp_path):
    async def main() -> None:
        async with Loopback(tmp_path) as cluster:
            client = await cluster.connect(pool=4)
            await cluster.commit(client, 10, b"b")
            cluster.nodes[3].close()  # f = 1: three replicas still make 2f + 1
            replies = await cluster.commit(client, 20, b"c")
            await cluster.converged([0, 1, 2], 30)
            assert sorted(r.index for r in replies) == list(range(11, 31))
            assert len(cluster.hooked[3]) <= 10

    uvloop.run(main())
