"""``agora``: the command line entry point; sub-apps live in their own modules."""

from __future__ import annotations

import typer

from agora import __version__
from agora.cli.bench import bench_app
from agora.cli.exchange import exchange_app
from agora.cli.feed import feed_app
from agora.cli.keys import keys_app
from agora.cli.sim import sim

app = typer.Typer(
    help="agora: exchange, feeds, consensus, pipeline and backtesting in one Python package.",
    no_args_is_help=True,
    add_completion=False,
)
app.add_typer(exchange_app, name="exchange")
app.add_typer(feed_app, name="feed")
app.add_typer(bench_app, name="bench")
app.add_typer(keys_app, name="keys")
app.command(name="sim")(sim)


@app.command()
def version() -> None:
    """Print agora's version."""
    typer.echo(__version__)


if __name__ == "__main__":
    app()
