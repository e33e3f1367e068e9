"""The protocol-CPU benchmark commits every request on the normal path with the expected fan-out."""

from agora.bench.consensus_cpu import measure


def test_protocol_cpu_measure_commits_on_the_normal_path():
    for n in (3, 5):
        result = measure(n, commits=50)
        # per request and backup: Prepare, PrepareOk, Commit (submit and reply are calls)
        assert result["messages_per_commit"] == 3 * (n - 1)
        assert result["cpu_us_per_commit"] > 0
