"""Occasions in the customer's own words: what a purchase was for, the date, for whom, and
whether they want a reminder next time.

Checkout fields arrive as order attributes (Shopify cart attributes, which become the order's
``note_attributes``; WooCommerce order meta). ``captured`` reads them with the rule set's field
names and returns canonical ``occasion.captured`` events, which the fold keeps per customer.
Pure: the live worker and the simulator derive the same events from the same order.
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from plugin.events import Event

#: Attribute names Keepwell's own capture (the Shopify cart block, the WordPress plugin) writes.
#: The WordPress plugin stores them with a leading underscore (hidden in the order screen's
#: custom fields box); both spellings are read.
DEFAULT_FIELDS = {
    "kind": ("keepwell_occasion",),
    "date": ("keepwell_occasion_date",),
    "recipient": ("keepwell_occasion_for",),
    "remind": ("keepwell_occasion_remind",),
}
FIELD_NAMES = tuple(DEFAULT_FIELDS)
_YES = frozenset({"yes", "y", "true", "1", "on", "checked", "remind", "remind me", "כן"})
_MONTH_DAY = re.compile(r"^(?:--)?(\d{1,2})[-/.](\d{1,2})$")  # "12-20" or "--12-20": no year given
_MAX_TEXT = 80


@dataclass(frozen=True, slots=True)
class Occasion:
    id: str  # where it was captured: the order's id
    kind: str  # "birthday", "anniversary", "wedding", ... (lower case, as the customer chose it)
    day: date  # the next-or-given date; only month and day recur
    recipient: str | None
    remind: bool
    captured_at: datetime


def field_names(mapping: dict[str, Any] | None = None) -> dict[str, tuple[str, ...]]:
    """Keepwell's attribute names plus the merchant's (``settings: occasion_fields``), lower case."""
    out = {k: tuple(n.lower() for n in v) for k, v in DEFAULT_FIELDS.items()}
    for key, names in (mapping or {}).items():
        extra = (names,) if isinstance(names, str) else tuple(names)
        out[key] = out[key] + tuple(n.lower() for n in extra)
    return out


def _lookup(attributes: dict[str, str], names: tuple[str, ...]) -> str | None:
    for name in names:
        for candidate in (name, f"_{name}"):
            value = attributes.get(candidate)
            if value is not None and str(value).strip():
                return str(value).strip()
    return None


def parse_day(text: str, at: datetime) -> date | None:
    """An occasion's date from a checkout field: ISO ``2026-12-20`` (what a date input sends), or a
    month and day (``12-20``) taken in the year of ``at``. None when it is not a date."""
    try:
        return date.fromisoformat(text[:10])
    except ValueError:
        pass
    m = _MONTH_DAY.match(text)
    if m:
        month, day = int(m.group(1)), int(m.group(2))
        try:
            return date(at.year, month, day)
        except ValueError:
            return date(at.year, 2, 28) if (month, day) == (2, 29) else None
    return None


def _kind(text: str | None) -> str:
    words = re.sub(r"[\s\-]+", "_", (text or "").strip().lower())[:_MAX_TEXT]
    return words or "occasion"


def captured(event: Event, fields: dict[str, tuple[str, ...]]) -> list[Event]:
    """The ``occasion.captured`` event an order's attributes describe (none without a valid date)."""
    order = event.order
    if order is None or not order.attributes or event.type not in ("order.created", "order.paid"):
        return []
    attributes = {str(k).strip().lower(): v for k, v in order.attributes}
    raw_date = _lookup(attributes, fields["date"])
    at = order.created_at or event.occurred_at
    day = parse_day(raw_date, at) if raw_date else None
    if day is None:
        return []
    recipient = _lookup(attributes, fields["recipient"])
    data = {
        "occasion_id": order.id,
        "kind": _kind(_lookup(attributes, fields["kind"])),
        "date": day.isoformat(),
        "recipient": recipient[:_MAX_TEXT] if recipient else None,
        "remind": (_lookup(attributes, fields["remind"]) or "").lower() in _YES,
        "captured_at": at.isoformat(),
    }
    return [Event(id=f"occasion:{order.id}", type="occasion.captured", shop=event.shop, customer_id=event.customer_id,
                  occurred_at=event.occurred_at, data=data)]


def from_event(event: Event) -> Occasion:
    d = event.data
    return Occasion(id=str(d["occasion_id"]), kind=d["kind"], day=date.fromisoformat(d["date"]),
                    recipient=d.get("recipient"), remind=bool(d.get("remind")),
                    captured_at=datetime.fromisoformat(d["captured_at"]) if d.get("captured_at") else event.occurred_at)


def to_dict(o: Occasion) -> dict[str, Any]:
    return {"id": o.id, "kind": o.kind, "date": o.day.isoformat(), "recipient": o.recipient, "remind": o.remind,
            "captured_at": o.captured_at.isoformat()}


def from_dict(d: dict[str, Any]) -> Occasion:
    return Occasion(id=d["id"], kind=d["kind"], day=date.fromisoformat(d["date"]), recipient=d.get("recipient"),
                    remind=bool(d.get("remind")), captured_at=datetime.fromisoformat(d["captured_at"]))


def template_vars(o: Occasion | None) -> dict[str, Any] | None:
    """What an email sees as ``occasion``: kind (as written), a readable title, recipient, date."""
    if o is None:
        return None
    return {"kind": o.kind, "title": o.kind.replace("_", " ").capitalize(), "recipient": o.recipient,
            "date": o.day.isoformat()}


def expand(events: Iterable[Event], fields: dict[str, tuple[str, ...]]) -> list[Event]:
    """``events``, each order followed by the occasion its checkout fields captured."""
    return [out for e in events for out in (e, *captured(e, fields))]
