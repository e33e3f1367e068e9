"""Decision nodes in the Byzantine-tolerant mode, end to end: a venue process and 4 decision node
processes (``--mode bft``, f = 1, the replica on the asyncio driver) hosting agents that propose
through the async BFT client, one node faulty.

The scenario and its checks are ``test_agent_nodes.py``'s (seeded book, the makers' quotes, a fill
that every live node's agents see, the requote; every decided order accepted by the venue exactly
once, the other nodes' copies refused as duplicate ClOrdIDs), with one of the four nodes faulty:
its replica lying from the start (equivocating primary of view 0, forging votes), or SIGKILLed
(the primary of view 0, and the node of the risk agent) once the first quotes are accepted; and a
node killed and restarted on its directory; reporters end a filled order at f + 1 reports. Then
bad options: a Byzantine-mode node without its secret is refused with the reason.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from agora.decision.bft.auth import Keyring
from agora.decision.bft.keys import load_keyring, make_cluster
from agora.decision.transport.bft_client import BftClusterClient
from agora.decision.transport.client import ClusterClient
from agora.decision.transport.cluster import ProcessCluster
from tests.e2e.test_agent_nodes import CLOCK, check, check_reporters, run

pytestmark = pytest.mark.e2e
SECRET = b"agora-e2e-bft-decision-nodes"
N = 4
AGENT_IDS = 1_000_000  # decision_node's default --client-id-base step


def bft_run(tmp_path: Path, *, byzantine: dict[int, str] | None = None,
            kill: int | None = None, restart: bool = False, key_files: bool = False,
            before_stop: Callable[[], Awaitable[None]] | None = None,
            reporters: bool = False) -> dict:
    """``key_files``: every node holds only its own replica key file and a client key file for
    its agents' ids (``agora keys bft``), the test's client one of its own; else the secret.
    ``before_stop``, ``reporters``: as :func:`~tests.e2e.test_agent_nodes.run`'s (the rules'
    ``done_quorum`` f + 1 = 2, as a Byzantine-mode node demands)."""
    secret = tmp_path / "secret"
    secret.write_bytes(SECRET + b"\n")
    faults = byzantine or {}
    keys = tmp_path / "keys"
    if key_files:  # node i's agents take ids 1,000,000 * (i + 1) + 16 per start
        make_cluster(keys, N, [(1, 4)] + [(AGENT_IDS * (i + 1), AGENT_IDS * (i + 1) + 63)
                                          for i in range(N)])

    def options(i: int) -> list[str]:
        fault = ["--byzantine", faults[i]] if i in faults else []
        if not key_files:
            return ["--mode", "bft", "--secret-file", str(secret), *fault]
        first = AGENT_IDS * (i + 1)
        return ["--mode", "bft", "--key-file", str(keys / f"replica-{i}.json"),
                "--client-key-file", str(keys / f"clients-{first}-{first + 63}.json"), *fault]

    async def connect(cluster: ProcessCluster) -> ClusterClient:
        keyring = (load_keyring(keys / "clients-1-4.json") if key_files
                   else Keyring(SECRET, N))
        return await BftClusterClient.connect(cluster.cluster, cluster.peers, CLOCK,
                                              keyring=keyring, first_id=1, pool=4)

    return run(tmp_path, n=N, options=options, kill=kill, connect=connect, restart=restart,
               before_stop=before_stop, reporters=reporters, done_quorum=2)


def test_a_lying_primary_node_cannot_stop_the_bft_decision_nodes(tmp_path):
    """Every node holds only its own key files here: the liar has only its own keys."""
    result = bft_run(tmp_path, byzantine={0: "equivocate,forge"}, key_files=True)
    stats = check(result)
    assert all(stats[f"mm{i}"]["committed"] >= 2 for i in range(N)), stats
    views = [result["replicas"][i]["view"] for i in (1, 2, 3)]
    assert min(views) >= 1, f"the lying primary of view 0 was voted out: {views}"


def test_bft_decision_nodes_carry_on_when_the_primary_node_is_killed(tmp_path):
    """With a reporter on every node, the killed one's included: the filled bid ends in the log
    at the second of the three live reporters' reports (done_quorum f + 1)."""
    result = bft_run(tmp_path, kill=0, reporters=True)
    stats = check(result)
    check_reporters(result, stats, 2)
    assert all(stats[f"mm{i}"]["committed"] >= 2 for i in (1, 2, 3)), stats
    last = result["last_index"]
    assert last[0] < min(last[1:]), f"the others decided on without the killed node: {last}"
    views = [result["replicas"][i]["view"] for i in (1, 2, 3)]
    assert min(views) >= 1, f"a new primary replaced the killed one: {views}"


def test_a_restarted_bft_node_resumes_from_its_records_and_rebuilds_its_agents(tmp_path):
    """Node 2 is SIGKILLed with quotes live and restarted on its directory: its replica resumes
    from its records, its agents from the committed log (``test_agent_nodes``' restart)."""
    result = bft_run(tmp_path, restart=True)
    stats = check(result)
    assert stats["mm2"].get("duplicate", 0) == 0 and stats["mm2"]["proposed"] >= 2
    assert result["replicas"][2]["committed"] >= 1, "the restarted replica committed again"


@pytest.mark.parametrize(("extra", "reason"), [
    ([], "--mode bft needs --key-file"),
    (["--secret-file", "{secret}", "--fsync", "batch"], "unsafe in --mode bft"),
    (["--secret-file", "{secret}", "--byzantine", "sneaky"], "unknown behaviours"),
])
def test_bad_bft_options_of_a_decision_node_are_refused_with_a_reason(tmp_path, extra, reason):
    (tmp_path / "secret").write_bytes(SECRET)
    (tmp_path / "rules.json").write_text("{}")
    args = [a.format(secret=tmp_path / "secret") for a in extra]
    result = subprocess.run(
        [sys.executable, "-m", "agora.trading.decision_node", "--id", "0",
         "--peers", "127.0.0.1:1,127.0.0.1:2,127.0.0.1:3,127.0.0.1:4", "--dir",
         str(tmp_path / "n0"), "--rules", str(tmp_path / "rules.json"), "--participant", "F",
         "--venue", "127.0.0.1:1", "--comp-id", "N0", "--mode", "bft", *args],
        capture_output=True, text=True, timeout=30)
    assert result.returncode == 2 and reason in result.stderr, result.stderr
    assert not (tmp_path / "n0").exists(), "refused before anything was opened"
