"""Literal values marketers write in rules: durations ("30d"), money ("50 USD"), percentages."""
from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal, InvalidOperation

from plugin.events import Money

_DURATION = re.compile(r"^\s*(\d+)\s*(s|m|h|d|w)\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_MONEY = re.compile(r"^\s*(\d+(?:\.\d{1,2})?)\s*([A-Za-z]{3})\s*$")
_PERCENT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*%\s*$")


def parse_duration(text) -> timedelta:
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


def parse_money(text) -> Money:
    """'50 USD' or '49.90 EUR' -> Money; ValueError with a hint otherwise."""
    m = _MONEY.match(str(text))
    if not m:
        raise ValueError(f"bad amount {text!r}: write a number and a currency code, e.g. '50 USD' or '49.90 EUR'")
    return Money(Decimal(m.group(1)), m.group(2).upper())


def parse_percent(text) -> Decimal:
    """'10%' -> Decimal('10'); must lie in (0, 100]."""
    m = _PERCENT.match(str(text))
    if not m:
        raise ValueError(f"bad percentage {text!r}: write e.g. '10%'")
    value = Decimal(m.group(1))
    if not 0 < value <= 100:
        raise ValueError(f"percentage {text!r} must be above 0% and at most 100%")
    return value


def parse_discount(text) -> tuple[str, Decimal, str | None]:
    """A coupon discount: '15%' -> ('percent', 15, None); '5 USD' -> ('fixed', 5, 'USD')."""
    s = str(text)
    if "%" in s:
        return "percent", parse_percent(s), None
    try:
        money = parse_money(s)
    except ValueError:
        raise ValueError(f"bad discount {text!r}: write a percentage ('15%') or an amount ('5 USD')") from None
    if money.amount <= 0:
        raise ValueError(f"discount {text!r} must be above zero")
    return "fixed", money.amount, money.currency


def is_number(value) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, (int, float, Decimal)):
        return True
    try:
        Decimal(str(value))
        return True
    except InvalidOperation:
        return False
