"""Venue configuration (TOML) and VenueCore: commit before publish, history across restarts."""

from __future__ import annotations

import pytest

from agora.core.enums import Side, TradingState
from agora.core.errors import MalformedCommand
from agora.core.events import BookAdd, NewOrder, OrderAccepted, TradingStatus
from agora.exchange.venue.config import ConfigError, load_config
from agora.exchange.venue.core import VenueCore

CONFIG = """
[venue]
directory = "{directory}"
fsync = "none"

[[symbols]]
symbol = "AAPL"
reference_price = "190.00"
band_pct = "7.5"

[[participants]]
participant = "FIRM1"
username = "firm1"
password = "pw1"
collar_pct = "5"
max_notional = "250000.50"
"""


def write(tmp_path, text: str):
    path = tmp_path / "venue.toml"
    path.write_text(text.format(directory=tmp_path / "journal"))
    return path


def test_config_converts_money_exactly(tmp_path):
    config = load_config(write(tmp_path, CONFIG))
    symbol = config.symbols[0].spec()
    assert (symbol.reference_price, symbol.tick_size, symbol.band_bps) == (1_900_000, 100, 750)
    firm = config.participants[0].spec()
    assert firm.collar_bps == 500
    assert firm.max_notional == 2_500_005_000 * 10_000
    assert config.participant_by_username("firm1").participant == "FIRM1"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (('reference_price = "190.00"', 'reference_price = "190.000001"'), "decimals"),
        (('fsync = "none"', 'fsync = "sometimes"'), "fsync"),
        (('[venue]', '[venue]\nportt = 1'), "portt"),
        (('password = "pw1"', 'password = "pw1"\n[[participants]]\nparticipant = "X"\n'
          'username = "firm1"\npassword = "p"'), "unique"),
        (('symbol = "AAPL"', 'symbol = 7'), "symbol"),
        (('reference_price = "190.00"', 'reference_price = "199000.00"'), "ITCH"),
    ],
)
def test_config_errors_say_what_is_wrong(tmp_path, change, message):
    with pytest.raises(ConfigError, match=message):
        load_config(write(tmp_path, CONFIG.replace(*change)))


SECOND_SESSION = """
[[participants]]
participant = "FIRM1"
username = "firm1b"
password = "pw2"
fix_comp_id = "FIRM1B"
collar_pct = "5.0"
max_notional = "250000.50"
"""


def test_one_participant_may_have_several_sessions_with_the_same_limits(tmp_path):
    config = load_config(write(tmp_path, CONFIG + SECOND_SESSION))
    assert [p.participant for p in config.participants] == ["FIRM1", "FIRM1"]
    assert config.participants[0].spec() == config.participants[1].spec()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (('collar_pct = "5.0"', 'collar_pct = "6"'), "FIRM1: collar_pct differs"),
        (('max_notional = "250000.50"', 'max_notional = "1"'), "max_notional differs"),
        (('fix_comp_id = "FIRM1B"', 'fix_comp_id = "FIRM1B"\nstp = "CANCEL_NEWEST"'),
         "stp differs"),
        (('fix_comp_id = "FIRM1B"', 'fix_comp_id = "FIRM1B"\nmax_order_qty = 5'),
         "max_order_qty differs"),
        (('username = "firm1b"', 'username = "firm1"'), "usernames must be unique"),
        (('username = "firm1b"', 'username = "FIRM1"'), "unique .*ignoring case"),
        (('username = "firm1b"', 'username = "firm:1b"'), "'firm:1b' must .* hold no ':'"),
    ],
)
def test_sessions_of_one_participant_must_agree(tmp_path, change, message):
    text = CONFIG.replace('password = "pw1"', 'password = "pw1"\nfix_comp_id = "FIRM1A"')
    second = SECOND_SESSION.replace(*change)
    assert second != SECOND_SESSION
    text += second
    with pytest.raises(ConfigError, match=message):
        load_config(write(tmp_path, text))


def test_fix_comp_ids_must_be_unique(tmp_path):
    text = CONFIG.replace('password = "pw1"', 'password = "pw1"\nfix_comp_id = "FIRM1B"')
    with pytest.raises(ConfigError, match="fix_comp_id values must be unique"):
        load_config(write(tmp_path, text + SECOND_SESSION))


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="No such file"):
        load_config(tmp_path / "absent.toml")


def test_venue_core_publishes_after_commit_and_keeps_history(tmp_path):
    config = load_config(write(tmp_path, CONFIG))
    core = VenueCore(config)
    seen: list[tuple[int, list]] = []
    core.subscribe(lambda seq, events: seen.append((seq, list(events))), replay=True)
    assert any(isinstance(e, TradingStatus) and e.state is TradingState.OPEN
               for _, events in seen for e in events)
    events = core.submit(NewOrder("FIRM1", "1", "AAPL", Side.BUY, 100, 1_890_000))
    assert [type(e) for e in events] == [OrderAccepted, BookAdd]
    assert seen[-1] == (core.exchange.last_seq, events)
    with pytest.raises(MalformedCommand):
        core.submit(NewOrder("FIRM1", "2", "AAPL", Side.BUY, 100, 1_890_000.0))
    history = list(core.history)
    core.close()

    again = VenueCore(config)  # restart: same journal, no config re-applied, same history
    assert again.history == history
    assert again.exchange.last_seq == history[-1][0]
    again.close()
