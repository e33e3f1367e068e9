"""Key files of a Byzantine-mode cluster: each party holds only its own keys.

With one shared secret (``Keyring(secret, n)``) a single compromised process could act as every
replica, which is exactly the fault the mode exists to survive. ``agora keys bft`` makes, from
fresh randomness (``os.urandom``):

* ``cluster.json``: the operator's file, every secret (Ed25519 seeds, pair MAC keys, each
  replica's client master key). It only issues further files; no process needs it.
* ``replica-<i>.json``: replica ``i``'s Ed25519 seed, every replica's public key, the MAC keys
  of the pairs it belongs to, its client master key.
* ``clients-<a>-<b>.json``: the MAC keys of client ids ``a..b`` with every replica (a client's
  key with replica ``r`` is ``auth.client_key(master_r, id)``, so replicas need no list of
  clients and issuing clients later needs only ``cluster.json``).

Files are JSON (bytes as base64), written with mode 0600 and refused on load if another user can
read them. :func:`load_keyring` checks that a file is of the kind and party its user expects.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import msgspec

from agora.decision.bft.auth import Keyring, client_key
from agora.decision.signing import AgentKey

SECRET_LEN = 32


class ClusterKeys(msgspec.Struct, frozen=True, tag="cluster", tag_field="kind",
                  forbid_unknown_fields=True):
    n: int
    seeds: list[bytes]  # Ed25519 seeds, per replica
    pairs: dict[str, bytes]  # "a-b" (a < b) -> MAC key of the replica pair
    client_masters: list[bytes]  # per replica


class ReplicaKeys(msgspec.Struct, frozen=True, tag="replica", tag_field="kind",
                  forbid_unknown_fields=True):
    n: int
    replica: int
    seed: bytes
    public: list[bytes]
    pairs: dict[str, bytes]  # "a-b" -> MAC key, only pairs with this replica
    client_master: bytes


class ClientKeys(msgspec.Struct, frozen=True, tag="client", tag_field="kind",
                 forbid_unknown_fields=True):
    n: int
    first: int
    last: int
    macs: dict[str, list[bytes]]  # client id -> MAC key with each replica


KeyFile = ClusterKeys | ReplicaKeys | ClientKeys


class KeyFileError(ValueError):
    """A key file that is missing, unreadable, exposed, malformed or for another party."""


def new_cluster(n: int) -> ClusterKeys:
    if n < 4 or (n - 1) % 3:
        raise ValueError(f"n must be 3f + 1 with f >= 1, got {n}")
    return ClusterKeys(
        n=n, seeds=[os.urandom(SECRET_LEN) for _ in range(n)],
        pairs={f"{a}-{b}": os.urandom(SECRET_LEN) for a in range(n) for b in range(a + 1, n)},
        client_masters=[os.urandom(SECRET_LEN) for _ in range(n)])


def public_keys(cluster: ClusterKeys) -> list[bytes]:
    return [AgentKey.generate(seed).public_bytes for seed in cluster.seeds]


def replica_keys(cluster: ClusterKeys, replica: int,
                 public: list[bytes] | None = None) -> ReplicaKeys:
    """Replica ``replica``'s file (``public``: the cluster's public keys, if already known)."""
    if not 0 <= replica < cluster.n:
        raise ValueError(f"replica {replica} is not in 0..{cluster.n - 1}")
    mine = {k: v for k, v in cluster.pairs.items() if str(replica) in k.split("-")}
    return ReplicaKeys(n=cluster.n, replica=replica, seed=cluster.seeds[replica],
                       public=public or public_keys(cluster), pairs=mine,
                       client_master=cluster.client_masters[replica])


def client_keys(cluster: ClusterKeys, first: int, last: int) -> ClientKeys:
    if not 1 <= first <= last:
        raise ValueError(f"client ids {first}-{last}: ids start at 1, first <= last")
    return ClientKeys(n=cluster.n, first=first, last=last, macs={
        str(c): [client_key(master, c) for master in cluster.client_masters]
        for c in range(first, last + 1)})


def write(path: Path, keys: KeyFile) -> None:
    """Write ``keys`` readable by its owner only (created 0600, then renamed into place)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)  # a leftover could carry wider permissions
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(msgspec.json.format(msgspec.json.encode(keys)))
    os.replace(tmp, path)


