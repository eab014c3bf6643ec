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
import unicodedata
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Iterator

from plugin.engine.referral import referral_code
from plugin.engine.ruleset import Settings

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

# Reserved example domains (RFC 2606): a generated address can never reach a real inbox.
_DOMAINS = ("example.com", "example.net", "example.org")


@dataclass(frozen=True, slots=True)
class Product:
    id: str
    variant_id: str
    sku: str
    title: str
    cents: int
    collections: tuple[str, ...]
    weight: int  # popularity


def _catalogue() -> tuple[Product, ...]:
    rows = [  # (sku, title, price, collections, popularity)
        ("COF-HOUSE", "House Blend 250g", "14.50", ("coffee",), 30),
        ("COF-ETH", "Ethiopia Yirgacheffe 250g", "17.90", ("coffee",), 18),
        ("COF-COL", "Colombia Huila 250g", "16.50", ("coffee",), 16),
        ("COF-DECAF", "Decaf Swiss Water 250g", "15.50", ("coffee",), 8),
        ("COF-ESP1K", "Espresso Roast 1kg", "44.00", ("coffee",), 10),
        ("COF-GUA", "Guatemala Antigua 250g", "16.90", ("coffee",), 9),
        ("COF-KEN", "Kenya AA 250g", "19.50", ("coffee",), 8),
        ("COF-SUM", "Sumatra Mandheling 250g", "17.50", ("coffee",), 6),
        ("COF-BRA", "Brazil Santos 250g", "13.90", ("coffee",), 10),
        ("COF-COLD", "Cold Brew Blend 250g", "15.90", ("coffee",), 7),
        ("BRW-V60", "Pour-Over Dripper", "24.00", ("brewing",), 6),
        ("BRW-FILT", "Paper Filters x100", "6.50", ("brewing",), 9),
        ("BRW-PRESS", "French Press 800ml", "39.00", ("brewing",), 5),
        ("BRW-KETTLE", "Gooseneck Kettle", "59.00", ("brewing",), 3),
        ("BRW-GRIND", "Burr Grinder", "129.00", ("brewing",), 2),
        ("BRW-AERO", "AeroPress", "39.95", ("brewing",), 4),
        ("BRW-MOKA", "Moka Pot 6 cup", "34.00", ("brewing",), 3),
        ("BRW-JAR", "Cold Brew Jar 1l", "29.00", ("brewing",), 2),
        ("TEA-SEN", "Sencha 100g", "12.00", ("tea",), 5),
        ("TEA-EARL", "Earl Grey 100g", "10.50", ("tea",), 6),
        ("TEA-CHAM", "Chamomile 50g", "9.50", ("tea",), 3),
        ("TEA-CHAI", "Chai Masala 100g", "11.50", ("tea",), 4),
        ("TEA-MATCHA", "Ceremonial Matcha 50g", "24.00", ("tea",), 3),
        ("ACC-MUG", "Ceramic Mug", "16.00", ("accessories",), 6),
        ("ACC-TUMB", "Travel Tumbler", "28.00", ("accessories",), 4),
        ("ACC-SCALE", "Digital Scale", "35.00", ("accessories", "brewing"), 2),
        ("ACC-FROTH", "Milk Frother", "22.00", ("accessories",), 3),
        ("GFT-DISC", "Coffee Discovery Box", "49.00", ("gifts", "coffee"), 5),
        ("GFT-TEA", "Tea Sampler", "29.00", ("gifts", "tea"), 3),
        ("GFT-KIT", "Brewing Starter Kit", "79.00", ("gifts", "brewing"), 2),
    ]
    return tuple(
        Product(id=str(8_400_000_001 + i), variant_id=str(44_100_000_001 + i), sku=f"KW-{sku}", title=title,
                cents=_cents(price), collections=cols, weight=w)
        for i, (sku, title, price, cols, w) in enumerate(rows)
    )


def _cents(price: str) -> int:
    whole, _, frac = price.partition(".")
    return int(whole) * 100 + int(frac.ljust(2, "0"))


CATALOGUE = _catalogue()
_PRODUCT_CUM = tuple(itertools.accumulate(p.weight for p in CATALOGUE))
_COFFEES = tuple(p for p in CATALOGUE if p.collections == ("coffee",))


def _latin(names: str) -> tuple[tuple[str, str], ...]:
    """(display, ascii handle) pairs for Latin-script names; accents drop out of the handle."""
    return tuple((n, unicodedata.normalize("NFKD", n).encode("ascii", "ignore").decode().lower()) for n in names.split())


