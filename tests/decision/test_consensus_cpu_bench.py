"""The protocol-CPU benchmark commits every request on the normal path with the expected fan-out."""

import json

from agora.bench.consensus_cpu import main, measure, measure_nodes


def test_protocol_cpu_measure_commits_on_the_normal_path():
    for n in (3, 5):
        result = measure(n, commits=50)
        # per request and backup: Prepare, PrepareOk, Commit (submit and reply are calls)
        assert result["messages_per_commit"] == 3 * (n - 1)
        assert result["cpu_us_per_commit"] > 0


def test_node_path_measure_commits_every_request_on_every_replica():
    result = measure_nodes(60)  # raises unless every request settled and committed everywhere
    assert result["requests"] == 60 and result["cpu_us_per_request"] > 0


def test_node_path_main_prints_a_result_line(capsys):
    assert main(["--nodes", "20"]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("RESULT ") and json.loads(last[7:])["requests"] == 20
