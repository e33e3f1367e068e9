"""Byzantine scenarios in the simulator: each behaviour alone, with the checker watching the
correct replicas, and evidence that the behaviour really happened (drop counters, views)."""

from __future__ import annotations

import pytest

from agora.decision.bft import AuthMode, BftConfig
from agora.decision.sim.bft_cluster import BftCluster
from agora.decision.sim.cluster import ClusterOptions
from agora.decision.sim.network import NetworkOptions
from agora.decision.sim.swarm import SimOptions, run


def scenario(byzantine: dict[int, frozenset[str]], *, n: int = 4, seed: int = 1,
             drop: float = 0.0, auth: AuthMode = AuthMode.MACS, requests: int = 40):
    holder: dict[str, BftCluster] = {}

    def make(options: ClusterOptions, s: int) -> BftCluster:
        holder["c"] = BftCluster(options, s, BftConfig(cluster=7, replica=0, n=n, auth=auth),
                                 byzantine)
        return holder["c"]

    options = SimOptions(seed=seed, safety_ns=150_000_000, cluster=ClusterOptions(
        n=n, clients=3, requests=requests, tick_ns=2_000_000, client_retry_ns=20_000_000,
        network=NetworkOptions(drop=drop)))
    result = run(options, make_cluster=make)
    cluster = holder["c"]
    assert result.ok, result.failures
    assert result.commits == result.requests == requests
    correct = [cluster.replicas[r] for r in sorted(cluster.correct)]
    return result, cluster, correct


def total(correct, field: str) -> int:
    return sum(getattr(node.stats, field) for node in correct)


@pytest.mark.parametrize("auth", list(AuthMode))
def test_equivocating_primary_is_survived_and_replaced(auth):
    result, cluster, correct = scenario({0: frozenset({"equivocate"})}, auth=auth)
    assert cluster.filters[0].emitted > 0
    assert result.view_changes >= 1 and all(node.view >= 1 for node in correct)


def test_forged_commit_votes_are_dropped():
    _, _, correct = scenario({2: frozenset({"forge"})})
    assert total(correct, "dropped_auth") > 100


def test_forged_votes_with_signatures_are_dropped_too():
    _, _, correct = scenario({2: frozenset({"forge"})}, auth=AuthMode.SIGNATURES, requests=15)
    assert total(correct, "dropped_auth") > 30


def test_votes_for_wrong_digests_do_not_count():
    scenario({3: frozenset({"wrong_digest"})}, drop=0.02)


def test_replayed_view_changes_and_votes_are_dropped():
    # n = 7: replica 0 is silent (so views change), replica 4 replays captured traffic
    _, cluster, correct = scenario({0: frozenset({"silent"}), 4: frozenset({"replay"})}, n=7)
    replayed = cluster.filters[4].captured
    assert any(b"ViewChange" in message.body for message in replayed)
    assert total(correct, "dropped_view") + total(correct, "duplicates") > 50


def test_a_silent_primary_leads_to_a_view_change():
    result, _, correct = scenario({0: frozenset({"silent"})})
    assert result.view_changes >= 1 and all(node.view >= 1 for node in correct)


def test_a_primary_withholding_a_clients_requests_is_voted_out():
    result, cluster, correct = scenario({0: frozenset({"withhold"})})
    assert result.view_changes >= 1 and all(node.view >= 1 for node in correct)
    assert any(client == 1 for client, _ in cluster.checker.by_request)


def test_f_byzantine_of_seven_with_lossy_network():
    scenario({1: frozenset({"equivocate", "forge"}), 5: frozenset({"wrong_digest", "replay"})},
             n=7, drop=0.05, seed=3)


def test_crashed_replicas_restart_from_their_records_beside_a_byzantine_one():
    """Backups crash and restart from their records (the primary equivocates meanwhile): each
    comes back honest and the correct replicas still agree and catch up."""
    holder: dict[str, BftCluster] = {}

    def make(options: ClusterOptions, s: int) -> BftCluster:
        cluster = holder["c"] = BftCluster(options, s, BftConfig(cluster=7, replica=0, n=7),
                                           {0: frozenset({"equivocate"})})
        for at, victim in ((30_000_000, 3), (60_000_000, 5), (90_000_000, 3)):
            cluster.after(at, lambda v=victim: cluster.crash(v))
            cluster.after(at + 15_000_000, lambda v=victim: cluster.restart(v))
        return cluster

    options = SimOptions(seed=5, safety_ns=200_000_000, cluster=ClusterOptions(
        n=7, clients=3, requests=60, tick_ns=2_000_000, client_retry_ns=20_000_000))
    result = run(options, make_cluster=make)
    assert result.ok, result.failures
    assert result.commits == result.requests == 60 and result.crashes == 3
    cluster = holder["c"]
    assert cluster.replicas[3].stats.recoveries == 1 and cluster.incarnations[3] == 3
