"""A node log read back a line at a time: whole lines only, nothing for a missing file."""

from __future__ import annotations

from agora.core.clock import SimClock
from agora.trading.node_log import NodeLog, iter_node_log, read_node_log


def test_lines_come_back_one_at_a_time_and_a_torn_last_line_is_skipped(tmp_path):
    log = NodeLog(tmp_path / "venue.log", SimClock(5))
    for k in range(3):
        log.write("report", id=f"AG{k}", kind="NEW")
    log.close()
    with open(tmp_path / "venue.log", "ab") as f:
        f.write(b'{"event":"report","at_ns":5,"id":"AG')  # a writer killed mid-line
    lines = iter_node_log(tmp_path / "venue.log")
    assert next(lines).id == "AG0"  # a generator: the file is not read whole first
    assert [e.id for e in lines] == ["AG1", "AG2"]
    assert read_node_log(tmp_path / "venue.log")[2].kind == "NEW"
    assert list(iter_node_log(tmp_path / "missing.log")) == []
