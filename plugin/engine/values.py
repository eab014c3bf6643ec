"""Literal values marketers write in rules: durations ("30d"), money ("50 USD"), percentages."""
from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal, InvalidOperation

from plugin.events import Money

_DURATION = re.compile(r"^\s*(\d+)\s*(s|m|h|d|w)\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_MONEY = re.compile(r"^\s*(\d+(?:\.\d{1,2})?)\s*([A-Za-z]{3})?\s*$")
_PERCENT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*%\s*$")


def parse_duration(text: object) -> timedelta:
    """'30d', '12h', '2w', '90m', '45s' -> timedelta; ValueError with a hint otherwise."""
    m = _DURATION.match(str(text))
    if not m:
        raise ValueError(f"bad duration {text!r}: write a whole number and a unit, e.g. '30d', '12h', '2w', '90m'")
    return timedelta(**{_UNITS[m.group(2)]: int(m.group(1))})


def format_duration(d: timedelta) -> str:
    """The shortest exact way to write ``d`` in rule syntax: '30d', '36h', '90m'."""
    secs = int(d.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if secs % size == 0 and secs >= size:
            return f"{secs // size}{unit}"
    return f"{secs}s"


def parse_money(text: object) -> Money:
    """'50', '49.90' or '50 USD' -> Money. Without a code the currency is None: the shop's own,
    so one rule reads the same on a USD, EUR or ILS store. ValueError with a hint otherwise."""
    if isinstance(text, bool):
        raise ValueError(f"bad amount {text!r}: write a number such as 50 or 49.90")
    if isinstance(text, float):
        text = repr(text)
    m = _MONEY.match(str(text))
    if not m:
        raise ValueError(f"bad amount {text!r}: write a number (in the shop's currency), e.g. 50 or 49.90")
    code = m.group(2)
    return Money(Decimal(m.group(1)), code.upper() if code else None)


def parse_percent(text: object) -> Decimal:
    """'10%' -> Decimal('10'); must lie in (0, 100]."""
    m = _PERCENT.match(str(text))
    if not m:
        raise ValueError(f"bad percentage {text!r}: write e.g. '10%'")
    value = Decimal(m.group(1))
    if not 0 < value <= 100:
        raise ValueError(f"percentage {text!r} must be above 0% and at most 100%")
    return value


def parse_discount(text: object) -> tuple[str, Decimal, str | None]:
    """A coupon discount: '15%' -> ('percent', 15, None); 5 -> ('fixed', 5, None), an amount in
    the shop's currency; '5 USD' -> ('fixed', 5, 'USD')."""
    s = str(text)
    if "%" in s:
        return "percent", parse_percent(s), None
    try:
        money = parse_money(s)
    except ValueError:
        raise ValueError(f"bad discount {text!r}: write a percentage ('15%') or an amount in the shop's currency (5)") from None
    if money.amount <= 0:
        raise ValueError(f"discount {text!r} must be above zero")
    return "fixed", money.amount, money.currency


def is_number(value: object) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, (int, float, Decimal)):
        return True
    try:
        Decimal(str(value))
        return True
    except InvalidOperation:
        return False
