"""The bounded dedup set: a repeat within the horizon is caught, memory stays at the limit."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agora.core.recent import Recent


def test_repeats_within_the_horizon_are_caught_and_the_oldest_go_first():
    recent = Recent(3)
    assert [recent.add(x) for x in "abca"] == [True, True, True, False]
    assert recent.add("d") and "a" not in recent and "b" in recent  # a was the oldest
    assert len(recent) == 3
    assert recent.add("a")  # forgotten: taken for new


@given(st.lists(st.integers(0, 20), max_size=200), st.integers(1, 8))
def test_matches_a_model_that_keeps_the_latest_distinct_items(items, limit):
    recent, model = Recent(limit), []
    for item in items:
        assert recent.add(item) == (item not in model)
        if item not in model:
            model.append(item)
            model = model[-limit:]
        assert len(recent) == len(model) <= limit
        assert all(x in recent for x in model)


def test_a_limit_below_one_is_refused():
    with pytest.raises(ValueError, match="limit must be >= 1"):
        Recent(0)
