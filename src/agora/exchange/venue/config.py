"""The venue's configuration file (TOML), validated by msgspec with clear errors.

Prices are written as decimal dollars ("190.00") and become Price(4) integers here; nothing is
ever a float. Example::

    [venue]
    directory = "var/venue"
    fsync = "batch"

    [[symbols]]
    symbol = "AAPL"
    reference_price = "190.00"

    [[participants]]
    participant = "FIRM1"
    username = "firm1"
    password = "secret"
    max_order_qty = 100000

Several sections may name the same ``participant`` with distinct ``username`` / ``fix_comp_id``:
one participant, several sessions (the replicas of a decision cluster each log on with their
own FIX session; each username is its own OUCH account, with its own orders and sequence
numbers). Usernames are unique regardless of case (SoupBinTCP compares them so) and hold no
``:``. The exchange keeps one set of limits per participant, so those sections must agree on
every limit; ``load_config`` names the first field that differs.

``order_quorum = k`` (default 1: every request is submitted at once) makes the venue submit a
participant's FIX request only when k of its FIX sessions sent the same one
(:mod:`agora.exchange.venue.quorum`; such a participant's OUCH logins are refused). The
participant's sections must agree on k, and k may not exceed its FIX sessions (sections with a
``fix_comp_id``): such a quorum could never form. ``[venue]`` ``quorum_timeout_ms`` and
``quorum_max_held`` bound how long and how many requests wait for their quorum.
"""

from __future__ import annotations

from pathlib import Path

import msgspec

from agora.core.enums import StpMode
from agora.core.events import ParticipantSpec, SymbolSpec
from agora.core.price import parse_price
from agora.exchange.journal import FsyncPolicy


def percent_to_bps(percent: str) -> int:
    """"10" or "2.5" percent -> basis points, exactly (Price(4) parsing is exact decimal)."""
    return parse_price(percent) // 100


