"""The long-running processes' collector settings, and the harness block that borrows them."""

from __future__ import annotations

import gc

from agora.core.gc_tuning import GEN0_THRESHOLD, collecting_rarely


def test_a_block_collects_rarely_then_leaves_the_settings_and_nothing_frozen():
    before = gc.get_threshold()
    with collecting_rarely():
        assert gc.get_threshold()[0] == GEN0_THRESHOLD > before[0]
        gc.freeze()  # as the measured venue does once it has started
        assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0  # (the block unfreezes all: a harness's process only)
