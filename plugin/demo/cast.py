"""The demo story's cast: the two stores, their customers, the catalogue and the orders."""
from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Callable

CENTS = Decimal("0.01")


@dataclass
class StoreInfo:
    """One connected demo store, as `keepwell shop add` registered it."""

    platform: str
    shop_id: str
    domain: str  # demo-shop.myshopify.com, or the WooCommerce store URL
    webhook_url: str
    webhook_secret: str


@dataclass
class Person:
    key: str
    platform: str
    first_name: str
    last_name: str
    consent: bool  # opts in to email marketing
    id: str = ""

    @property
    def name(self) -> str:
        return f"{self.first_name} {self.last_name}"

    @property
    def phone(self) -> str:
        return f"(555) 010-{int(self.id) % 10000:04d}"

    @property
    def street(self) -> str:
        return f"{int(self.id) % 1000} {self.last_name} Street"

    @property
    def email(self) -> str:
        ascii_name = unicodedata.normalize("NFKD", f"{self.first_name}.{self.last_name}").encode("ascii", "ignore")
        return f"{ascii_name.decode().lower()}@example.com"


@dataclass
class Delivery:
    platform: str
    topic: str
    what: str
    status_code: int
    status: str  # accepted | duplicate | ignored | the error


@dataclass
class Step:
    day: float
    title: str
    play: Callable[[], None]


# A coffee shop's catalogue: (title, sku, price).
BEANS = ("Ethiopia Yirgacheffe beans 250 g", "BEAN-ETH-250", "18.00")
DRIPPER = ("Ceramic pour-over dripper", "BREW-DRIP-01", "28.00")
KETTLE = ("Gooseneck kettle", "BREW-KETL-01", "46.00")
MUGS = ("Stoneware mug, set of 2", "HOME-MUG-02", "24.00")
ESPRESSO = ("Dual-boiler espresso machine", "MACH-ESP-01", "540.00")
GRINDER = ("Burr grinder", "MACH-GRND-01", "80.00")


@dataclass
class Order:
    id: str
    person: Person
    items: list  # (product, quantity)
    code: str | None = None  # a discount code used at checkout
    at: datetime | None = None
    occasion: dict = field(default_factory=dict)  # the checkout's occasion question, answered
    payload: dict = field(default_factory=dict)
    deliveries: dict = field(default_factory=dict)  # topic -> (body, headers) as first sent

    @property
    def subtotal(self) -> Decimal:
        return sum((Decimal(p[2]) * q for p, q in self.items), Decimal(0))

    @property
    def discount(self) -> Decimal:
        return (self.subtotal * Decimal("0.10")).quantize(CENTS) if self.code else Decimal(0)

    @property
    def total(self) -> Decimal:
        return self.subtotal - self.discount

