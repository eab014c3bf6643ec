"""A realistic synthetic store history: canonical event dicts for demos, benchmarks and `simulate`.

``generate(customers, seed)`` yields the JSON form of canonical events (what ``event_from_dict``
accepts) in time order. It is deterministic for a seed and streams: customers are created in
signup order and their future events wait in a heap of compact tuples, so memory follows the
events still pending, not the whole history.

The shape is a small direct-to-consumer coffee shop. Assumptions, roughly:

- Signups are spread evenly over the period, more of them in the afternoon and evening (UTC).
- 25% of signups never buy. Half of the buyers order within the hour (the account is made at
  checkout); the others after a long-tailed gap, median about 3 days.
- After a paid order, the chance of ordering again is 30% after the first order, 45% after the
  second, 55% after that (loyalty grows); halved after a refund. Gaps between orders are
  log-normal with a median of about 50 days. Repeat orders often restock a coffee bought before.
- Baskets hold 1-4 lines from a 30-product catalogue (collections coffee, brewing, tea,
  accessories, gifts). Shipping is 5.90 under a 50.00 subtotal.
- Every order is ``order.created`` then ``order.paid`` 1-10 minutes later. 4% of paid orders
  are refunded 2-20 days later (mostly in full, else one line); 1% are cancelled within 2 days.
- 60% accept marketing at signup; later about 12% of those unsubscribe and 8% of the others
  opt in (``customer.consent_changed``).
- 40% gave a birthday, 10% an anniversary. Locales are mostly en, plus fr, de, es, pt-BR, ar,
  he and ja, with names in their own scripts; 4% of customers gave no name.
- 8% of first orders use the referral code of an earlier opted-in buyer (who got it with the
  invite two days after their own first order); 0.5% use the customer's own code, which the
  engine must ignore. 5% of orders use a store-wide promo code.
- Events after the period ends are dropped: the history stops mid-flight like a real export.
"""
from __future__ import annotations

import heapq
import itertools
import math
import random
from datetime import date, datetime, timezone
from typing import Iterator

from plugin.engine.referral import referral_code
from plugin.engine.ruleset import Settings
from plugin.sample_history.catalogue import CATALOGUE, DOMAINS, LOCALE_CUM, LOCALE_NAMES, LOCALES, PRODUCT_CUM, Product
from plugin.sample_history.writer import Order, Person, Writer

DEFAULT_START = datetime(2026, 1, 1, tzinfo=timezone.utc)
#: The sample store's referral key: simulating its history needs the same (``for_shop(rules, SAMPLE_REFERRAL_KEY)``).
SAMPLE_REFERRAL_KEY = "keepwell-sample-store-referral-key"
_CODES = Settings(referral_key=SAMPLE_REFERRAL_KEY)
FIRST_CUSTOMER_ID = 7_000_000_001
FIRST_ORDER_ID = 5_100_000_001
FIRST_REFUND_ID = 9_300_000_001

_MINUTE, _HOUR, _DAY = 60, 3600, 86400

NEVER_BUY = 0.25
SAME_SESSION_FIRST_ORDER = 0.5
REPEAT = (0.30, 0.45, 0.55)  # chance of another order after the 1st, 2nd, 3rd+ paid order
MAX_ORDERS = 15
REPEAT_GAP_MEDIAN_DAYS = 50
REFUND = 0.04
CANCEL = 0.01
ACCEPTS_MARKETING = 0.60
UNSUBSCRIBE = 0.12
LATE_OPT_IN = 0.08
BIRTHDAY = 0.40
ANNIVERSARY = 0.10
NO_NAME = 0.04
REFERRED = 0.08
SELF_REFERRED = 0.005
PROMO = 0.05
PROMO_CODES = ("SPRING10", "SUMMER10", "COFFEELOVER", "NEWSLETTER10")
SHIPPING_CENTS, FREE_SHIPPING_CENTS = 590, 5000
BASKET_SIZES, BASKET_WEIGHTS = (1, 2, 3, 4), (55, 28, 12, 5)

