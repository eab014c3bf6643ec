"""Builders for canonical events, customer states and small rule sets used by the engine tests.

Events are built from their JSON form with ``event_from_dict``, the way histories and RQ jobs
carry them, so the tests exercise the same parsing the worker does.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from functools import lru_cache

from plugin.engine import apply, decide, new_state, record
from plugin.engine.ruleset import Problems, Settings, compile_ruleset, for_shop, with_currency
from plugin.engine.state import CustomerState
from plugin.events import Event, event_from_dict
from plugin.rulefile import RULES_DIR, load_rules
from plugin.simulate import Simulator

SHOP = "brew-and-bean.myshopify.com"
REFERRAL_KEY = "brew-and-bean-referral-key"  # the shop's secret, as the worker passes it in
CODES = Settings(referral_key=REFERRAL_KEY)  # for referral_code(CODES, shop, customer)
T0 = datetime(2026, 3, 2, 10, 0, tzinfo=timezone.utc)  # a Monday morning

# product id -> (sku, title, price, collections), from a small coffee shop catalogue
PRODUCTS = {
    "8400000001": ("KW-COF-HOUSE", "House Blend 250g", "14.50", ["coffee"]),
    "8400000002": ("KW-COF-ETH", "Ethiopia Yirgacheffe 250g", "17.90", ["coffee"]),
    "8400000011": ("KW-BRW-V60", "Pour-Over Dripper", "24.00", ["brewing"]),
    "8400000013": ("KW-BRW-PRESS", "French Press 800ml", "39.00", ["brewing"]),
    "8400000015": ("KW-BRW-GRIND", "Burr Grinder", "129.00", ["brewing"]),
    "8400000019": ("KW-TEA-SEN", "Sencha 100g", "12.00", ["tea"]),
    "8400000024": ("KW-ACC-MUG", "Ceramic Mug", "16.00", ["accessories"]),
}
HOUSE_BLEND, ETHIOPIA, DRIPPER, FRENCH_PRESS, GRINDER, SENCHA, MUG = PRODUCTS


def day(n: float, hours: float = 0) -> datetime:
    """T0 plus ``n`` days (and hours)."""
    return T0 + timedelta(days=n, hours=hours)


def iso(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


def _event(kind: str, event_id: str, customer_id: str, at: datetime, shop: str = SHOP, **body) -> Event:
    d = {"id": event_id, "type": kind, "shop": shop, "customer_id": customer_id, "occurred_at": iso(at)}
    d.update({k: v for k, v in body.items() if v is not None})
    return event_from_dict(d)


def customer_created(customer_id: str, at: datetime, accepts_marketing: bool | None = True, *, email: str | None = None,
                     first_name: str | None = "Olivia", birthday: str | None = None, anniversary: str | None = None,
                     locale: str = "en", event_id: str | None = None, shop: str = SHOP) -> Event:
    customer = {"id": customer_id, "email": email or f"olivia.{customer_id}@example.com", "first_name": first_name,
                "last_name": "Clarke", "accepts_marketing": accepts_marketing, "locale": locale,
                "created_at": iso(at), "birthday": birthday, "anniversary": anniversary}
    return _event("customer.created", event_id or f"cc-{customer_id}", customer_id, at, shop,
                  customer={k: v for k, v in customer.items() if v is not None})


def customer_updated(customer_id: str, at: datetime, event_id: str | None = None, shop: str = SHOP, **fields) -> Event:
    return _event("customer.updated", event_id or f"cu-{customer_id}-{iso(at)}", customer_id, at, shop,
                  customer={"id": customer_id, **fields})


def consent_changed(customer_id: str, at: datetime, accepts_marketing: bool, event_id: str | None = None,
                    shop: str = SHOP) -> Event:
    return _event("customer.consent_changed", event_id or f"consent-{customer_id}-{iso(at)}", customer_id, at, shop,
                  customer={"id": customer_id, "email": f"olivia.{customer_id}@example.com",
                            "accepts_marketing": accepts_marketing})


def _line(product_id: str, quantity: int = 1, currency: str = "USD") -> dict:
    sku, title, price, collections = PRODUCTS[product_id]
    return {"product_id": product_id, "variant_id": "44" + product_id[2:], "sku": sku, "title": title,
            "quantity": quantity, "price": f"{price} {currency}", "collections": collections}


def order_dict(order_id: str, created: datetime, products=(HOUSE_BLEND,), total: str | None = None,
               codes=(), currency: str = "USD", attributes: dict | None = None) -> dict:
    lines = [_line(p, 1, currency) for p in products]
    if total is None:
        cents = sum(int(PRODUCTS[p][2].replace(".", "")) for p in products)
        total = f"{cents // 100}.{cents % 100:02d} {currency}"
    return {"id": order_id, "created_at": iso(created), "number": f"#{order_id[-4:]}", "total": total,
            "subtotal": total, "discount_codes": list(codes), "line_items": lines,
            "attributes": [[k, v] for k, v in (attributes or {}).items()]}


def order_created(customer_id: str, order_id: str, at: datetime, products=(HOUSE_BLEND,), total: str | None = None,
                  codes=(), currency: str = "USD", event_id: str | None = None, shop: str = SHOP) -> Event:
    return _event("order.created", event_id or f"oc-{order_id}", customer_id, at, shop,
                  order=order_dict(order_id, at, products, total, codes, currency))


def order_paid(customer_id: str, order_id: str, at: datetime, products=(HOUSE_BLEND,), total: str | None = None,
               codes=(), currency: str = "USD", created: datetime | None = None, event_id: str | None = None,
               shop: str = SHOP, attributes: dict | None = None) -> Event:
    """An order paid at ``at`` (placed at ``created``, default a few minutes earlier); ``attributes``
    are its checkout fields (e.g. the occasion question's answers)."""
    created = created or at - timedelta(minutes=4)
    return _event("order.paid", event_id or f"op-{order_id}", customer_id, at, shop,
                  order=order_dict(order_id, created, products, total, codes, currency, attributes))


def order_refunded(customer_id: str, order_id: str, at: datetime, total: str, refunded: str | None = None,
                   refund_id: str | None = None, created: datetime | None = None, event_id: str | None = None,
                   shop: str = SHOP) -> Event:
    order = {"id": order_id, "total": total, "refunded": refunded or total}
    if created is not None:
        order["created_at"] = iso(created)
    refund_id = refund_id or f"93{order_id}"
    return _event("order.refunded", event_id or f"or-{refund_id}", customer_id, at, shop, order=order,
                  data={"refund_id": refund_id})


def order_cancelled(customer_id: str, order_id: str, at: datetime, total: str, created: datetime | None = None,
                    event_id: str | None = None, shop: str = SHOP) -> Event:
    order = {"id": order_id, "total": total}
    if created is not None:
        order["created_at"] = iso(created)
    return _event("order.cancelled", event_id or f"ox-{order_id}", customer_id, at, shop, order=order)


def state_after(events, customer_id: str | None = None, shop: str = SHOP, prefix: str = "REF") -> CustomerState:
    """The customer's state folded from ``events`` in the given order."""
    events = list(events)
    state = new_state(shop, customer_id or events[0].customer_id)
    for e in events:
        state = apply(state, e, prefix)
    return state


def rules_from(rules: list[dict], settings: dict | None = None):
    """A RuleSet compiled from rule documents (raises AssertionError listing problems)."""
    data = {"rules": rules}
    if settings is not None:
        data["settings"] = settings
    problems = Problems()
    ruleset = compile_ruleset([("test.yaml", data)], None, problems)
    assert ruleset is not None, problems.items
    return for_shop(ruleset, REFERRAL_KEY)


@lru_cache(maxsize=4)
def shipped_rules(currency: str = "USD"):
    """The shipped packs as a store in ``currency`` runs them."""
    return with_currency(for_shop(load_rules(RULES_DIR), REFERRAL_KEY), currency)


class Shell:
    """A minimal driver for unit tests: fold, decide, record touches, keep every decision."""

    def __init__(self, rules, shop: str = SHOP):
        self.rules = rules
        self.shop = shop
        self.states: dict[str, CustomerState] = {}
        self.decisions = []

    def state(self, customer_id: str) -> CustomerState:
        return self.states.get(customer_id) or new_state(self.shop, customer_id)

    def handle(self, event: Event, now: datetime | None = None):
        """Decisions for ``event`` (touches are recorded into the customer's state)."""
        now = now or event.occurred_at
        state = apply(self.state(event.customer_id), event, self.rules.settings)
        out = decide(event, state, self.rules, now)
        for d in out:
            state = record(state, d)
        self.states[event.customer_id] = state
        self.decisions.extend(out)
        return out

    def fire(self, decision):
        """Feed a scheduled decision's timer back at its wake time."""
        return self.handle(decision.timer, decision.wake_at)


def run(events, rules=None, until: datetime | None = None) -> Simulator:
    """Replay ``events`` (sorted by time, stable) through the simulator up to ``until``."""
    sim = Simulator(rules or shipped_rules())
    for e in sorted(events, key=lambda e: e.occurred_at):
        sim.feed(e)
    sim.finish(until)
    return sim


def touches(sim: Simulator, customer_id: str | None = None, rule_id: str | None = None):
    """Touch decisions in the simulator's ledger, oldest first."""
    out = [d for d in sim.report.ledger.values()
           if (customer_id is None or d.customer_id == customer_id) and (rule_id is None or d.rule_id == rule_id)]
    return sorted(out, key=lambda d: (d.at, d.key))


def action(decision, kind: str):
    found = [a for a in decision.actions if a.type == kind]
    assert len(found) == 1, decision.actions
    return found[0]
