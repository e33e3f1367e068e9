"""The venue's OUCH path on random order flow: every fast part against its reference.

Random OUCH 5.0 sessions (enters with and without options, cancels, replaces, mass cancels,
kill switches, account queries, halts and reopenings) go through a real MatchingEngine the way
the gateway drives it. On the way in, each message's bytes decode alike through
``decode_inbound`` and ``decode_inbound_checked``; on the way out, ``OuchMapper.outbound`` (one
handler lookup per event type) gives exactly what the plain ``isinstance`` dispatch gives on a
twin mapper, and every message encodes to the same bytes through ``encode`` and
``encode_checked``; the sequenced framing equals ``encode(SequencedData(...))`` per message.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agora.core import enums as ag
from agora.core.events import (
    AddSymbol,
    Execution,
    OrderAccepted,
    OrderCancelled,
    OrderRejected,
    OrderReplaced,
    ParticipantSpec,
    ParticipantUpdated,
    SetParticipant,
    SetTradingState,
    SymbolSpec,
    TradingStatus,
)
from agora.exchange.engine import MatchingEngine
from agora.exchange.venue.ouch_mapping import NS_PER_DAY, TIF_IN, OuchMapper, user_ref_num
from agora.protocols import ouch50 as ouch
from agora.protocols import soupbintcp as soup

P = 10_000
TS = 3 * NS_PER_DAY + 12_345
PARTICIPANTS = ("F1", "F2")


def plain_outbound(mapper: OuchMapper, events) -> list:
    """``OuchMapper.outbound`` with the plain isinstance dispatch (the reference)."""
    out: list = []
    for event in events:
        if isinstance(event, Execution):
            mapper._execution(event, out)
        elif isinstance(event, OrderAccepted):
            mapper._accepted(event, out)
        elif isinstance(event, OrderCancelled):
            mapper._cancelled(event, out)
        elif isinstance(event, OrderReplaced):
            mapper._replaced(event, out)
        elif isinstance(event, OrderRejected):
            mapper._rejected(event, out)
        elif isinstance(event, ParticipantUpdated):
            mapper._participant(event, out)
        elif isinstance(event, TradingStatus):
            mapper._states[event.symbol] = event.state
    return out


_OPTION_VALUES = {
    "firm": st.sampled_from(["", "FIRM", "AB"]),
    "min_qty": st.sampled_from([0, 100, 300]),
    "max_floor": st.sampled_from([0, 100, 200]),
    "post_only": st.sampled_from(["P", "N"]),
    "price_type": st.sampled_from(["L", "L", "M"]),
    "peg_offset": st.sampled_from([0, 0, -100]),
    "expire_time": st.sampled_from([0, 0, 60]),
    "random_reserves": st.sampled_from([0, 0, 100]),
    "side": st.sampled_from(["B", "S"]),
}
_NONE = st.just(ouch.Options())
_OPTIONS = st.one_of(
    _NONE,
    _NONE,
    st.sampled_from(sorted(_OPTION_VALUES)).flatmap(  # one option
        lambda name: _OPTION_VALUES[name].map(lambda v: ouch.Options(**{name: v}))),
    st.fixed_dictionaries({}, optional=_OPTION_VALUES).map(lambda d: ouch.Options(**d)),
)
_NEAR = st.integers(-2, 2).map(lambda k: 190 * P + k * 100)
_PRICES = st.one_of(_NEAR, _NEAR, _NEAR, _NEAR, st.sampled_from(
    [0, 190 * P + 1, 0x7FFFFFFF, 250 * P]))
_TIFS = st.sampled_from(["0"] * 6 + ["3", "3", "5", "6", "E"])
_QTY = st.sampled_from([100, 200, 300])
_OLD = st.integers(0, 7)  # which order a cancel or replace names (see the test)


@st.composite
def _inbound(draw):
    """(kind, message maker): the test fills in ``urn`` (the next one) and ``old`` (one of
    the participant's live orders, or of its earlier UserRefNums)."""
    kind = draw(st.sampled_from(["enter"] * 20 + ["cancel"] * 5 + ["replace"] * 8 + [
        "mass", "disable", "enable", "enable", "query", "modify", "stale", "halt", "open"]))
    if kind in ("halt", "open"):
        state = ag.TradingState.HALTED if kind == "halt" else ag.TradingState.OPEN
        return kind, SetTradingState("AAPL", state)
    side, qty, price, tif = (draw(st.sampled_from(list(ouch.Side))), draw(_QTY), draw(_PRICES),
                             draw(_TIFS))
    display, opts = draw(st.sampled_from(["Y", "Y", "N", "A"])), draw(_OPTIONS)
    if kind in ("enter", "stale"):
        symbol = draw(st.sampled_from(["AAPL"] * 9 + ["ZZZZ"]))
        extra = (draw(st.sampled_from(list(ouch.Capacity))),
                 draw(st.sampled_from(list(ouch.IntermarketSweep))),
                 draw(st.sampled_from(list(ouch.CrossType))))
        return kind, lambda urn, old: ouch.EnterOrder(
            urn if kind == "enter" else max(1, urn - 3), side, qty, symbol, price, tif, display,
            *extra, f"C{urn}", opts)
    if kind == "cancel":
        keep = draw(st.sampled_from([0, 0, 100, 200]))
        return kind, lambda urn, old: ouch.CancelOrderRequest(old, keep)
    if kind == "replace":
        total = draw(st.sampled_from([0, 100, 300, 400]))
        return kind, lambda urn, old: ouch.ReplaceOrderRequest(
            old, urn, total, price, tif, display, ouch.IntermarketSweep.NOT_ELIGIBLE, f"R{urn}",
            opts)
    if kind == "mass":
        symbol = draw(st.sampled_from(["", "AAPL"]))
        return kind, lambda urn, old: ouch.MassCancelRequest(urn, "FIRM", symbol, opts)
    if kind in ("disable", "enable"):
        cls = ouch.DisableOrderEntryRequest if kind == "disable" else ouch.EnableOrderEntryRequest
        return kind, lambda urn, old: cls(urn, "FIRM")
    if kind == "query":
        return kind, lambda urn, old: ouch.AccountQueryRequest()
    return kind, lambda urn, old: ouch.ModifyOrderRequest(old, side, qty)


def _expected_options(event, firms: dict) -> list:
    """The appendage each OUCH message of ``event`` must carry (the mapping's rules)."""
    if isinstance(event, OrderAccepted) and user_ref_num(event.client_order_id):
        return [ouch.Options(
            firm=firms.get((event.participant, user_ref_num(event.client_order_id))),
            min_qty=event.min_qty or None, max_floor=event.display_qty or None,
            post_only="P" if event.post_only else None)]
    if isinstance(event, OrderReplaced) and user_ref_num(event.client_order_id):
        return [ouch.Options(max_floor=event.display_qty or None)]
    return []


def _refusal(msg) -> ouch.RejectReason | None:
    """Why the mapping refuses an Enter/Replace before the engine (its documented rules)."""
    opts = msg.options
    if msg.time_in_force not in TIF_IN:
        return ouch.RejectReason.OTHER
    if opts.price_type not in (None, "L"):
        return ouch.RejectReason.INVALID_PEG_TYPE
    if opts.peg_offset or opts.discretion_price or opts.discretion_peg_offset:
        return ouch.RejectReason.PEGGING_NOT_ALLOWED
    if opts.random_reserves:
        return ouch.RejectReason.INVALID_MAX_FLOOR
    if opts.expire_time:
        return ouch.RejectReason.OTHER
    return None


def _assert_encodes_alike(messages) -> None:
    for msg in messages:
        raw = ouch.encode(msg)
        assert raw == ouch.encode_checked(msg)
        assert soup.sequenced_packets([raw]) == [soup.encode(soup.SequencedData(raw))]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(PARTICIPANTS), _inbound(), _OLD), min_size=1,
                max_size=80))
