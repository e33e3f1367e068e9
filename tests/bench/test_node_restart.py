"""The node-restart benchmark runs end to end on a small record (figures: BENCHMARKS.md)."""

from __future__ import annotations

import pytest

from agora.bench import node_restart


def test_the_benchmark_restarts_from_the_record_and_from_the_saved_state(capsys):
    assert node_restart.main(["--entries", "400", "--runs", "1", "--memory-entries", "400"]) == 0
    out = capsys.readouterr().out
    result = node_restart.json.loads(out.rsplit("RESULT ", 1)[1])
    # measure() checked that the restart from the state ended where the replay did
    assert result["entries"] == 400 and result["state_pending_commands"] == 200
    assert result["restart_replay_s"] > 0 and result["restart_from_state_s"] > 0
    assert result["state_bytes"] > 0 and result["memory_bytes_per_answered_pair"] >= 0
    assert {"memory_bytes_per_filled_order_reported",
            "memory_bytes_per_filled_order_unreported"} <= result.keys()



@pytest.mark.parametrize("argv", [["--entries", "0"], ["--memory-entries", "4"], ["--runs", "0"]])
def test_too_few_entries_or_runs_are_refused(capsys, argv):
    with pytest.raises(SystemExit) as exit_:
        node_restart.main(argv)
    assert exit_.value.code == 2 and "--entries must be >= 4" in capsys.readouterr().err