def read(path: Path) -> KeyFile:
    try:
        mode = path.stat().st_mode
        data = path.read_bytes()
    except OSError as exc:
        raise KeyFileError(f"key file {path}: {exc.strerror or exc}") from exc
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyFileError(f"key file {path} is open to other users (mode "
                           f"{stat.S_IMODE(mode):o}); chmod 600 it")
    try:
        return msgspec.json.decode(data, type=KeyFile)
    except msgspec.MsgspecError as exc:
        raise KeyFileError(f"key file {path} is not a key file: {exc}") from exc


def _pairs(pairs: dict[str, bytes]) -> dict[tuple[int, int], bytes]:
    out = {}
    for name, key in pairs.items():
        a, b = (int(x) for x in name.split("-"))
        out[(a, b)] = key
    return out


def load_keyring(path: Path, *, replica: int | None = None,
                 clients: range | None = None) -> Keyring:
    """The keyring of one party: a replica file for ``replica``, or a client file holding
    every id in ``clients``. Anything else is refused with a reason."""
    keys = read(path)
    if replica is not None:
        if not isinstance(keys, ReplicaKeys) or keys.replica != replica:
            raise KeyFileError(f"key file {path} is not replica {replica}'s "
                               f"({_describe(keys)})")
        return Keyring.holding(keys.n, keys.public, owner=f"replica {replica}'s key file",
                               signing={replica: AgentKey.generate(keys.seed)},
                               pairs=_pairs(keys.pairs),
                               client_masters={replica: keys.client_master})
    if not isinstance(keys, ClientKeys):
        raise KeyFileError(f"key file {path} is not a client key file ({_describe(keys)})")
    wanted = clients if clients is not None else range(keys.first, keys.last + 1)
    missing = [c for c in wanted if str(c) not in keys.macs]
    if missing:
        raise KeyFileError(f"key file {path} holds clients {keys.first}-{keys.last}, not "
                           f"{missing[0]}" + (f" and {len(missing) - 1} more" if missing[1:]
                                              else ""))
    pairs = {(-c, r): key for c in wanted for r, key in enumerate(keys.macs[str(c)])}
    return Keyring.holding(keys.n, [b""] * keys.n, owner=f"clients {keys.first}-{keys.last}'s "
                           "key file", pairs=pairs)


def _describe(keys: KeyFile) -> str:
    if isinstance(keys, ReplicaKeys):
        return f"it is replica {keys.replica}'s"
    if isinstance(keys, ClientKeys):
        return f"it holds clients {keys.first}-{keys.last}"
    return "it is the operator's cluster file, which no process should hold"


def make_cluster(directory: Path, n: int, client_ranges: list[tuple[int, int]]) -> list[Path]:
    """Fresh keys for an n-replica cluster and the given client id ranges, as files in
    ``directory`` (refused if it already holds a cluster file)."""
    directory.mkdir(parents=True, exist_ok=True)
    if (directory / "cluster.json").exists():
        raise KeyFileError(f"{directory} already holds cluster.json: keys are made once; "
                           "issue client files with `agora keys bft-clients`")
    cluster = new_cluster(n)
    written = [directory / "cluster.json"]
    write(written[0], cluster)
    public = public_keys(cluster)
    for r in range(n):
        written.append(directory / f"replica-{r}.json")
        write(written[-1], replica_keys(cluster, r, public))
    for first, last in client_ranges:
        written.append(_write_clients(directory, cluster, first, last))
    return written


def issue_clients(directory: Path, first: int, last: int) -> Path:
    """A client key file for ids ``first..last`` from ``directory/cluster.json``."""
    cluster = read(directory / "cluster.json")
    if not isinstance(cluster, ClusterKeys):
        raise KeyFileError(f"{directory / 'cluster.json'} is not a cluster key file")
    return _write_clients(directory, cluster, first, last)


def _write_clients(directory: Path, cluster: ClusterKeys, first: int, last: int) -> Path:
    path = directory / f"clients-{first}-{last}.json"
    write(path, client_keys(cluster, first, last))
    return path
