"""``agora keys``: key files for a Byzantine-mode decision cluster (``decision.bft.keys``).

``agora keys bft DIR --n 4 --clients 1-64`` makes fresh keys: ``DIR/cluster.json`` (the
operator's, every secret), ``DIR/replica-<i>.json`` (give each replica process only its own:
``replica_main --key-file``) and ``DIR/clients-1-64.json`` for client ids 1..64.
``agora keys bft-clients DIR --clients 65-80`` issues another client file later.
"""

from __future__ import annotations

from pathlib import Path

import typer

from agora.decision.bft.keys import KeyFileError, issue_clients, make_cluster

keys_app = typer.Typer(help="Key files for the Byzantine-tolerant decision cluster.",
                       no_args_is_help=True)


def _range(text: str) -> tuple[int, int]:
    try:
        first, _, last = text.partition("-")
        lo, hi = int(first), int(last or first)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not a client id range like 1-64") from None
    if not 1 <= lo <= hi:
        raise typer.BadParameter(f"{text!r}: client ids start at 1 and the range must ascend")
    return lo, hi


@keys_app.command("bft")
def bft(directory: Path = typer.Argument(..., help="Where to write the key files."),
        n: int = typer.Option(4, help="Replicas: 3f + 1."),
        clients: list[str] = typer.Option([], help="Client id range(s) to issue, e.g. 1-64.")
        ) -> None:
    """Fresh keys for an n-replica cluster: one file per replica, per client range, and the
    operator's cluster.json."""
    ranges = [_range(text) for text in clients]
    try:
        written = make_cluster(directory, n, ranges)
    except (KeyFileError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    for path in written:
        typer.echo(str(path))


@keys_app.command("bft-clients")
def bft_clients(directory: Path = typer.Argument(..., help="The directory of cluster.json."),
                clients: str = typer.Option(..., help="Client id range, e.g. 65-80.")) -> None:
    """Another client key file, from the operator's cluster.json."""
    first, last = _range(clients)
    try:
        typer.echo(str(issue_clients(directory, first, last)))
    except KeyFileError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