# Signups by hour of day (UTC): quiet at night, busiest in the evening.
_HOUR_WEIGHTS = (2, 1, 1, 1, 1, 1, 2, 3, 4, 5, 6, 6, 7, 7, 7, 7, 8, 8, 9, 10, 10, 8, 5, 3)
_HOUR_CUM = tuple(itertools.accumulate(_HOUR_WEIGHTS))


def generate(customers: int, seed: int = 1, start: datetime | None = None, days: int = 365,
             shop: str = "demo.myshopify.com", currency: str = "USD") -> Iterator[dict]:
    """Yield canonical event dicts (the JSON form event_from_dict accepts), in time order."""
    start = _utc(start or DEFAULT_START)
    rng = random.Random(seed)
    store = _Store(rng, shop, start, days * _DAY)
    out = Writer(shop, currency, start, f"s{seed}")
    signups = sorted(_signup_time(rng, days) for _ in range(customers))
    pending: list = []  # heap of (time, seq, type, person, extra); seq keeps ties in creation order
    seq = itertools.count()
    for index, signed_up in enumerate(signups):
        # every event before this signup is final: later customers only add events from here on
        while pending and pending[0][0] < signed_up:
            yield out.event(*heapq.heappop(pending))
        for at, kind, person, extra in store.customer(index, signed_up):
            heapq.heappush(pending, (at, next(seq), kind, person, extra))
    while pending:
        yield out.event(*heapq.heappop(pending))


def _utc(t: datetime) -> datetime:
    return t.replace(tzinfo=timezone.utc) if t.tzinfo is None else t.astimezone(timezone.utc)


def _signup_time(rng: random.Random, days: int) -> int:
    hour = rng.choices(range(24), cum_weights=_HOUR_CUM)[0]
    return rng.randrange(days) * _DAY + hour * _HOUR + rng.randrange(_HOUR)


def _lognormal_seconds(rng: random.Random, median_days: float, sigma: float) -> int:
    return int(rng.lognormvariate(math.log(median_days * _DAY), sigma))


