"""Which ClOrdIDs name a log index of a decision node's log: the key of ``EarlyReports``,
which holds a report until its order's decision is applied (the holding itself is tested with
the agent host)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from agora.decision.rules import base36, decision_id
from agora.trading.reports import EarlyReports


def test_only_this_logs_clordids_name_a_log_index():
    early = EarlyReports("AG")
    assert [early.index_of(c) for c in ("AG0", "AG1Z", "AGZZZ")] == [0, 71, 46_655]
    for other in ("AG", "ag1Z", "AG1z", "AG01", "AG-1", "AG 1", "AG1_0", "XY12", "H5", "AG1.0"):
        assert early.index_of(other) is None, other
    assert EarlyReports("").index_of("12") is None  # no session: nothing waits
    # past int()'s 4,300-digit limit, and a non-ASCII digit int() would read as 3
    assert early.index_of("AG" + "1" * 5_000) is None and early.index_of("AG\u0663") is None


SESSIONS = st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=1, max_size=6)


@given(SESSIONS, st.integers(0, 36**8 - 1), st.text(max_size=16))
def test_every_decision_id_names_its_index_and_nothing_else_raises(session, index, other):
    early = EarlyReports(session)
    assert early.index_of(decision_id(session, index)) == index
    for text in (other, session + other):  # never raises; only the log's own form has one
        found = early.index_of(text)
        assert found is None or session + base36(found) == text
