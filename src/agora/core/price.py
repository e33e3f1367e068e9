"""Fixed-point prices. Money is never a float.

A price is an ``int`` in units of 1/10,000 of a dollar, ITCH 5.0's Price(4). Floats appear only
at the edges, for display and analytics output.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

PRICE_SCALE = 10_000
"""Price(4): one dollar is 10,000 price units."""

PRICE_DECIMALS = 4


def parse_price(text: str | int | Decimal) -> int:
    """Parse a decimal dollar amount ("12.3456", 12, Decimal) into Price(4) units exactly.

    Raises ValueError if the value has more than four decimals or is not a number, rather than
    rounding money silently.
    """
    try:
        value = Decimal(str(text).strip())
    except InvalidOperation as exc:
        raise ValueError(f"not a price: {text!r}") from exc
    if not value.is_finite():
        raise ValueError(f"not a finite price: {text!r}")
    scaled = value * PRICE_SCALE
    if scaled != scaled.to_integral_value():
        raise ValueError(f"price {text!r} has more than {PRICE_DECIMALS} decimals")
    return int(scaled)


def format_price(price: int) -> str:
    """Render Price(4) units as a dollar string with four decimals ("12.3400")."""
    sign = "-" if price < 0 else ""
    whole, frac = divmod(abs(price), PRICE_SCALE)
    return f"{sign}{whole}.{frac:04d}"


def price_to_float(price: int) -> float:
    """For display and analytics only; never feed the result back into matching."""
    return price / PRICE_SCALE
