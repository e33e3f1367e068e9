"""The UDP client's batching and retry timer, without sockets: a fake transport records datagrams
and a ``SimClock`` moves time, so each test states exactly what leaves and when."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import uvloop

from agora.core.clock import Clock, SimClock
from agora.decision.consensus.messages import (
    Hello,
    Reply,
    ReplyBatch,
    Request,
    RequestBatch,
    decode,
    encode,
)
from agora.decision.transport.client import ClusterClient
from agora.decision.transport.framing import frames

PEERS = [("127.0.0.1", 9001), ("127.0.0.1", 9002), ("127.0.0.1", 9003)]
MS = 1_000_000


class FakeTransport:
    """Records what is sent, decoded (``decoder``: the wire format of the cluster's mode)."""

    def __init__(self, decoder: Callable[[bytes], object] = decode) -> None:
        self.decoder = decoder
        self.sent: list[tuple[object, tuple[str, int]]] = []

    def sendto(self, data: bytes, addr: tuple[str, int]) -> None:
        self.sent.append((self.decoder(data[1:]), addr))

    def is_closing(self) -> bool:
        return False

    def get_extra_info(self, name: str) -> None:
        return None

    def close(self) -> None:
        pass


def _client(clock: Clock) -> tuple[ClusterClient, FakeTransport]:
    client = ClusterClient(1, PEERS, clock, first_id=1, pool=4, retry_ns=8 * MS)
    transport = FakeTransport()
    client.connection_made(transport)  # type: ignore[arg-type]
    assert transport.sent == [(Hello(1, 1, 4), peer) for peer in PEERS]
    transport.sent.clear()
    return client, transport


async def _one_request(clock: SimClock) -> tuple[ClusterClient, FakeTransport,
                                                 asyncio.Future, Request]:
    """A pool that sent one request: the pool, its transport (cleared), the future, the request."""
    client, transport = _client(clock)
    future = client.submit(b"x")
    await asyncio.sleep(0)
    [(request, to)] = transport.sent
    assert to == PEERS[0]
    transport.sent.clear()
    return client, transport, future, request


def test_one_turn_of_requests_is_one_batch_and_a_batch_of_replies_answers_them():
    async def main() -> None:
        clock = SimClock(1_000)
        client, transport = _client(clock)
        futures = [client.submit(b"p%d" % i) for i in range(3)]
        await asyncio.sleep(0)
        [(batch, addr)] = transport.sent
        assert isinstance(batch, RequestBatch) and addr == PEERS[0]
        assert [(r.client_id, r.request_number, r.payload) for r in batch.requests] == [
            (1, 1, b"p0"), (2, 1, b"p1"), (3, 1, b"p2")]
        clock.advance(300_000)
        replies = ReplyBatch(1, 0, tuple(Reply(1, 0, 0, r.client_id, 1, i + 1, False)
                                         for i, r in enumerate(batch.requests)))
        client.datagram_received(frames(encode(replies), 1)[0], PEERS[0])
        outcomes = [f.result() for f in futures]
        assert [o.reply.index for o in outcomes] == [1, 2, 3]
        assert all(o.latency_ns == 300_000 for o in outcomes)
        assert (client.requests_sent, client.request_datagrams) == (3, 1)
        client.close()

    uvloop.run(main())


def test_retries_wait_for_several_smoothed_round_trips_and_go_batched_to_every_replica():
    async def main() -> None:
        clock = SimClock(1_000)
        client, transport = _client(clock)
        for number in range(1, 9):  # replies 40 ms after each attempt: a loaded cluster
            future = client.submit(b"x")
            await asyncio.sleep(0)
            request = transport.sent[-1][0]
            assert isinstance(request, Request)
            clock.advance(40 * MS)
            reply = Reply(1, 0, 0, request.client_id, request.request_number, number, False)
            client.datagram_received(frames(encode(reply), 1)[0], PEERS[0])
            assert future.done()
        transport.sent.clear()
        client.submit(b"late")
        client.submit(b"later")
        await asyncio.sleep(0)
        clock.advance(30 * MS)  # past the 8 ms floor, within 4 smoothed round trips (> 30 ms)
        client._tick()
        await asyncio.sleep(0)
        assert len(transport.sent) == 1, "no retry yet"
        clock.advance(100 * MS)
        client._tick()
        await asyncio.sleep(0)
        retries = transport.sent[1:]
        assert sorted(addr for _, addr in retries) == PEERS  # one datagram per replica
        assert all(isinstance(m, RequestBatch) and len(m.requests) == 2 for m, _ in retries)
        client.close()

    uvloop.run(main())


def test_a_backup_acknowledgement_settles_a_request_and_hellos_repeat():
    async def main() -> None:
        clock = SimClock(1_000)
        client, transport, future, request = await _one_request(clock)
        clock.advance(200_000)
        ack = Reply(1, 1, 0, request.client_id, request.request_number, 1, False)  # backup 1
        client.datagram_received(frames(encode(ack), 1)[0], PEERS[1])
        assert future.done() and future.result().reply == ack
        assert future.result().latency_ns == 200_000
        clock.advance(999 * MS)
        client._tick()
        assert transport.sent == []
        clock.advance(2 * MS)
        client._tick()
        assert transport.sent == [(Hello(1, 1, 4), peer) for peer in PEERS]
        client.close()

    uvloop.run(main())


def test_pools_draw_fresh_random_ids_unless_given():
    async def main() -> None:
        clock = SimClock(1_000)
        pools = [ClusterClient(1, PEERS, clock, pool=1_024) for _ in range(2)]
        firsts = [min(p.clients) for p in pools]
        assert firsts[0] != firsts[1] and all(f >= 1 for f in firsts)
        assert all(max(p.clients) == min(p.clients) + 1_023 < 1 << 62 for p in pools)

    uvloop.run(main())


def test_a_queue_full_reply_is_counted_and_retried_at_the_leader_after_a_pause():
    async def main() -> None:
        clock = SimClock(1_000)
        client, transport, future, request = await _one_request(clock)
        full = Reply(1, 0, 0, request.client_id, request.request_number, 0, False, True)
        client.datagram_received(frames(encode(full), 1)[0], PEERS[0])
        assert not future.done() and client.queue_full_replies == 1
        clock.advance(MS // 4)
        client._tick()
        await asyncio.sleep(0)  # requests leave at the end of the loop turn
        assert transport.sent == []  # the pause (0.5 ms) is not over
        clock.advance(MS // 4)
        client._tick()
        await asyncio.sleep(0)
        assert transport.sent == [(request, PEERS[0])]  # to the leader only, not a broadcast
        committed = Reply(1, 0, 0, request.client_id, request.request_number, 1, False)
        client.datagram_received(frames(encode(committed), 2)[0], PEERS[0])
        assert future.done() and future.result().reply == committed
        client.close()

    uvloop.run(main())


class _Clock:
    """A settable clock that may go back (a wall clock stepped by NTP)."""

    def __init__(self, now: int) -> None:
        self.now = now

    def now_ns(self) -> int:
        return self.now


def test_ticks_leave_the_waiting_clients_alone_until_a_retry_may_be_due():
    async def main() -> None:
        clock = _Clock(1_000)
        client, transport = _client(clock)
        ticked: list[int] = []
        for sans_io in client.clients.values():
            on_tick = sans_io.on_tick
            sans_io.on_tick = lambda now, f=on_tick, c=sans_io: (  # type: ignore[method-assign]
                ticked.append(c.client_id), f(now))[1]
        for i in range(3):
            client.submit(b"p%d" % i)
        await asyncio.sleep(0)
        for _ in range(7):
            clock.now += MS
            client._tick()
        assert ticked == [], "no client may be due before its 8 ms retry timer"
        clock.now -= 3 * MS  # the clock went back: due times measured on it no longer hold
        client._tick()
        assert sorted(ticked) == [1, 2, 3]
        ticked.clear()
        transport.sent.clear()
        clock.now += 9 * MS  # past every timer, measured from the clock gone back
        client._tick()
        await asyncio.sleep(0)
        assert sorted(ticked) == [1, 2, 3]
        assert sorted(addr for _, addr in transport.sent) == PEERS  # the batched broadcast
        client.close()

    uvloop.run(main())


def test_a_shrinking_retry_timer_brings_the_retries_forward():
    async def main() -> None:
        clock = _Clock(1_000)
        client, transport = _client(clock)
        client.rtt_ns = 10 * MS  # a loaded cluster: retries after 4 round trips, 40 ms
        client._tick()
        client.submit(b"x")
        await asyncio.sleep(0)
        client.rtt_ns = 0.0  # the load went: the timer falls back to its 8 ms floor
        transport.sent.clear()
        clock.now += 7 * MS
        client._tick()
        await asyncio.sleep(0)
        assert transport.sent == []
        clock.now += 2 * MS
        client._tick()
        await asyncio.sleep(0)
        assert sorted(addr for _, addr in transport.sent) == PEERS, "retried at 8 ms, not 40"
        client.close()

    uvloop.run(main())
