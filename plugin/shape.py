"""Limits and type checks for the JSON that stores (and our own backlog) hand the worker.

A validly signed payload can still have any shape: a list where an object belongs, a total that is
a word, a timestamp that is a number, nesting a thousand levels deep, ten thousand line items.
Each is refused here with a PayloadError naming the field, so the worker dead-letters it at once
instead of retrying an exception five times.

The limits are far above what either platform sends: a Shopify checkout holds at most 500 line
items, and the deepest published order payload nests 6 levels.
"""
from __future__ import annotations

import json
from decimal import Decimal, InvalidOperation
from typing import Any

from plugin.errors import PayloadError

MAX_DEPTH = 32  # nested objects and arrays in one payload
MAX_ITEMS = 2000  # entries of any list a parser reads (line items, refunds, discount codes, tags)
MAX_AMOUNT = Decimal(10) ** 12  # an order total beyond a trillion is a corrupt number
MAX_QUANTITY = 10 ** 6


def loads(body: str | bytes) -> Any:
    """Parse a JSON body; PayloadError when it is not JSON or nests deeper than MAX_DEPTH."""
    try:
        value = json.loads(body)
    except RecursionError:
        raise PayloadError(f"JSON nests deeper than {MAX_DEPTH} levels") from None
    except (ValueError, TypeError) as exc:
        raise PayloadError(f"body is not JSON: {exc}") from None
    check_depth(value)
    return value


def check_depth(value: Any, limit: int = MAX_DEPTH) -> None:
    """PayloadError when ``value`` nests objects/arrays deeper than ``limit`` (no recursion)."""
    level, stack = [value], 0
    while level:
        stack += 1
        if stack > limit:
            raise PayloadError(f"JSON nests deeper than {limit} levels")
        nxt = []
        for v in level:
            if isinstance(v, dict):
                nxt.extend(x for x in v.values() if isinstance(x, (dict, list)))
            elif isinstance(v, list):
                nxt.extend(x for x in v if isinstance(x, (dict, list)))
        level = nxt


def obj(d: dict, key: str, where: str) -> dict | None:
    """``d[key]`` when it is an object; None when absent/null/empty; PayloadError otherwise."""
    value = d.get(key)
    if value is None or value == "" or value == [] or value == {}:
        return None
    if not isinstance(value, dict):
        raise PayloadError(f"{where}: '{key}' is {type(value).__name__}, expected an object")
    return value


def objects(d: dict, key: str, where: str) -> list[dict]:
    """``d[key]`` as a list of objects (absent/null: empty); PayloadError on any other shape."""
    value = d.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise PayloadError(f"{where}: '{key}' is {type(value).__name__}, expected a list")
    if len(value) > MAX_ITEMS:
        raise PayloadError(f"{where}: '{key}' has {len(value)} entries; at most {MAX_ITEMS} are accepted")
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            raise PayloadError(f"{where}: '{key}'[{i}] is {type(item).__name__}, expected an object")
    return value


def scalars(value: Any, where: str) -> list[str]:
    """A list of strings/numbers as strings; PayloadError on any other shape."""
    if not isinstance(value, list):
        raise PayloadError(f"{where}: expected a list, got {type(value).__name__}")
    if len(value) > MAX_ITEMS:
        raise PayloadError(f"{where}: {len(value)} entries; at most {MAX_ITEMS} are accepted")
    if any(isinstance(x, (dict, list, bool)) or x is None for x in value):
        raise PayloadError(f"{where}: expected a list of strings")
    return [str(x) for x in value]


def text(d: dict, key: str, where: str) -> str | None:
    """``d[key]`` when it is a string (numbers are written out); None when absent; PayloadError otherwise."""
    value = d.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise PayloadError(f"{where}: '{key}' is {type(value).__name__}, expected a string")
    return value if isinstance(value, str) else str(value)


def flag(d: dict, key: str, where: str) -> bool | None:
    value = d.get(key)
    if value is None or isinstance(value, bool):
        return value
    raise PayloadError(f"{where}: '{key}' is {type(value).__name__}, expected true or false")


def amount(value: Any, where: str, *, negative: bool = False) -> Decimal:
    """A money amount from a JSON string or number, never through float arithmetic; finite, at most
    MAX_AMOUNT, and not negative unless ``negative``. PayloadError otherwise."""
    if value is None or value == "" or isinstance(value, bool):
        raise PayloadError(f"{where}: missing amount")
    if isinstance(value, float):
        value = repr(value)  # 89.99 as typed, not its binary expansion
    if not isinstance(value, (str, int)):
        raise PayloadError(f"{where}: {type(value).__name__} is not an amount")
    try:
        number = Decimal(value.strip() if isinstance(value, str) else value)
    except (InvalidOperation, ValueError):
        raise PayloadError(f"{where}: {value!r} is not an amount") from None
    if not number.is_finite() or abs(number) > MAX_AMOUNT:
        raise PayloadError(f"{where}: {value!r} is not a plausible amount")
    if number < 0 and not negative:
        raise PayloadError(f"{where}: {value!r} is negative")
    return number


def quantity(value: Any, where: str) -> int:
    """A whole, non-negative item count up to MAX_QUANTITY; PayloadError otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, str, float)):
        raise PayloadError(f"{where}: {type(value).__name__} is not a quantity")
    try:
        number = int(value) if not isinstance(value, float) or value.is_integer() else None
    except (ValueError, OverflowError):
        number = None
    if number is None or not 0 <= number <= MAX_QUANTITY:
        raise PayloadError(f"{where}: {value!r} is not a quantity (0 to {MAX_QUANTITY})")
    return number


def currency(value: Any, where: str) -> str:
    """An ISO 4217 code (three letters), upper-cased; PayloadError otherwise."""
    if not isinstance(value, str) or len(value) != 3 or not value.isascii() or not value.isalpha():
        raise PayloadError(f"{where}: currency {value!r} is not an ISO 4217 code")
    return value.upper()
