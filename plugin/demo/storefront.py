"""A storefront that plays two small stores against the running app, over HTTP.

Both stores send what the platforms send: signed webhooks whose bodies are the published
payload examples (plugin/demo/samples) with this story's people, money and dates. Shopify
deliveries carry X-Shopify-Event-Id (the same on every retry of one event) and are signed
with the app's secret; WooCommerce deliveries are the REST resource, signed with the shop's
webhook secret, with consent in the shop's consent meta key. The story (``script``) runs over
a few demo days: signups with and without marketing consent, first orders, repeat orders,
friends' first orders with a referrer's personal code, a refund, and re-sent deliveries that
the app must answer ``200 duplicate``.
"""
from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
import uuid
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Callable

import requests

from plugin.demo.cast import (BEANS, DRIPPER, ESPRESSO, GRINDER, KETTLE, MUGS, Delivery, Order, Person, Step,
                             StoreInfo)
from plugin.demo.payloads import CONSENT_META_KEY, Payloads, money
from plugin.engine.decisions import stable_percent

SHOPIFY_API_VERSION = "2026-10"
#: The store's webhook ids, one per subscribed topic (X-WC-Webhook-ID).
WOO_WEBHOOK_IDS = {"order.created": "12", "order.updated": "13", "customer.created": "14", "customer.updated": "15"}


def sign(secret: str, body: bytes) -> str:
    """Both platforms sign a webhook body the same way: base64 of HMAC-SHA256."""
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