def test_random_ouch_flow_fast_parts_equal_their_references(flow):
    engine, fast, plain = MatchingEngine(), OuchMapper(), OuchMapper()

    firms: dict[tuple[str, int], str | None] = {}  # (participant, UserRefNum) -> Enter's Firm

    def apply(command, ts):
        events = engine.process(command, ts)
        out = fast.outbound(events)
        assert out == plain_outbound(plain, events)
        _assert_encodes_alike(msg for _, msg in out)
        carrying = [m.options for _, m in out if isinstance(m, ouch.OrderAccepted |
                                                           ouch.OrderReplaced)]
        assert carrying == [o for e in events for o in _expected_options(e, firms)]

    for p in PARTICIPANTS:
        apply(SetParticipant(ParticipantSpec(p)), TS)
    apply(AddSymbol(SymbolSpec("AAPL", 190 * P)), TS)
    apply(SetTradingState("AAPL", ag.TradingState.OPEN), TS)
    used: dict[str, list[int]] = {p: [] for p in PARTICIPANTS}
    for i, (participant, (kind, make), k) in enumerate(flow):
        ts = TS + i
        if isinstance(make, SetTradingState):
            apply(make, ts)
            continue
        urns = used[participant]
        urn = (urns[-1] if urns else 0) + 1
        live = sorted(fast.account(participant).orders)  # mostly name a live order
        old = live[k % len(live)] if live and k < 6 else urns[-1 - k % len(urns)] if urns else 1
        msg = make(urn, old)
        if kind in ("enter", "replace", "mass", "disable", "enable"):
            urns.append(urn)
        raw = ouch.encode_checked(msg, strict=False)
        decoded = ouch.decode_inbound(raw)
        assert decoded == ouch.decode_inbound_checked(raw)
        if isinstance(decoded, ouch.EnterOrder):  # by its own UserRefNum: a stale one may be
            firms[participant, decoded.user_ref_num] = decoded.options.firm  # fresh after all
        action = fast.inbound(participant, decoded, ts)
        twin = plain.inbound(participant, decoded, ts)
        assert action == twin
        if kind in ("enter", "replace") and (action.commands or action.replies):
            refusal = _refusal(decoded)
            assert [r.reason for r in action.replies] == ([] if refusal is None else [refusal])
        for command in action.commands:
            apply(command, ts)
        replies = action.replies + fast.unanswered(participant, ts)
        assert replies == twin.replies + plain.unanswered(participant, ts)
        _assert_encodes_alike(replies)
    assert fast.accounts == plain.accounts