# locale -> (weight, first names, last names); non-Latin scripts carry a romanized handle for the email.
LOCALES = {
    "en": (55, _latin("James Olivia Liam Emma Noah Ava Sophia Mason Harper Ethan Grace Chloe"),
           _latin("Smith Johnson Brown Taylor Wilson Clarke Walker O'Neill Murphy Patel")),
    "fr": (10, _latin("Zoé Léa Chloé Hélène François Jérôme Amélie Théo Gaëlle Noël"),
           _latin("Lefèvre Dubois Moreau Girard Bérard Faure Rousseau")),
    "de": (9, _latin("Jürgen Jörg Käthe Björn Lukas Mia Sören Anja Günter"),
           _latin("Müller Schäfer Groß Weiß Köhler Becker")),
    "es": (8, _latin("José María Sofía Nicolás Inés Martín Lucía Álvaro"),
           _latin("García Núñez Peña Rodríguez Ibáñez Martínez")),
    "pt-BR": (5, _latin("João Conceição Luíza Gonçalo Ana Tânia"),
              _latin("Gonçalves Simões Araújo Souza")),
    "ar": (5, (("محمد", "mohammed"), ("فاطمة", "fatima"), ("أحمد", "ahmed"), ("ليلى", "layla"), ("يوسف", "youssef"), ("مريم", "maryam")),
           (("العلي", "alali"), ("حداد", "haddad"), ("خوري", "khoury"), ("منصور", "mansour"))),
    "he": (4, (("נועה", "noa"), ("דוד", "david"), ("תמר", "tamar"), ("יוסף", "yosef"), ("מיכל", "michal"), ("אריאל", "ariel")),
           (("כהן", "cohen"), ("לוי", "levi"), ("מזרחי", "mizrahi"), ("פרץ", "peretz"))),
    "ja": (4, (("陽翔", "haruto"), ("さくら", "sakura"), ("結衣", "yui"), ("蓮", "ren"), ("ひなた", "hinata"), ("翔太", "shota")),
           (("佐藤", "sato"), ("鈴木", "suzuki"), ("高橋", "takahashi"), ("田中", "tanaka"))),
}
_LOCALE_NAMES = tuple(LOCALES)
_LOCALE_CUM = tuple(itertools.accumulate(w for w, _, _ in LOCALES.values()))


@dataclass(frozen=True, slots=True)
class _Person:
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
class _Order:
    id: str
    created_at: int
    lines: tuple[tuple[Product, int], ...]  # (product, quantity)
    codes: tuple[str, ...]
    subtotal: int  # cents, after discounts
    total: int  # cents, subtotal + shipping


def generate(customers: int, seed: int = 1, start: datetime | None = None, days: int = 365,
             shop: str = "demo.myshopify.com", currency: str = "USD") -> Iterator[dict]:
    """Yield canonical event dicts (the JSON form event_from_dict accepts), in time order."""
    start = _utc(start or DEFAULT_START)
    rng = random.Random(seed)
    store = _Store(rng, shop, start, days * _DAY)
    out = _Writer(shop, currency, start, f"s{seed}")
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

    def _person(self, index: int, signed_up: int) -> _Person:
        rng = self.rng
        locale = rng.choices(_LOCALE_NAMES, cum_weights=_LOCALE_CUM)[0]
        _, firsts, lasts = LOCALES[locale]
        (first, first_handle), (last, last_handle) = rng.choice(firsts), rng.choice(lasts)
        handle = f"{first_handle}.{last_handle}".replace("'", "")
        if rng.random() < NO_NAME:
            first = last = None
        return _Person(
            id=str(FIRST_CUSTOMER_ID + index),
            email=f"{handle}{index}@{rng.choice(_DOMAINS)}",
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

    def _orders(self, person: _Person, signed_up: int) -> list[tuple]:
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

    def _first_order_codes(self, person: _Person, at: int) -> tuple[str, ...]:
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

    def _order(self, at: int, codes: tuple[str, ...], favourites: list[Product]) -> _Order:
        rng = self.rng
        size = rng.choices(BASKET_SIZES, BASKET_WEIGHTS)[0]
        picked: dict[Product, int] = {}
        if favourites and rng.random() < 0.6:  # restock a coffee they liked
            picked[rng.choice(favourites)] = rng.choice((1, 1, 1, 2))
        while len(picked) < size:
            product = rng.choices(CATALOGUE, cum_weights=_PRODUCT_CUM)[0]
            picked.setdefault(product, 1 if rng.random() < 0.85 else 2)
        lines = tuple(picked.items())
        items = sum(p.cents * q for p, q in lines)
        subtotal = items - (items // 10 if codes else 0)  # every code here is worth 10%
        shipping = 0 if subtotal >= FREE_SHIPPING_CENTS else SHIPPING_CENTS
        return _Order(str(next(self.order_ids)), at, lines, codes, subtotal, subtotal + shipping)

    def _refund_cents(self, order: _Order) -> int:
        if self.rng.random() < 0.7 or len(order.lines) == 1:
            return order.total
        product, _ = self.rng.choice(order.lines)
        return min(product.cents, order.total)


class _Writer:
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

    def event(self, at: int, seq: int, kind: str, person: _Person, extra) -> dict:
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

    def customer(self, p: _Person) -> dict:
        c = {"id": p.id, "email": p.email, "accepts_marketing": p.accepts_marketing, "locale": p.locale,
             "created_at": self.time(p.created_at)}
        for name in ("first_name", "last_name", "birthday", "anniversary"):
            value = getattr(p, name)
            if value is not None:
                c[name] = value
        return c

    def order(self, o: _Order) -> dict:
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