class VenueSection(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    directory: str = "var/venue"
    fsync: FsyncPolicy = FsyncPolicy.BATCH
    host: str = "127.0.0.1"
    ouch_port: int = 15_000
    fix_port: int = 15_001
    itch_address: str = "127.0.0.1"  # unicast by default, or a multicast group (239.x.y.z)
    itch_port: int = 15_002
    itch_multicast_ttl: int = 1  # hops a multicast feed may cross (0: this host only)
    itch_interface: str = ""  # the interface address a multicast feed leaves by ("": default)
    retransmit_port: int = 15_003
    snapshot_port: int = 15_004
    session: str = "AGORA00001"  # MoldUDP64 / SoupBinTCP session name, 10 characters
    heartbeat_ms: int = 1_000
    quorum_timeout_ms: int = 2_000  # a held copy without a quorum is refused after this
    quorum_max_held: int = 1_000  # held copies + parked requests per FIX session (quorum only)


class SymbolSection(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    symbol: str
    reference_price: str
    tick: str = "0.01"
    lot: int = 1
    band_pct: str = "10"

    def spec(self) -> SymbolSpec:
        return SymbolSpec(
            self.symbol,
            parse_price(self.reference_price),
            parse_price(self.tick),
            self.lot,
            percent_to_bps(self.band_pct),
        )


class ParticipantSection(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    participant: str
    username: str
    password: str
    fix_comp_id: str = ""
    max_order_qty: int = 1_000_000
    max_notional: str = "1000000000"  # dollars
    collar_pct: str = "100"
    max_open_orders: int = 100_000
    stp: StpMode = StpMode.NONE
    order_quorum: int = 1  # FIX sessions that must send the same request (see venue.quorum)

    def spec(self) -> ParticipantSpec:
        return ParticipantSpec(
            self.participant,
            self.max_order_qty,
            parse_price(self.max_notional) * 10_000,  # price units x shares
            percent_to_bps(self.collar_pct),
            self.max_open_orders,
            self.stp,
        )


class VenueConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    venue: VenueSection = msgspec.field(default_factory=VenueSection)
    symbols: list[SymbolSection] = msgspec.field(default_factory=list)
    participants: list[ParticipantSection] = msgspec.field(default_factory=list)

    def participant_by_username(self, username: str) -> ParticipantSection | None:
        return next((p for p in self.participants if p.username == username), None)


class ConfigError(ValueError):
    """The configuration file is unreadable or invalid; the message says where."""


ITCH_PRICE_MAX = 2_000_000_000
"""ITCH 5.0 Price(4) maximum, $200,000.0000: every tradable price must be publishable."""


def _check_fits_itch(spec: SymbolSpec) -> None:
    high = spec.reference_price + spec.reference_price * spec.band_bps // 10_000
    if high > ITCH_PRICE_MAX:
        raise ValueError(
            f"{spec.symbol}: band reaches {high} price units, above ITCH's maximum "
            f"{ITCH_PRICE_MAX} ($200,000.0000)"
        )


def load_config(path: str | Path) -> VenueConfig:
    try:
        config = msgspec.toml.decode(Path(path).read_bytes(), type=VenueConfig)
    except (OSError, msgspec.DecodeError) as e:
        raise ConfigError(f"{path}: {e}") from None
    try:
        for section in config.symbols:
            _check_fits_itch(section.spec())
        for section in config.participants:
            section.spec()
    except ValueError as e:
        raise ConfigError(f"{path}: {e}") from None
    problem = _sessions_problem(config.participants) or _quorum_problem(config)
    if problem is not None:
        raise ConfigError(f"{path}: {problem}")
    return config


_LIMITS = {"max_order_qty": "max_order_qty", "max_notional": "max_notional",
           "collar_bps": "collar_pct", "max_open_orders": "max_open_orders", "stp": "stp"}
"""ParticipantSpec field -> the config key that sets it (the one an error names)."""


def _sessions_problem(sections: list[ParticipantSection]) -> str | None:
    """Usernames and FIX comp ids unique; sections of one participant with equal limits."""
    bad = next((p.username for p in sections if not p.username or ":" in p.username), None)
    if bad is not None:
        return f"username {bad!r} must be non-empty and hold no ':'"
    names = [p.username.upper() for p in sections]
    if len(set(names)) != len(names):
        return "participant usernames must be unique (SoupBinTCP compares them ignoring case)"
    comp_ids = [p.fix_comp_id for p in sections if p.fix_comp_id]
    if len(set(comp_ids)) != len(comp_ids):
        return "fix_comp_id values must be unique (one FIX session each)"
    first: dict[str, ParticipantSpec] = {}
    for section in sections:
        spec = section.spec()
        known = first.setdefault(spec.participant, spec)
        for field, key in _LIMITS.items():
            if getattr(spec, field) != getattr(known, field):
                return (f"participant {spec.participant}: {key} differs between its sections "
                        f"({section.username!r}); every session of a participant shares its "
                        f"limits")
    return None


def _quorum_problem(config: VenueConfig) -> str | None:
    """order_quorum at least 1, equal in every section of a participant, within its FIX
    sessions; the quorum's timeout and bound positive when some participant uses it."""
    quorum: dict[str, int] = {}
    sessions: dict[str, int] = {}
    for section in config.participants:
        name, k = section.participant, section.order_quorum
        if k < 1:
            return f"participant {name}: order_quorum must be at least 1 (got {k})"
        known = quorum.setdefault(name, k)
        if k != known:
            return (f"participant {name}: order_quorum differs between its sections "
                    f"({section.username!r}: {k}, before: {known}); every session of a "
                    f"participant shares its quorum")
        sessions[name] = sessions.get(name, 0) + bool(section.fix_comp_id)
    for name, k in quorum.items():
        if k > 1 and k > sessions[name]:  # k = 1 needs no FIX session (OUCH only)
            return (f"participant {name}: order_quorum {k} exceeds its {sessions[name]} FIX "
                    f"sessions (sections with a fix_comp_id): the quorum could never form")
    venue = config.venue
    if any(k > 1 for k in quorum.values()):
        if venue.quorum_timeout_ms < 1:
            return f"quorum_timeout_ms must be at least 1 (got {venue.quorum_timeout_ms})"
        if venue.quorum_max_held < 1:
            return f"quorum_max_held must be at least 1 (got {venue.quorum_max_held})"
    return None