class _Store:
    """Draws each customer's whole timeline, in signup order, as compact tuples."""

    def __init__(self, rng: random.Random, shop: str, start: datetime, end: int):
        self.rng, self.shop, self.start, self.end = rng, shop, start, end
        self.order_ids = itertools.count(FIRST_ORDER_ID)
        self.refund_ids = itertools.count(FIRST_REFUND_ID)
        self.referrers: list[tuple[int, str]] = []  # (first order time, id) of opted-in buyers

    def customer(self, index: int, signed_up: int) -> list[tuple]:
        """The customer's events (time, type, person, extra) up to the end of the period."""
        rng = self.rng
        person = self._person(index, signed_up)
        events = [(signed_up, "customer.created", person, None)]
        if rng.random() < (UNSUBSCRIBE if person.accepts_marketing else LATE_OPT_IN):
            events.append((signed_up + _HOUR + _lognormal_seconds(rng, 60, 1.0), "customer.consent_changed",
                           person, not person.accepts_marketing))
        if rng.random() >= NEVER_BUY:
            events += self._orders(person, signed_up)
        return [e for e in events if e[0] < self.end]

    def _person(self, index: int, signed_up: int) -> Person:
        rng = self.rng
        locale = rng.choices(LOCALE_NAMES, cum_weights=LOCALE_CUM)[0]
        _, firsts, lasts = LOCALES[locale]
        (first, first_handle), (last, last_handle) = rng.choice(firsts), rng.choice(lasts)
        handle = f"{first_handle}.{last_handle}".replace("'", "")
        if rng.random() < NO_NAME:
            first = last = None
        return Person(
            id=str(FIRST_CUSTOMER_ID + index),
            email=f"{handle}{index}@{rng.choice(DOMAINS)}",
            first_name=first,
            last_name=last,
            accepts_marketing=rng.random() < ACCEPTS_MARKETING,
            locale=locale,
            created_at=signed_up,
            birthday=self._day(1950, 2006) if rng.random() < BIRTHDAY else None,
            anniversary=self._day(1985, self.start.year - 1) if rng.random() < ANNIVERSARY else None,
        )

    def _day(self, first_year: int, last_year: int) -> str:
        lo, hi = date(first_year, 1, 1).toordinal(), date(last_year, 12, 31).toordinal()
        return date.fromordinal(self.rng.randint(lo, hi)).isoformat()

    def _orders(self, person: Person, signed_up: int) -> list[tuple]:
        rng = self.rng
        if rng.random() < SAME_SESSION_FIRST_ORDER:
            at = signed_up + rng.randint(2 * _MINUTE, _HOUR)
        else:
            at = signed_up + _HOUR + _lognormal_seconds(rng, 3, 1.2)
        if at >= self.end:
            return []
        first_codes = self._first_order_codes(person, at)
        if person.accepts_marketing:
            self.referrers.append((at, person.id))
        events: list[tuple] = []
        favourites: list[Product] = []
        for n in range(MAX_ORDERS):
            if at >= self.end:
                break
            order = self._order(at, first_codes if n == 0 else self._promo(), favourites)
            favourites.extend(p for p, _ in order.lines if p.collections == ("coffee",))
            events.append((at, "order.created", person, order))
            paid_at = at + rng.randint(_MINUTE, 10 * _MINUTE)
            events.append((paid_at, "order.paid", person, order))
            roll = rng.random()
            refunded = roll < REFUND
            if refunded:
                events.append((paid_at + rng.randint(2 * _DAY, 20 * _DAY), "order.refunded", person,
                               (order, str(next(self.refund_ids)), self._refund_cents(order))))
            elif roll < REFUND + CANCEL:
                events.append((paid_at + rng.randint(_HOUR, 2 * _DAY), "order.cancelled", person, order))
            again = REPEAT[min(n, len(REPEAT) - 1)] / (2 if refunded else 1)
            if rng.random() >= again:
                break
            at += max(_DAY, _lognormal_seconds(rng, REPEAT_GAP_MEDIAN_DAYS, 0.8))
        return events

    def _first_order_codes(self, person: Person, at: int) -> tuple[str, ...]:
        roll = self.rng.random()
        if roll < SELF_REFERRED:
            return (referral_code(_CODES, self.shop, person.id),)
        if roll < SELF_REFERRED + REFERRED and self.referrers:
            for _ in range(5):  # the referrer must have had their invite (2 days after their first order)
                first_order_at, referrer = self.rng.choice(self.referrers)
                if first_order_at + 2 * _DAY < at:
                    return (referral_code(_CODES, self.shop, referrer),)
        return self._promo()

    def _promo(self) -> tuple[str, ...]:
        return (self.rng.choice(PROMO_CODES),) if self.rng.random() < PROMO else ()

    def _order(self, at: int, codes: tuple[str, ...], favourites: list[Product]) -> Order:
        rng = self.rng
        size = rng.choices(BASKET_SIZES, BASKET_WEIGHTS)[0]
        picked: dict[Product, int] = {}
        if favourites and rng.random() < 0.6:  # restock a coffee they liked
            picked[rng.choice(favourites)] = rng.choice((1, 1, 1, 2))
        while len(picked) < size:
            product = rng.choices(CATALOGUE, cum_weights=PRODUCT_CUM)[0]
            picked.setdefault(product, 1 if rng.random() < 0.85 else 2)
        lines = tuple(picked.items())
        items = sum(p.cents * q for p, q in lines)
        subtotal = items - (items // 10 if codes else 0)  # every code here is worth 10%
        shipping = 0 if subtotal >= FREE_SHIPPING_CENTS else SHIPPING_CENTS
        return Order(str(next(self.order_ids)), at, lines, codes, subtotal, subtotal + shipping)

    def _refund_cents(self, order: Order) -> int:
        if self.rng.random() < 0.7 or len(order.lines) == 1:
            return order.total
        product, _ = self.rng.choice(order.lines)
        return min(product.cents, order.total)
