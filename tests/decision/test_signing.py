"""Ed25519 proposal signatures: deterministic keys, and every way a proposal can be wrong."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agora.core.enums import Side, TimeInForce
from agora.core.events import CancelIntent, FairValue, OrderIntent, Proposal, Veto
from agora.decision.signing import AgentKey, sign, signed_bytes, verify

ALICE, BOB = AgentKey.generate("alice"), AgentKey.generate("bob")
KEYS = {"alice": ALICE.public_bytes, "bob": BOB.public_bytes}
ORDER = OrderIntent("AAPL", Side.BUY, 100, 1_890_000, TimeInForce.IOC)


def proposal(agent: str = "alice", seq: int = 7, action=ORDER) -> Proposal:
    return Proposal(agent, seq, 50_000_000, action)


def test_seeded_keys_are_deterministic_and_distinct():
    assert AgentKey.generate("alice").public_bytes == ALICE.public_bytes
    assert AgentKey.generate(42).public_bytes == AgentKey.generate("42").public_bytes
    assert AgentKey.generate(b"alice").public_bytes == ALICE.public_bytes
    assert ALICE.public_bytes != BOB.public_bytes
    assert len(ALICE.public_bytes) == 32
    assert AgentKey.generate().public_bytes != AgentKey.generate().public_bytes  # random


def test_a_seeded_key_and_its_signature_are_the_bytes_they_always_were():
    """Known answers, made with OpenSSL's Ed25519 (``cryptography``, which agora used before
    libsodium): rosters and key files derived from seeds stay valid across the switch."""
    assert ALICE.public_bytes.hex() == (
        "f826a4727a8c8a7b789db9e4c16003f3354f2c64b69975dfbd6e3d254f323506")
    assert ALICE.sign_bytes(b"agora").hex() == (
        "d425f58942724c92932b6260be0ee3e757bc9f36ad7fd7ba0197d3320bc764f9"
        "a37874d9457a9c82fe73306df077550625af86b64a7ff4f689dc812dbd302d09")


def test_signed_proposal_verifies_and_survives_the_wire():
    signed = sign(proposal(), ALICE)
    assert len(signed.signature) == 64
    assert verify(signed, KEYS)
    wire = msgspec.msgpack.encode(signed)
    assert verify(msgspec.msgpack.decode(wire, type=Proposal), KEYS)
    assert sign(proposal(), ALICE) == signed  # Ed25519 is deterministic


def test_signature_covers_the_proposal_without_its_signature():
    signed = sign(proposal(), ALICE)
    assert signed_bytes(signed) == msgspec.msgpack.encode(proposal())
    assert sign(signed, ALICE) == signed  # re-signing a signed proposal gives the same bytes


@pytest.mark.parametrize(
    "action",
    [ORDER, CancelIntent("AG1Z"), Veto("", "loss", True), FairValue("MSFT", 4_100_000, 50)],
)
def test_every_action_type_signs_and_verifies(action):
    assert verify(sign(proposal(action=action), ALICE), KEYS)


def test_unknown_agent_is_refused():
    signed = sign(proposal("carol"), AgentKey.generate("carol"))
    assert not verify(signed, KEYS)
    assert verify(signed, {**KEYS, "carol": AgentKey.generate("carol").public_bytes})


def test_wrong_key_is_refused():
    assert not verify(sign(proposal("alice"), BOB), KEYS)  # bob signs in alice's name


def test_unsigned_and_malformed_signatures_are_refused():
    signed = sign(proposal(), ALICE)
    assert not verify(proposal(), KEYS)
    assert not verify(msgspec.structs.replace(signed, signature=signed.signature[:63]), KEYS)
    assert not verify(msgspec.structs.replace(signed, signature=signed.signature + b"\0"), KEYS)


def test_malformed_public_key_is_refused_not_raised():
    signed = sign(proposal(), ALICE)
    assert not verify(signed, {"alice": ALICE.public_bytes[:31]})
    assert not verify(signed, {"alice": b"\xff" * 32})  # not a point on the curve, or not alice


@pytest.mark.parametrize(
    "field, value",
    [
        ("agent", "bob"),
        ("seq", 8),
        ("budget_ns", 0),
        ("action", OrderIntent("AAPL", Side.BUY, 100, 1_890_100, TimeInForce.IOC)),
        ("action", OrderIntent("AAPL", Side.SELL, 100, 1_890_000, TimeInForce.IOC)),
        ("action", OrderIntent("AAPL", Side.BUY, 1000, 1_890_000, TimeInForce.IOC)),
        ("action", OrderIntent("AAPX", Side.BUY, 100, 1_890_000, TimeInForce.IOC)),
        ("action", OrderIntent("AAPL", Side.BUY, 100, 1_890_000, TimeInForce.DAY)),
    ],
)
def test_tampering_with_any_field_is_detected(field, value):
    signed = sign(proposal(), ALICE)
    assert verify(signed, KEYS)
    assert not verify(msgspec.structs.replace(signed, **{field: value}), KEYS)


def test_repr_does_not_show_the_private_key():
    assert "public=" in repr(ALICE) and "private" not in repr(ALICE).lower()


@settings(max_examples=60, deadline=None)
@given(
    seq=st.integers(0, 2**63 - 1),
    price=st.integers(1, 2**40),
    bit=st.integers(0, 64 * 8 - 1),
)
def test_any_flipped_signature_bit_is_refused(seq, price, bit):
    signed = sign(proposal("bob", seq, FairValue("X", price, 1)), BOB)
    assert verify(signed, KEYS)
    flipped = bytearray(signed.signature)
    flipped[bit // 8] ^= 1 << (bit % 8)
    assert not verify(msgspec.structs.replace(signed, signature=bytes(flipped)), KEYS)


def test_repeated_checks_are_remembered_and_give_the_same_answer():
    from agora.decision.signing import verified

    good, bad = sign(proposal(seq=99), ALICE), sign(proposal("alice", 99), BOB)
    assert [verify(good, KEYS), verify(bad, KEYS)] == [True, False]
    hits = verified.cache_info().hits
    assert [verify(good, KEYS), verify(bad, KEYS)] == [True, False]
    assert verified.cache_info().hits == hits + 2