class Storefront(Payloads):
    """Plays the demo stores' customers against the app at ``app_url``."""

    def __init__(self, shopify: StoreInfo, woocommerce: StoreInfo, shopify_secret: str, clock: Callable[[], datetime],
                 referral_code: Callable[[str, str], str | None], sandbox=None, ruleset=None):
        from plugin.rulefile import load_rules

        self.shopify, self.woocommerce, self.shopify_secret = shopify, woocommerce, shopify_secret
        self.clock = clock
        self.referral_code = referral_code  # (shop id, customer id) -> the code Keepwell gives that customer
        self.sandbox = sandbox  # the store API sandbox learns the customers and orders, as a store would
        self.rules = ruleset or load_rules()
        self.http = requests.Session()
        self.deliveries: list[Delivery] = []
        self.people: dict[str, Person] = {}
        self.orders: dict[str, Order] = {}
        self._order_ids = {"shopify": 5_820_000_000_001, "woocommerce": 1201}
        self._first_delivery: dict = {}  # (platform, topic, person key) -> (body, headers)
        self._cast()

    # --- the cast ----------------------------------------------------------------------------

    def _cast(self) -> None:
        """The customers, with ids chosen so the story is the same on every run: holdout groups
        are a stable hash of (shop, rule, customer), and the shop ids are new each run."""
        shopify = [("ava", "Ava", "Lindqvist", True), ("ben", "Ben", "Okafor", False),
                   ("chloe", "Chloé", "Martin", True), ("dan", "Dan", "Whitfield", True),
                   ("eve", "Eve", "Novak", False), ("finn", "Finn", "Gallagher", True)]
        woo = [("zoe", "Zoë", "Adeyemi", True), ("marco", "Marco", "Rossi", False), ("priya", "Priya", "Raman", True),
               ("omar", "Omar", "Haddad", True), ("lena", "Lena", "Vogel", True)]
        in_control_group = {"finn", "priya"}  # one customer per store in the icebreaker's control group
        next_id = {"shopify": 7_310_000_000_101, "woocommerce": 31}
        for platform, cast in (("shopify", shopify), ("woocommerce", woo)):
            shop = self._store(platform).shop_id
            for key, first, last, consent in cast:
                person = Person(key, platform, first, last, consent)
                n = next_id[platform]
                while not self._fits(shop, str(n), key in in_control_group):
                    n += 1
                person.id, next_id[platform] = str(n), n + 1
                self.people[key] = person

    def _fits(self, shop_id: str, customer_id: str, control: bool) -> bool:
        def held_out(rule_id: str) -> bool:
            rule = self.rules.by_id.get(rule_id)
            return bool(rule and rule.holdout and stable_percent(shop_id, rule_id, customer_id) < rule.holdout)

        return held_out("icebreaker") == control and not held_out("winback")

    def _store(self, platform: str) -> StoreInfo:
        return self.shopify if platform == "shopify" else self.woocommerce

    def code_of(self, key: str, platform: str) -> str:
        """The personal referral code Keepwell gives this customer (sent in their invite email)."""
        return self.referral_code(self._store(platform).shop_id, self.people[key].id)

    # --- the story -----------------------------------------------------------------------------

    def script(self) -> list[Step]:
        """What the stores' customers do, day by day (day 0 is when the demo starts)."""
        p = self.people
        S, W = "shopify", "woocommerce"

        def day0():
            for key in ("ava", "ben", "chloe", "finn"):
                self.signup(S, p[key])
            for key in ("zoe", "marco", "priya", "omar"):
                self.signup(W, p[key])
            # Ava's dripper is a gift: the cart's occasion question says for whom, when, remind me
            self.order(S, p["ava"], [(BEANS, 2), (DRIPPER, 1)],
                       occasion=self.occasion("birthday", days_ahead=12, recipient="Mum"))
            self.order(S, p["ben"], [(BEANS, 1), (MUGS, 1)])
            self.order(S, p["finn"], [(BEANS, 2), (MUGS, 1)])
            self.order(W, p["zoe"], [(BEANS, 2), (DRIPPER, 1)])
            self.order(W, p["marco"], [(BEANS, 1), (MUGS, 1)])
            # Stores re-send deliveries they are not sure arrived: each is answered "duplicate".
            self.resend(S, "orders/paid", self._last_order(p["ava"]))
            self.resend(S, "customers/create", p["ben"])
            self.resend(W, "customer.created", p["zoe"])
            self.resend(W, "order.created", self._last_order(p["marco"]))

        def day1():
            self.order(S, p["chloe"], [(ESPRESSO, 1), (BEANS, 2)])
            self.order(W, p["priya"], [(BEANS, 1), (KETTLE, 1)])
            self.order(W, p["omar"], [(ESPRESSO, 1), (BEANS, 1)])

        def day3():
            self.signup(S, p["dan"])
            self.order(S, p["dan"], [(BEANS, 2), (DRIPPER, 1)], code=self.code_of("ava", S))
            self.signup(W, p["lena"])
            self.order(W, p["lena"], [(BEANS, 1), (KETTLE, 1)], code=self.code_of("zoe", W))

        def day4():
            self.signup(S, p["eve"])
            self.order(S, p["eve"], [(GRINDER, 1), (BEANS, 1)], code=self.code_of("ava", S))

        def day5():
            self.order(S, p["chloe"], [(BEANS, 3), (MUGS, 1)])
            self.order(W, p["zoe"], [(BEANS, 1), (MUGS, 1)],
                       occasion=self.occasion("anniversary", days_ahead=10, recipient="Noa"))

        def day6():
            self.order(W, p["omar"], [(GRINDER, 1)])
            self.refund(S, self._last_order(p["eve"]))
            self.refund(W, self._last_order(p["marco"]), amount="18.00")
            self.resend(S, "refunds/create", self._last_order(p["eve"]))

        return [
            Step(0, "signups (Shopify opt-ins arrive as consent updates), first orders (Ava's a birthday gift), "
                    "4 re-sent deliveries", day0),
            Step(1, "first orders over 500 USD (VIP gold), another first order", day1),
            Step(3, "friends sign up and order with Ava's and Zoë's referral codes", day3),
            Step(4, "a second friend orders with Ava's code", day4),
            Step(5, "repeat orders from Chloé and Zoë (an anniversary gift: remind me next year)", day5),
            Step(6, "Omar orders again; Eve's order refunded in full, Marco's in part; a re-sent refund", day6),
        ]

    def occasion(self, kind: str, days_ahead: int, recipient: str) -> dict:
        """The checkout's answers to "what is it for?": Keepwell's field names, a date input's ISO date."""
        day = (self.clock() + timedelta(days=days_ahead)).date()
        return {"keepwell_occasion": kind, "keepwell_occasion_date": day.isoformat(),
                "keepwell_occasion_for": recipient, "keepwell_occasion_remind": "yes"}

    def _tell_store(self, what: str, *args) -> None:
        if self.sandbox is not None:
            getattr(self.sandbox, what)(*args)

    def _last_order(self, person: Person) -> Order:
        return [o for o in self.orders.values() if o.person is person][-1]

    # --- actions -------------------------------------------------------------------------------

    def signup(self, platform: str, person: Person) -> None:
        if platform == "shopify":
            body = self._shopify_customer(person)
            self._tell_store("add_customer", "shopify", person.id, body)
            self._post_shopify("customers/create", body, f"{person.name} signs up")
            if person.consent:  # since API 2025-01 consent is its own webhook, not in customers/create
                self._post_shopify("customers_email_marketing_consent/update", self._shopify_consent(person),
                                   f"{person.name} subscribes to email marketing")
        else:
            body = self._woo_customer(person)
            self._tell_store("add_customer", "woocommerce", person.id, body)
            self._post_woo("customer.created", body, f"{person.name} signs up")

    def order(self, platform: str, person: Person, items: list, code: str | None = None,
              occasion: dict | None = None) -> Order:
        oid = str(self._order_ids[platform])
        self._order_ids[platform] += 1
        order = Order(oid, person, items, code, self.clock(), occasion=occasion or {})
        self.orders[f"{platform}:{oid}"] = order
        self._tell_store("add_order", platform, oid, person.id)
        what = f"{person.name} pays order {oid} ({money(order.total)} USD{', code ' + code if code else ''})"
        if platform == "shopify":
            order.payload = self._shopify_order(order)
            self._post_shopify("orders/create", order.payload, what, order=order)
            self._post_shopify("orders/paid", order.payload, what, order=order)
        else:
            order.payload = self._woo_order(order)
            self._post_woo("order.created", order.payload, what, order=order)
        return order

    def refund(self, platform: str, order: Order, amount: str | None = None) -> None:
        amount = money(amount or order.total)
        what = f"{order.person.name}'s order {order.id} refunded ({amount} USD)"
        if platform == "shopify":
            self._post_shopify("refunds/create", self._shopify_refund(order, amount), what, order=order)
        else:
            body = copy.deepcopy(order.payload)
            now = self._woo_time(self.clock())
            body.update(date_modified=now, date_modified_gmt=now,
                        status="refunded" if Decimal(amount) >= order.total else body["status"])
            body["refunds"] = [{"id": int(order.id) * 10 + 1, "reason": "Changed my mind", "total": f"-{amount}"}]
            order.payload = body
            self._post_woo("order.updated", body, what, order=order)

    def resend(self, platform: str, topic: str, subject) -> None:
        """Deliver an earlier webhook again, as a store retrying it does."""
        if isinstance(subject, Order):
            body, headers = subject.deliveries[topic]
            what = f"re-sent {topic} of order {subject.id}"
        else:
            body, headers = self._first_delivery[(platform, topic, subject.key)]
            what = f"re-sent {topic} of {subject.name}"
        headers = dict(headers)
        if platform == "shopify":  # a retry is a new delivery (webhook id) of the same event (event id)
            headers["X-Shopify-Webhook-Id"] = str(uuid.uuid4())
            headers["X-Shopify-Triggered-At"] = self.clock().isoformat()
            self._send("shopify", self.shopify.webhook_url, topic, body, headers, what)
        else:
            headers["X-WC-Webhook-Delivery-ID"] = uuid.uuid4().hex
            self._send("woocommerce", self.woocommerce.webhook_url, topic, body, headers, what)

    # --- sending -------------------------------------------------------------------------------

    def _post_shopify(self, topic: str, payload: dict, what: str, order: Order | None = None) -> None:
        body = json.dumps(payload).encode()
        headers = {
            "Content-Type": "application/json",
            "X-Shopify-Topic": topic,
            "X-Shopify-Shop-Domain": self.shopify.domain,
            "X-Shopify-API-Version": SHOPIFY_API_VERSION,
            "X-Shopify-Webhook-Id": str(uuid.uuid4()),
            "X-Shopify-Event-Id": str(uuid.uuid4()),
            "X-Shopify-Triggered-At": self.clock().isoformat(),
            "X-Shopify-Hmac-Sha256": sign(self.shopify_secret, body),
        }
        self._remember("shopify", topic, order, payload, body, headers)
        self._send("shopify", self.shopify.webhook_url, topic, body, headers, what)

    def _post_woo(self, topic: str, payload: dict, what: str, order: Order | None = None) -> None:
        body = json.dumps(payload).encode()
        resource, event = topic.split(".")
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "WooCommerce/9.4.2 Hookshot (WordPress/6.7.1)",
            "X-WC-Webhook-Source": self.woocommerce.domain + "/",
            "X-WC-Webhook-Topic": topic,
            "X-WC-Webhook-Resource": resource,
            "X-WC-Webhook-Event": event,
            "X-WC-Webhook-ID": WOO_WEBHOOK_IDS[topic],
            "X-WC-Webhook-Delivery-ID": uuid.uuid4().hex,
            "X-WC-Webhook-Signature": sign(self.woocommerce.webhook_secret, body),
        }
        self._remember("woocommerce", topic, order, payload, body, headers)
        self._send("woocommerce", self.woocommerce.webhook_url, topic, body, headers, what)

    def _remember(self, platform, topic, order, payload, body, headers) -> None:
        if order is not None:
            order.deliveries.setdefault(topic, (body, headers))
        else:
            person = next((p for p in self.people.values() if p.platform == platform
                           and p.id == str(payload.get("id") or payload.get("customer_id"))), None)
            if person is not None:
                self._first_delivery.setdefault((platform, topic, person.key), (body, headers))

    def _send(self, platform: str, url: str, topic: str, body: bytes, headers: dict, what: str) -> None:
        try:
            r = self.http.post(url, data=body, headers=headers, timeout=10)
            try:
                answer = r.json()
            except ValueError:
                answer = {}
            status = answer.get("status") or answer.get("error") or r.text[:80] or str(r.status_code)
            self.deliveries.append(Delivery(platform, topic, what, r.status_code, status))
        except requests.RequestException as exc:
            self.deliveries.append(Delivery(platform, topic, what, 0, f"{type(exc).__name__}: {exc}"))

    # --- what happened -------------------------------------------------------------------------

    def summary(self, platform: str) -> dict:
        mine = [d for d in self.deliveries if d.platform == platform]
        return {
            "sent": len(mine),
            "accepted": sum(d.status == "accepted" for d in mine),
            "duplicates": [d for d in mine if d.status == "duplicate"],
            "other": [d for d in mine if d.status not in ("accepted", "duplicate")],
        }


__all__ = ["Storefront", "StoreInfo", "Person", "Order", "Delivery", "Step", "sign", "CONSENT_META_KEY"]
