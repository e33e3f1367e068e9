"""What the venue benchmarks share: the venue configuration they run and the OUCH packets they
send (``agora bench gateway`` against a process, ``agora.bench.venue_cpu`` in process)."""

from __future__ import annotations

from pathlib import Path

from agora.core.ports import unused_ports
from agora.protocols import ouch50 as ouch
from agora.protocols import soupbintcp as soup

PRICE = 1_000_000  # $100.00 in Price(4)
SYMBOL = "BENCH"


def write_config(directory: Path, clients: int) -> tuple[Path, int, int]:
    """A venue.toml on free ports: OUCH users ``rtt``, ``o0``..; FIX comp ids ``RTTF``, ``F0``..
    Returns (path, OUCH port, FIX port)."""
    ouch_port, fix_port, snapshot_port, itch_port, retransmit_port = unused_ports(5)
    ouch_names = ["rtt", *(f"o{i}" for i in range(clients))]
    fix_names = ["RTTF", *(f"F{i}" for i in range(clients))]
    participants = "".join(
        f'\n[[participants]]\nparticipant = "{name.upper()}"\nusername = "{name}"\n'
        f'password = "pw"\n' for name in ouch_names
    ) + "".join(  # FIX-only participants: no OUCH orders of theirs to drop-copy
        f'\n[[participants]]\nparticipant = "X{name}"\nusername = "x{name.lower()}"\n'
        f'password = "pw"\nfix_comp_id = "{name}"\n' for name in fix_names
    )
    path = directory / "venue.toml"
    path.write_text(
        f'[venue]\ndirectory = "{directory / "venue"}"\nfsync = "none"\n'
        f"ouch_port = {ouch_port}\nfix_port = {fix_port}\n"
        f"snapshot_port = {snapshot_port}\nitch_port = {itch_port}\n"
        f"retransmit_port = {retransmit_port}\n"
        f'\n[[symbols]]\nsymbol = "{SYMBOL}"\nreference_price = "100.00"\n{participants}'
    )
    return path, ouch_port, fix_port


def enter_packet(user_ref_num: int, side: ouch.Side, price: int) -> bytes:
    """A SoupBinTCP packet carrying an OUCH Enter Order for 100 ``SYMBOL``, DAY, visible."""
    msg = ouch.EnterOrder(
        user_ref_num, side, 100, SYMBOL, price, ouch.TimeInForce.DAY, ouch.Display.VISIBLE,
        ouch.Capacity.AGENCY, ouch.IntermarketSweep.NOT_ELIGIBLE, ouch.CrossType.CONTINUOUS, "",
    )
    return soup.encode(soup.UnsequencedData(ouch.encode(msg)))


def cancel_packet(user_ref_num: int) -> bytes:
    """A SoupBinTCP packet carrying an OUCH Cancel Order of the whole order."""
    return soup.encode(soup.UnsequencedData(ouch.encode(ouch.CancelOrderRequest(user_ref_num, 0))))
