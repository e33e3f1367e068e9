"""The venue process: one asyncio loop hosting the gateways, the feed and the exchange core.

``run_venue`` opens the ``VenueCore`` (recovering the journal), starts the ITCH 5.0 / MoldUDP64
publisher (with its retransmission and snapshot channels) and the OUCH 5.0 / SoupBinTCP and FIX 4.4
gateways, prints one ``listening ...`` line per endpoint, and serves until asked to stop
(SIGINT/SIGTERM, or the ``stop`` event). Shutdown is graceful: gateways send End of Session /
Logout, the feed sends End of Session, the journal is committed and closed. A SIGKILL loses
nothing either: restart replays the journal, and clients resume from their sequence numbers.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import signal
from collections.abc import Callable
from pathlib import Path

from agora.core.gc_tuning import collect_rarely
from agora.exchange.venue.config import VenueConfig
from agora.exchange.venue.core import VenueCore
from agora.exchange.venue.fix_gateway import FixGateway
from agora.exchange.venue.itch_publisher import ItchPublisher
from agora.exchange.venue.ouch_gateway import OuchGateway


async def run_venue(
    config: VenueConfig,
    *,
    stop: asyncio.Event | None = None,
    say: Callable[[str], None] = print,
    tune_gc: bool = False,
) -> None:
    """Serve until ``stop`` is set or the process gets SIGINT/SIGTERM. ``tune_gc``: the process
    is the venue's own (``agora exchange serve``): it collects rarely from the start, and once
    the journal is replayed and the gateways have subscribed, that state leaves the collector's
    view (``core.gc_tuning``: a growing book otherwise costs a full scan that grows with it)."""
    if tune_gc:
        collect_rarely()
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        # not available off the main thread or on some platforms: then only ``stop`` stops us
        with contextlib.suppress(RuntimeError, ValueError, AttributeError):
            loop.add_signal_handler(sig, stop.set)
    core = VenueCore(config)
    venue = config.venue
    publisher = ItchPublisher(core, config)
    ouch = OuchGateway(core, config)
    fix = FixGateway(core, config, Path(venue.directory) / "fix")
    try:
        await publisher.start()
        await ouch.start()
        await fix.start()
        core.seal()  # every replaying listener has subscribed: the journal keeps the events
        if tune_gc:
            gc.freeze()
        say(f"recovered seq {core.exchange.last_seq} from {venue.directory}")
        say(f"listening ouch {venue.host}:{ouch.port}")
        say(f"listening fix {venue.host}:{fix.port}")
        say(f"listening itch-retransmit {publisher.retransmit_address[0]}:"
            f"{publisher.retransmit_address[1]}")
        say(f"listening itch-snapshot {publisher.snapshot_address[0]}:"
            f"{publisher.snapshot_address[1]}")
        say(f"publishing itch {venue.itch_address}:{venue.itch_port}")
        await stop.wait()
        say("stopping")
    finally:
        await fix.close()
        await ouch.close()
        await publisher.close()
        core.close()
        say("stopped")
