"""Key files of the Byzantine mode (``bft/keys.py``): each party holds only its own keys, a
cluster built from them commits, and what a party does not hold cannot be used or loaded."""

from __future__ import annotations

import os

import pytest
from typer.testing import CliRunner

from agora.cli.main import app
from agora.decision.bft import AuthMode, BftClient, BftConfig, BftReplica
from agora.decision.bft.auth import MissingKey
from agora.decision.bft.keys import KeyFileError, load_keyring, make_cluster
from agora.decision.bft.messages import ClientRequest, Prepare
from tests.decision.test_bft_replica import CLUSTER, Net


@pytest.fixture(scope="module")
def key_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("keys")
    make_cluster(directory, 4, [(1, 8)])
    return directory


@pytest.mark.parametrize("auth", list(AuthMode))
def test_a_cluster_of_parties_holding_only_their_own_key_files_commits(key_dir, auth):
    net = Net(auth=auth)
    for r in range(4):
        net.replicas[r] = BftReplica(BftConfig(cluster=CLUSTER, replica=r, n=4, auth=auth),
                                     load_keyring(key_dir / f"replica-{r}.json", replica=r))
        net.replicas[r].start(0)
    net.client = BftClient(CLUSTER, 3, load_keyring(key_dir / "clients-1-8.json"))
    for k in range(3):
        net.submit(b"order-%d" % k)
        net.run()
    assert [a.index for a in net.accepted] == [1, 2, 3]
    assert all(len(net.committed[r]) == 3 for r in range(4))


def test_a_replica_cannot_act_as_another_and_a_client_only_as_its_own_ids(key_dir):
    three = load_keyring(key_dir / "replica-3.json", replica=3)
    forged = Prepare(CLUSTER, 1, 0, 1, b"d" * 32)
    with pytest.raises(MissingKey, match="holds no MAC key for replica 0 and replica 1"):
        three.seal(1, forged, AuthMode.MACS)
    with pytest.raises(MissingKey, match="no signing key of replica 1"):
        three.seal(1, forged, AuthMode.SIGNATURES)
    with pytest.raises(MissingKey):
        three.pair_key(0, 2)
    clients = load_keyring(key_dir / "clients-1-8.json")
    with pytest.raises(MissingKey, match="client 9"):
        clients.client_macs(ClientRequest(CLUSTER, 9, 1, 0, b"x"))
    # what each does hold agrees with its peers: replica 3 checks client 5's MAC
    request = ClientRequest(CLUSTER, 5, 1, 0, b"x")
    signed = ClientRequest(CLUSTER, 5, 1, 0, b"x", clients.client_macs(request))
    assert three.client_ok(3, signed)


def test_key_files_for_another_party_exposed_or_damaged_are_refused(key_dir, tmp_path):
    with pytest.raises(KeyFileError, match=r"not replica 2's \(it is replica 1's"):
        load_keyring(key_dir / "replica-1.json", replica=2)
    with pytest.raises(KeyFileError, match="operator's cluster file"):
        load_keyring(key_dir / "cluster.json", replica=0)
    with pytest.raises(KeyFileError, match="not a client key file"):
        load_keyring(key_dir / "replica-0.json")
    with pytest.raises(KeyFileError, match="holds clients 1-8, not 9"):
        load_keyring(key_dir / "clients-1-8.json", clients=range(1, 10))
    exposed = tmp_path / "exposed.json"
    exposed.write_bytes((key_dir / "replica-0.json").read_bytes())
    os.chmod(exposed, 0o644)
    with pytest.raises(KeyFileError, match="open to other users"):
        load_keyring(exposed, replica=0)
    damaged = tmp_path / "damaged.json"
    damaged.write_bytes(b'{"kind": "replica", "n": 4}')
    os.chmod(damaged, 0o600)
    with pytest.raises(KeyFileError, match="not a key file"):
        load_keyring(damaged, replica=0)
    with pytest.raises(KeyFileError, match="No such file"):
        load_keyring(tmp_path / "missing.json", replica=0)


def test_cli_makes_owner_only_files_once_and_issues_clients_later(tmp_path):
    runner = CliRunner()
    made = runner.invoke(app, ["keys", "bft", str(tmp_path / "k"), "--n", "7",
                               "--clients", "1-4"])
    assert made.exit_code == 0, made.output
    names = sorted(p.name for p in (tmp_path / "k").iterdir())
    assert names == ["clients-1-4.json", "cluster.json"] + [f"replica-{r}.json"
                                                             for r in range(7)]
    assert all((p.stat().st_mode & 0o777) == 0o600 for p in (tmp_path / "k").iterdir())
    again = runner.invoke(app, ["keys", "bft", str(tmp_path / "k")])
    assert again.exit_code == 2 and "already holds cluster.json" in again.output
    more = runner.invoke(app, ["keys", "bft-clients", str(tmp_path / "k"), "--clients", "5-6"])
    assert more.exit_code == 0 and (tmp_path / "k" / "clients-5-6.json").exists()
    ring = load_keyring(tmp_path / "k" / "clients-5-6.json")
    replica = load_keyring(tmp_path / "k" / "replica-6.json", replica=6)
    request = ClientRequest(CLUSTER, 6, 1, 0, b"x")
    assert replica.client_ok(6, ClientRequest(CLUSTER, 6, 1, 0, b"x", ring.client_macs(request)))
    bad = runner.invoke(app, ["keys", "bft", str(tmp_path / "j"), "--n", "5"])
    assert bad.exit_code == 2 and "3f + 1" in bad.output


@pytest.mark.parametrize(("argv", "reason"), [
    (["keys", "bft", "{d}", "--clients", "3-1"], "range must ascend"),
    (["keys", "bft", "{d}", "--clients", "0-4"], "client ids start at 1"),
    (["keys", "bft", "{d}", "--clients", "a-b"], "not a client id range"),
    (["keys", "bft-clients", "{d}", "--clients", "1-2"], "cluster.json"),
])
def test_cli_refuses_bad_ranges_and_a_directory_without_a_cluster(tmp_path, argv, reason):
    result = CliRunner().invoke(app, [a.format(d=tmp_path / "k") for a in argv])
    assert result.exit_code == 2 and reason in result.output, result.output
    assert not (tmp_path / "k").exists() or not any((tmp_path / "k").iterdir())
