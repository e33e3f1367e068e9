"""VenueCore group commit: grouped commands are committed once per event-loop turn, then
published in sequence order; a plain submit flushes what is pending first; nothing is published
before its commit."""

from __future__ import annotations

import asyncio

import pytest

from agora.core.enums import Side
from agora.core.errors import MalformedCommand
from agora.core.events import CancelOrder, NewOrder, OrderAccepted
from agora.exchange.venue.config import load_config
from agora.exchange.venue.core import VenueCore
from tests.exchange.venue.test_config_core import CONFIG, write


@pytest.fixture
def core(tmp_path):
    core = VenueCore(load_config(write(tmp_path, CONFIG)))
    yield core
    core.close()


class Recorder:
    """Listener + flush hook that checks every published batch was committed first."""

    def __init__(self, core: VenueCore) -> None:
        self.core = core
        self.commits = 0
        self.batches: list[int] = []
        self.flushes: list[int] = []  # batches seen at each flush hook
        real_commit = core.exchange.commit

        def commit() -> None:
            self.commits += 1
            self.committed_upto = core.exchange.last_seq
            real_commit()

        core.exchange.commit = commit  # type: ignore[method-assign]
        self.committed_upto = core.exchange.last_seq
        core.subscribe(self.on_events, flushed=lambda: self.flushes.append(len(self.batches)))

    def on_events(self, seq: int, events) -> None:
        assert seq <= self.committed_upto, "published before its commit"
        self.batches.append(seq)


def order(i: int) -> NewOrder:
    return NewOrder("FIRM1", f"o{i}", "AAPL", Side.BUY, 100, 1_890_000 - 100 * (i % 7))


def test_grouped_commands_commit_once_per_loop_turn_and_publish_in_order(core):
    rec = Recorder(core)

    async def scenario() -> None:
        first_seq = core.exchange.last_seq + 1
        returned = [core.submit(order(i), group=True) for i in range(50)]
        assert all(type(events[0]) is OrderAccepted for events in returned)  # applied at once
        assert rec.batches == [] and rec.commits == 0  # nothing published or committed yet
        await asyncio.sleep(0)  # one loop turn: the scheduled flush runs
        assert rec.commits == 1
        assert rec.batches == list(range(first_seq, first_seq + 50))
        assert rec.flushes == [50]
        core.submit(order(50), group=True)
        core.submit(order(51), group=True)
        await asyncio.sleep(0)
        assert rec.commits == 2 and rec.flushes == [50, 52]

    asyncio.run(scenario())
    assert [seq for seq, _ in core.history][-52:] == rec.batches


def test_plain_submit_flushes_pending_grouped_commands_first(core):
    rec = Recorder(core)

    async def scenario() -> None:
        accepted = core.submit(order(1), group=True)[0]
        core.submit(CancelOrder("FIRM1", accepted.order_id, 0, "c1"))  # plain: synchronous
        assert rec.batches == sorted(rec.batches) and len(rec.batches) == 2
        assert rec.commits == 1  # one commit covered both
        await asyncio.sleep(0)
        assert rec.commits == 1 and len(rec.batches) == 2  # the scheduled flush found nothing

    asyncio.run(scenario())


def test_grouped_submit_without_a_running_loop_flushes_at_once(core):
    rec = Recorder(core)
    core.submit(order(1), group=True)
    assert len(rec.batches) == 1 and rec.commits == 1


def test_malformed_grouped_command_leaves_pending_ones_intact(core):
    rec = Recorder(core)

    async def scenario() -> None:
        core.submit(order(1), group=True)
        with pytest.raises(MalformedCommand):
            core.submit(NewOrder("FIRM1", "bad", "AAPL", Side.BUY, 100, 1.5), group=True)
        core.submit(order(2), group=True)
        await asyncio.sleep(0)
        assert len(rec.batches) == 2 and rec.batches[1] == rec.batches[0] + 1

    asyncio.run(scenario())


def test_close_commits_and_publishes_what_is_pending(tmp_path, core):
    rec = Recorder(core)

    async def scenario() -> None:
        core.submit(order(1), group=True)
        core.close()  # before the loop turn ends

    asyncio.run(scenario())
    assert len(rec.batches) == 1
    again = VenueCore(core.config)  # the grouped command survived the restart
    assert again.history[-1][0] == rec.batches[0]
    again.close()


def test_early_listeners_follow_each_command_before_its_commit(core):
    rec = Recorder(core)
    early: list[tuple[int, bool]] = []  # (seq, committed when seen)
    hooks: list[int] = []
    core.subscribe(lambda seq, events: early.append((seq, seq <= rec.committed_upto)),
                   early=True, flushed=lambda: hooks.append(len(early)))

    async def scenario() -> None:
        core.submit(order(1), group=True)
        core.submit(order(2), group=True)
        assert [c for _, c in early] == [False, False]  # seen at submit, before the commit
        assert rec.batches == []
        await asyncio.sleep(0)
        assert rec.batches == [seq for seq, _ in early] and hooks == [2]

    asyncio.run(scenario())


def test_last_hooks_run_after_every_other_hook_whatever_the_subscription_order(core):
    """The feed's hook (``last=True``) runs after the gateways' even when it subscribed first,
    so order entry's acknowledgements never wait for the market data's work."""
    calls: list[str] = []
    core.subscribe(lambda seq, events: None, flushed=lambda: calls.append("feed"), last=True)
    core.subscribe(lambda seq, events: None, flushed=lambda: calls.append("ouch"), early=True)
    core.subscribe(lambda seq, events: None, flushed=lambda: calls.append("fix"))
    calls.clear()
    core.submit(order(1))
    assert calls == ["ouch", "fix", "feed"]


def test_a_sealed_core_publishes_on_without_keeping_the_session_in_memory(core):
    """Once every replaying listener has subscribed, the journal alone keeps the events."""
    replayed: list[int] = []
    core.subscribe(lambda seq, _events: replayed.append(seq), replay=True)
    assert replayed and replayed[-1] == core.published_seq == core.history[-1][0]
    core.submit(order(1), group=True)  # pending: seal commits and publishes it first
    core.seal()
    assert core.history == [] and replayed[-1] == core.published_seq == core.exchange.last_seq
    rec = Recorder(core)  # a live listener still subscribes
    core.submit(order(2))
    assert core.history == [] and rec.batches == [core.published_seq] == [replayed[-1]]
    with pytest.raises(RuntimeError, match="sealed"):
        core.subscribe(lambda seq, events: None, replay=True)
