"""The sample history's people and orders as compact values, and their canonical event dicts."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from plugin.sample_history.catalogue import Product

_DAY = 86400


@dataclass(frozen=True, slots=True)
class Person:
    id: str
    email: str
    first_name: str | None
    last_name: str | None
    accepts_marketing: bool
    locale: str
    created_at: int  # seconds since the start
    birthday: str | None
    anniversary: str | None


@dataclass(frozen=True, slots=True)
class Order:
    id: str
    created_at: int
    lines: tuple[tuple[Product, int], ...]  # (product, quantity)
    codes: tuple[str, ...]
    subtotal: int  # cents, after discounts
    total: int  # cents, subtotal + shipping



class Writer:
    """Turns compact pending tuples into canonical event dicts."""

    def __init__(self, shop: str, currency: str, start: datetime, id_prefix: str):
        self.shop, self.currency, self.id_prefix = shop, currency, id_prefix
        self.midnight = datetime.combine(start.date(), datetime.min.time(), timezone.utc)
        self.offset = int((start - self.midnight).total_seconds())
        self.days: dict[int, str] = {}

    def time(self, at: int) -> str:
        # formatting dominates the run time, so the date part is formatted once per day
        day, second = divmod(self.offset + at, _DAY)
        prefix = self.days.get(day)
        if prefix is None:
            prefix = self.days[day] = (self.midnight + timedelta(days=day)).strftime("%Y-%m-%dT")
        minute, s = divmod(second, 60)
        return f"{prefix}{minute // 60:02d}:{minute % 60:02d}:{s:02d}Z"

    def money(self, cents: int) -> str:
        return f"{cents // 100}.{cents % 100:02d} {self.currency}"

    def event(self, at: int, seq: int, kind: str, person: Person, extra) -> dict:
        e = {"id": f"{self.id_prefix}-{seq}", "type": kind, "shop": self.shop, "customer_id": person.id,
             "occurred_at": self.time(at)}
        if kind == "customer.created":
            e["customer"] = self.customer(person)
        elif kind == "customer.consent_changed":
            e["customer"] = {"id": person.id, "email": person.email, "accepts_marketing": extra}
        elif kind == "order.refunded":
            order, refund_id, cents = extra
            e["order"] = {"id": order.id, "created_at": self.time(order.created_at), "total": self.money(order.total),
                          "refunded": self.money(cents)}
            e["data"] = {"refund_id": refund_id}
        elif kind == "order.cancelled":
            e["order"] = {"id": extra.id, "created_at": self.time(extra.created_at), "total": self.money(extra.total)}
        else:  # order.created, order.paid
            e["order"] = self.order(extra)
        return e

    def customer(self, p: Person) -> dict:
        c = {"id": p.id, "email": p.email, "accepts_marketing": p.accepts_marketing, "locale": p.locale,
             "created_at": self.time(p.created_at)}
        for name in ("first_name", "last_name", "birthday", "anniversary"):
            value = getattr(p, name)
            if value is not None:
                c[name] = value
        return c

    def order(self, o: Order) -> dict:
        return {
            "id": o.id,
            "created_at": self.time(o.created_at),
            "total": self.money(o.total),
            "subtotal": self.money(o.subtotal),
            "discount_codes": list(o.codes),
            "line_items": [
                {"product_id": p.id, "variant_id": p.variant_id, "sku": p.sku, "title": p.title, "quantity": q,
                 "price": self.money(p.cents), "collections": list(p.collections)}
                for p, q in o.lines
            ],
        }
