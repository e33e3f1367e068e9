"""ITCH 5.0 over MoldUDP64 to a multicast group: several receivers on one host share the feed.

The venue publishes host-local multicast (TTL 0, looped back); two subscribers join the same group
and port, one of them losing 15% of what it receives and recovering it through retransmission
requests from its own unicast socket (a reply to the shared port would reach only one of them).
Both must rebuild exactly the engine's displayed book. Skipped, saying why, on a host without a
route for multicast.
"""

from __future__ import annotations

import asyncio
import random
import socket

import msgspec
import pytest

from agora.bench.workload import engine_workload
from agora.exchange.venue.core import VenueCore
from agora.exchange.venue.itch_publisher import ItchPublisher
from agora.feed.live import ItchSubscriber
from agora.protocols.moldudp64 import is_multicast
from tests.e2e.test_itch_feed_e2e import SYMBOLS, lossy, make_config, settle, submit_all

pytestmark = pytest.mark.e2e


def free_group() -> tuple[str, int]:
    """A random administratively scoped group and a port free on this host."""
    rng = random.Random()
    group = f"239.{rng.randrange(1, 255)}.{rng.randrange(1, 255)}.{rng.randrange(1, 255)}"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return group, s.getsockname()[1]


def multicast_unavailable() -> str | None:
    group, port = free_group()
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        rx.bind((group, port))
        rx.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
                      socket.inet_aton(group) + socket.inet_aton("0.0.0.0"))
        rx.settimeout(0.5)
        tx.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 0)
        tx.sendto(b"probe", (group, port))
        rx.recvfrom(16)
    except OSError as exc:
        return f"host-local multicast does not work here: {exc!r}"
    finally:
        rx.close()
        tx.close()
    return None


REASON = multicast_unavailable()


def test_only_a_group_address_means_multicast():
    assert is_multicast("239.1.2.3") and is_multicast("224.0.0.1")
    assert not is_multicast("127.0.0.1") and not is_multicast("10.0.0.1")
    assert not is_multicast("localhost")  # a host name stays unicast, as before multicast


def test_a_host_name_still_works_for_a_unicast_subscriber():
    async def scenario() -> None:
        sub = ItchSubscriber(host="localhost")
        await sub.start()
        assert sub.port > 0
        await sub.close()

    asyncio.run(scenario())


@pytest.mark.skipif(REASON is not None, reason=str(REASON))
def test_two_receivers_of_one_multicast_feed_rebuild_the_book(tmp_path):
    async def scenario() -> None:
        group, port = free_group()
        config = make_config(tmp_path, port)
        config = msgspec.structs.replace(config, venue=msgspec.structs.replace(
            config.venue, itch_address=group, itch_multicast_ttl=0))
        core = VenueCore(config)
        pub = ItchPublisher(core)
        await pub.start()
        subs = [ItchSubscriber(host=group, port=port, retransmit=pub.retransmit_address,
                               retry_ms=20, drop=drop) for drop in (None, lossy(3))]
        try:
            for sub in subs:
                await sub.start()
            await submit_all(core, engine_workload(1_500, seed=5, symbols=len(SYMBOLS)))
            for sub in subs:
                await settle(sub, pub, core)
            clean, lossy_sub = subs  # (both asked for what the venue sent before they joined)
            assert lossy_sub.dropped > 0 and lossy_sub.requests_sent > clean.requests_sent
            assert clean.book_levels() == lossy_sub.book_levels()
        finally:
            for sub in subs:
                await sub.close()
            await pub.close()
            core.close()

    asyncio.run(asyncio.wait_for(scenario(), 60))
