"""A running Keepwell for end-to-end tests: the real app, a real RQ worker on a real Redis,
a real database (SQLite or PostgreSQL) and a real SMTP server; only the store APIs are mocked,
at the HTTP layer, with `responses`."""
from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from redis import Redis
from sqlalchemy import text

from plugin import runtime as runtime_module
from plugin.app import create_app
from plugin.config import Config
from plugin.db import Base, sessions, upgrade
from plugin.pipeline import Runtime
from plugin.worker import Worker

PLATFORM_SAMPLES = Path(__file__).resolve().parent / "fixtures"
SHOPIFY_SECRET = "shpss_test_app_secret"


def load_json(*parts) -> dict:
    return json.loads(PLATFORM_SAMPLES.joinpath(*parts).read_text())


def sign(secret: str, body: bytes) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


class Clock:
    """A settable clock for the worker (RQ's own scheduler keeps real time)."""

    def __init__(self, now: datetime | None = None):
        self.now = now or datetime.now(timezone.utc)

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Live:
    config: Config
    rt: Runtime
    app: object
    client: object
    smtp: object
    clock: Clock

    def work(self) -> None:
        """Run `keepwell worker`'s worker class in this process until the queue is empty."""
        Worker([self.rt.queue], connection=self.rt.redis).work(burst=True, with_scheduler=False)

    def add_shop(self, platform: str, domain: str, **kw):
        from plugin.shops import add_shop

        with self.rt.sessions.begin() as session:
            row, secret = add_shop(session, self.config, platform, domain, **kw)
            return row.id, secret

    def post_shopify(self, topic: str, payload: dict, domain: str, webhook_id: str | None = None,
                     event_id: str | None = None, secret: str = SHOPIFY_SECRET):
        body = json.dumps(payload).encode()
        headers = {"X-Shopify-Topic": topic, "X-Shopify-Shop-Domain": domain, "X-Shopify-API-Version": "2026-10",
                   "X-Shopify-Webhook-Id": webhook_id or str(uuid.uuid4()), "X-Shopify-Hmac-Sha256": sign(secret, body),
                   "Content-Type": "application/json"}
        if event_id:
            headers["X-Shopify-Event-Id"] = event_id
        return self.client.post("/webhooks/shopify", data=body, headers=headers)

    def post_woocommerce(self, shop_id: str, secret: str, topic: str, payload: dict):
        body = json.dumps(payload).encode()
        resource, event = topic.split(".")
        headers = {"X-WC-Webhook-Topic": topic, "X-WC-Webhook-Resource": resource, "X-WC-Webhook-Event": event,
                   "X-WC-Webhook-Signature": sign(secret, body), "X-WC-Webhook-ID": "31",
                   "X-WC-Webhook-Delivery-ID": uuid.uuid4().hex, "X-WC-Webhook-Source": "https://store.example/",
                   "Content-Type": "application/json"}
        return self.client.post(f"/webhooks/woocommerce/{shop_id}", data=body, headers=headers)

    def rows(self, model, **where):
        from sqlalchemy import select

        with self.rt.sessions() as session:
            q = select(model)
            for k, v in where.items():
                q = q.where(getattr(model, k) == v)
            return session.scalars(q).all()


def start(redis_url: str, database_url: str, smtp, **overrides) -> Live:
    """``overrides`` replace Config fields (e.g. max_webhook_bytes, smtp_url, shopify_api_secrets)."""
    settings = dict(redis_url=redis_url, database_url=database_url, smtp_url=smtp.url, app_url="https://keepwell.test",
                    shopify_api_secrets=(SHOPIFY_SECRET,), queue=f"kwt{uuid.uuid4().hex[:8]}",
                    secret_keys=("test-secret-key",), mail_from="Keepwell Demo <shop@keepwell.test>")
    config = Config(**{**settings, **overrides})
    upgrade(database_url)
    clock = Clock()
    rt = Runtime(config=config, sessions=sessions(database_url), redis=Redis.from_url(redis_url), clock=clock)
    runtime_module.install(rt)
    app = create_app(config)
    return Live(config, rt, app, app.test_client(), smtp, clock)


def stop(live: Live) -> None:
    runtime_module.install(None)
    live.rt.redis.flushdb()
    engine = live.rt.sessions.kw["bind"]
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            names = ", ".join(t.name for t in Base.metadata.sorted_tables)
            conn.execute(text(f"TRUNCATE {names} CASCADE"))


def woo_order(order_id=727, customer_id=25, email="john.doe@example.com", status="processing", total="64.90",
              modified="2026-11-20T10:00:00", coupons=(), consent="yes", refunds=()):
    """The WooCommerce docs' order example, made a paid order of a registered customer."""
    o = copy.deepcopy(load_json("woocommerce", "rest-v3-docs-examples", "order_create_response.json"))
    o.update(id=order_id, customer_id=customer_id, status=status, total=total, date_modified_gmt=modified,
             date_created_gmt=modified, date_paid_gmt=modified if status in ("processing", "completed") else None)
    o["billing"]["email"] = email
    # the customer's own phone and address: the docs' example gives everyone the same ones, which
    # would make every referral a self-referral
    o["billing"].update(phone=f"(555) 010-{int(customer_id) % 10000:04d}", address_1=f"{customer_id} Market St")
    o["shipping"]["address_1"] = f"{customer_id} Market St"
    o["coupon_lines"] = [{"id": i, "code": c, "discount": "5.00", "discount_tax": "0.00"} for i, c in enumerate(coupons)]
    o["meta_data"] = [{"id": 1, "key": "_keepwell_marketing_opt_in", "value": consent}]
    o["refunds"] = list(refunds)
    return o


def woo_customer(customer_id=25, email="john.doe@example.com", first_name="John", consent="yes",
                 modified="2026-11-20T09:00:00"):
    c = copy.deepcopy(load_json("woocommerce", "rest-v3-docs-examples", "customer_create_response.json"))
    c.update(id=customer_id, email=email, first_name=first_name, date_modified_gmt=modified, date_created_gmt=modified)
    c["meta_data"] = [{"id": 1, "key": "_keepwell_marketing_opt_in", "value": consent}]
    return c


# --- shared pieces of the end-to-end suites (tests/test_live_*.py) --------------------------------

import re  # noqa: E402
from contextlib import contextmanager  # noqa: E402
from datetime import timedelta  # noqa: E402
from itertools import count  # noqa: E402
from urllib.parse import parse_qs, urlsplit  # noqa: E402

import requests  # noqa: E402
import responses  # noqa: E402
from rq.registry import (DeferredJobRegistry, FailedJobRegistry, ScheduledJobRegistry,  # noqa: E402
                         StartedJobRegistry)

FIXTURES = Path(__file__).resolve().parent / "fixtures"
SHOPIFY_API_VERSION = "2026-10"


class InProcessWorker(Worker):
    """`keepwell worker`'s worker class without its pub/sub command thread (used to stop a job from outside, not
    needed here): stopping that thread costs 0.2 s per burst, most of a pack test's time."""

    def subscribe(self):
        pass

    def unsubscribe(self):
        pass


def work(live: Live) -> None:
    """Live.work(): a real RQ worker in this process until the queue is empty."""
    InProcessWorker([live.rt.queue], connection=live.rt.redis).work(burst=True, with_scheduler=False)


#: The end-to-end suites use their own Redis database and delete only their own keys afterwards:
#: stop() flushes database 13, and another test run (the demo, the smoke test, a second session)
#: sharing that database would lose its queue in the middle of a test.
LIVE_REDIS_DB = 12


def live_redis(redis_server: str) -> str:
    return f"{redis_server.rsplit('/', 1)[0]}/{LIVE_REDIS_DB}"


@contextmanager
def running(request, redis_server, smtp, tmp_path, **overrides):
    """A started Live for a ``params=["sqlite", "postgres"]`` fixture; cleaned up afterwards."""
    db = getattr(request, "param", "sqlite")
    url = f"sqlite:///{tmp_path}/keepwell.db" if db == "sqlite" else request.getfixturevalue("postgres_url")
    live = start(live_redis(redis_server), url, smtp, **overrides)
    try:
        yield live
    finally:
        finish(live)


def finish(live: Live) -> None:
    """stop() without FLUSHDB: delete this test's keys only (its queue, backlogs and jobs)."""
    from rq.registry import CanceledJobRegistry, FinishedJobRegistry

    runtime_module.install(None)
    r, q = live.rt.redis, live.config.queue
    ids = set(job_ids(live)) | set(FinishedJobRegistry(queue=live.rt.queue).get_job_ids()) \
        | set(CanceledJobRegistry(queue=live.rt.queue).get_job_ids())
    keys = set(r.scan_iter(match=f"*{q}*", count=1000))
    for job_id in ids:
        keys.update(r.scan_iter(match=f"rq:*{job_id}*", count=1000))
    if keys:
        r.delete(*keys)
    r.srem("rq:queues", f"rq:queue:{q}")
    engine = live.rt.sessions.kw["bind"]
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            names = ", ".join(t.name for t in Base.metadata.sorted_tables)
            conn.execute(text(f"TRUNCATE {names} CASCADE"))


def iso(t: datetime) -> str:
    """An aware time as Shopify writes it (offset included)."""
    return t.isoformat(timespec="seconds")


def gmt(t: datetime) -> str:
    """An aware time as WooCommerce writes its *_gmt fields (UTC, no offset)."""
    return t.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")


# --- the queue and the backlog ------------------------------------------------------------------

def backlog(live: Live, shop_id: str) -> int:
    """Entries waiting in the shop's backlog and its lanes (and those a drain holds)."""
    return live.rt.handoff.pending(shop_id)


def job_ids(live: Live) -> list[str]:
    """Every RQ job this test's queue knows of: queued, scheduled, started, deferred, failed."""
    q = live.rt.queue
    ids = list(q.get_job_ids())
    for registry in (ScheduledJobRegistry, StartedJobRegistry, DeferredJobRegistry, FailedJobRegistry):
        ids += registry(queue=q).get_job_ids()
    return ids


def scheduled(live: Live, func: str = "plugin.jobs.execute") -> list:
    """(job, scheduled time) of the queue's scheduled jobs that call ``func`` (e.g. a retry)."""
    reg = ScheduledJobRegistry(queue=live.rt.queue)
    out = []
    for job_id in reg.get_job_ids():
        job = live.rt.queue.fetch_job(job_id)
        if job is not None and job.func_name == func:
            out.append((job, reg.get_scheduled_time(job_id)))
    return out


def run_scheduled(live: Live, func: str = "plugin.jobs.execute") -> int:
    """Move the scheduled jobs that call ``func`` to the queue now, as RQ's scheduler does when
    they are due, then work the queue; returns how many were moved."""
    reg = ScheduledJobRegistry(queue=live.rt.queue)
    jobs = scheduled(live, func)
    for job, _ in jobs:
        reg.requeue(job.id)
    work(live)
    return len(jobs)


def advance(live: Live, to: datetime) -> int:
    """Move the worker's clock to ``to``, fire every due timer (as tick does) and work the queue."""
    from plugin.pipeline import sweep_timers

    live.clock.now = to
    fired = sweep_timers(live.rt)
    work(live)
    return fired


# --- the ledger and the mailbox -----------------------------------------------------------------

def decisions(live: Live, rule_id: str, customer_id: str | None = None) -> list:
    from plugin.db import DecisionRow

    where = {"rule_id": rule_id}
    if customer_id is not None:
        where["customer_id"] = customer_id
    return live.rows(DecisionRow, **where)


def effects(live: Live, decision) -> dict:
    """The decision's effect rows by type (one of each in the shipped packs)."""
    from plugin.db import EffectRow

    return {e.type: e for e in live.rows(EffectRow, decision_key=decision.key)}


def done_touch(live: Live, rule_id: str, customer_id: str):
    """(decision, effects by type) of the one touch ``rule_id`` made for the customer, checked done."""
    touches = [d for d in decisions(live, rule_id, customer_id) if d.kind == "touch"]
    assert len(touches) == 1, [(d.kind, d.reason, d.status, d.detail) for d in decisions(live, rule_id, customer_id)]
    d = touches[0]
    assert d.status == "done", (d.status, d.error)
    found = effects(live, d)
    assert all(e.status == "done" for e in found.values()), {t: (e.status, e.error) for t, e in found.items()}
    return d, found


def mails_to(live: Live, address: str) -> list:
    return [m for m in live.smtp.messages if m["To"].addresses[0].addr_spec == address]


def text_and_html(msg) -> tuple[str, str]:
    return msg.get_body(("plain",)).get_content(), msg.get_body(("html",)).get_content()


def unsubscribe_path(msg) -> str:
    """The one-click link of a message's List-Unsubscribe header, as a path on the app."""
    url = re.fullmatch(r"<([^>]+)>", str(msg["List-Unsubscribe"]).strip()).group(1)
    return urlsplit(url).path


def check_email(live: Live, msg, *, to: str, subject: str, code: str | None, effect=None) -> None:
    """A delivered touch email: addressee, subject, the coupon code in both parts, one-click
    unsubscribe (RFC 8058) on this app, and the Message-ID the ledger recorded."""
    assert msg["To"].addresses[0].addr_spec == to
    assert subject in msg["Subject"], msg["Subject"]
    text, html = text_and_html(msg)
    if code is not None:
        assert code in text and code in html, (code, text)
    assert str(msg["List-Unsubscribe"]).startswith(f"<{live.config.app_url}/unsubscribe/")
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    if effect is not None:
        assert effect.message_id == msg["Message-ID"]


def outside_holdout(shop_id: str, start: int, *rule_ids: str) -> str:
    """The first customer id from ``start`` whom none of the shipped ``rule_ids`` holds out, so a
    test does not depend on which 10 % control group a random shop id puts its customer in."""
    from plugin.engine.decisions import stable_percent
    from plugin.rulefile import RULES_DIR
    from plugin.shops import compile_files, read_rule_dir

    rules = compile_files(read_rule_dir(RULES_DIR)).by_id
    n = start
    while any(stable_percent(shop_id, r, str(n)) < rules[r].holdout for r in rule_ids):
        n += 1
    return str(n)


def install_pack_variant(live: Live, shop_id: str, file_name: str, text: str) -> None:
    """Push a rule set that is the shipped one with ``file_name`` replaced (as `rules push` does)."""
    from plugin.rulefile import RULES_DIR
    from plugin.shops import install_rules, read_rule_dir

    files = {**read_rule_dir(RULES_DIR), file_name: text}
    with live.rt.sessions.begin() as session:
        install_rules(session, shop_id, files)


# --- Shopify: webhook payloads and a GraphQL Admin API behind `responses` -------------------------

def shopify_sample(name: str) -> dict:
    return load_json("shopify", "webhooks", f"2026-04__{name}.payload.json")


def shopify_order(order_id: int, customer_id: str, at: datetime, *, email="ana.silva@example.com", first_name="Ana",
                  total="120.00", currency="USD", codes=(), accepts_marketing=True, product_id=9182736450918273645):
    """tests/fixtures/shopify/order_paid.json (a realistic paid order) for this order and customer."""
    o = json.loads((FIXTURES / "shopify" / "order_paid.json").read_text())
    o.update(id=order_id, admin_graphql_api_id=f"gid://shopify/Order/{order_id}", email=email, contact_email=email,
             currency=currency, presentment_currency=currency, total_price=total, current_total_price=total,
             subtotal_price=total, total_discounts="0.00", buyer_accepts_marketing=accepts_marketing,
             created_at=iso(at), processed_at=iso(at), updated_at=iso(at + timedelta(seconds=4)),
             name=f"#{order_id % 100000}", order_number=order_id % 100000,
             discount_codes=[{"code": c, "amount": "5.00", "type": "percentage"} for c in codes])
    o["total_price_set"] = {side: {"amount": total, "currency_code": currency} for side in ("shop_money", "presentment_money")}
    o["customer"].update(id=int(customer_id), admin_graphql_api_id=f"gid://shopify/Customer/{customer_id}", email=email,
                         first_name=first_name, currency=currency, updated_at=iso(at))
    o["line_items"][0]["product_id"] = product_id
    return o


def shopify_customer(customer_id: str, at: datetime, *, email="bob@biller.com", first_name="Bob") -> dict:
    """The official customers/create sample for this customer (no consent: 2025-01 removed it)."""
    c = shopify_sample("customers_create")
    c.update(id=int(customer_id), admin_graphql_api_id=f"gid://shopify/Customer/{customer_id}", email=email,
             first_name=first_name, created_at=iso(at), updated_at=iso(at))
    return c


def shopify_consent(customer_id: str, at: datetime, state="subscribed", email="bob@biller.com") -> dict:
    """The official customers_email_marketing_consent/update sample for this customer."""
    c = shopify_sample("customers_email_marketing_consent_update")
    c.update(customer_id=int(customer_id), email_address=email)
    c["email_marketing_consent"] = {"state": state, "opt_in_level": "single_opt_in", "consent_updated_at": iso(at)}
    return c


def shopify_refund(refund_id: int, order_id: int, at: datetime, amount="20.00", currency="USD") -> dict:
    r = json.loads((FIXTURES / "shopify" / "refund_create.json").read_text())
    r.update(id=refund_id, admin_graphql_api_id=f"gid://shopify/Refund/{refund_id}", order_id=order_id,
             created_at=iso(at), processed_at=iso(at))
    for t in r.get("transactions") or ():
        t["order_id"] = order_id
        if t.get("status") == "success":
            t["amount"] = amount
    for li in r.get("refund_line_items") or ():
        for side in ("shop_money", "presentment_money"):
            li.get("subtotal_set", {}).get(side, {})["currency_code"] = currency
    return r


def gql_cost(requested=10, available=990.0, restore=100.0, actual=10) -> dict:
    return {"cost": {"requestedQueryCost": requested, "actualQueryCost": actual,
                     "throttleStatus": {"maximumAvailable": 2000.0, "currentlyAvailable": available,
                                        "restoreRate": restore}}}


def gql_ok(data: dict) -> dict:
    return {"data": data, "extensions": gql_cost()}


def gql_throttled(requested=112, available=12.0, restore=50.0) -> dict:
    """What Shopify answers (HTTP 200) when the query-cost bucket is empty."""
    return {"errors": [{"message": "Throttled", "extensions": {
                "code": "THROTTLED", "documentation": "https://shopify.dev/api/usage/rate-limits"}}],
            "extensions": gql_cost(requested=requested, available=available, restore=restore, actual=None)}


class FakeShopify:
    """One shop's GraphQL Admin API, mocked at the HTTP layer: discount codes are unique (a second
    create answers Shopify's TAKEN user error), tags accumulate; ``fail_next`` queues raw answers."""

    def __init__(self, rsps, domain: str, token: str):
        self.url = f"https://{domain}/admin/api/{SHOPIFY_API_VERSION}/graphql.json"
        self.token = token
        self.discounts: dict[str, dict] = {}  # code -> DiscountCodeBasicInput
        self.creates: list[str] = []  # every code a create was asked for
        self.tags: list[tuple[str, list]] = []
        self.orders: dict[str, str | None] = {}  # order id -> customer id (refund lookups)
        self.products: dict[str, dict] = {}  # product id -> {"tags": [...], "collections": {handle: numeric id}}
        self.collections: dict[str, str] = {}  # handle -> numeric id
        self.calls: list[tuple[str, dict]] = []  # (operation, variables)
        self.failures: list[tuple[int, dict, object]] = []
        self.lose: list[str] = []  # operations whose next answer is lost after the store acted
        #: customer id -> (marketingState, marketingUpdatedAt); a customer not listed has NOT_SUBSCRIBED
        self.consents: dict[str, tuple[str, str | None]] = {}
        #: customer id -> (phone, SMS marketing state, updated at): defaultPhoneNumber; a customer not listed has none
        self.phones: dict[str, tuple[str, str, str | None]] = {}
        #: the Shop object (KeepwellShopProfile)
        self.profile = {"name": "Keepwell Coffee", "contactEmail": "hello@keepwell-coffee.example",
                        "email": "owner@keepwell-coffee.example",
                        "shopAddress": {"formatted": ["Keepwell Coffee", "12 Roaster Lane", "Portland OR 97201",
                                                      "United States"]},
                        "primaryDomain": {"url": "https://keepwell-coffee.example"}}
        self._ids = count(1471023658921)
        rsps.add_callback(responses.POST, self.url, callback=self._answer, content_type="application/json")

    def fail_next(self, status: int, body, headers: dict | None = None) -> None:
        self.failures.append((status, headers or {}, body))

    def ops(self, name: str) -> list[dict]:
        return [v for op, v in self.calls if op == name]

    def _answer(self, request):
        assert request.headers["X-Shopify-Access-Token"] == self.token
        body = json.loads(request.body)
        op = re.search(r"\b(?:mutation|query)\s+(\w+)", body["query"]).group(1)
        variables = body.get("variables") or {}
        self.calls.append((op, variables))
        if self.failures:
            status, headers, payload = self.failures.pop(0)
            return status, headers, payload if isinstance(payload, str) else json.dumps(payload)
        answer = json.dumps(self._data(op, variables))
        if op in self.lose:  # done in the store, but the answer never reaches Keepwell
            self.lose.remove(op)
            raise requests.ConnectionError("Connection reset by peer")
        return 200, {}, answer

    def _data(self, op: str, v: dict) -> dict:
        if op == "KeepwellCouponCreate":
            d = v["discount"]
            self.creates.append(d["code"])
            if d["code"].upper() in self.discounts:
                return gql_ok({"discountCodeBasicCreate": {"codeDiscountNode": None, "userErrors": [
                    {"field": ["basicCodeDiscount", "code"], "message": "Code must be unique. Please try a different code.",
                     "code": "TAKEN", "extraInfo": None}]}})
            self.discounts[d["code"].upper()] = {**d, "id": f"gid://shopify/DiscountCodeNode/{next(self._ids)}"}
            return gql_ok({"discountCodeBasicCreate": {"codeDiscountNode": {"id": self.discounts[d["code"].upper()]["id"]},
                                                       "userErrors": []}})
        if op == "KeepwellCouponByCode":
            found = self.discounts.get(v["code"].upper())
            return gql_ok({"codeDiscountNodeByCode": {"id": found["id"], "codeDiscount": basic_discount(found)}
                           if found else None})
        if op == "KeepwellTagsAdd":
            self.tags.append((v["id"], v["tags"]))
            return gql_ok({"tagsAdd": {"node": {"id": v["id"]}, "userErrors": []}})
        if op == "KeepwellProductGroups":  # nodes(ids:) answers null for a product that does not exist
            nodes = []
            for gid in v["ids"]:
                p = self.products.get(gid.rsplit("/", 1)[1], {"tags": [], "collections": {}})
                nodes.append({"id": gid, "tags": p["tags"], "collections": {"nodes": [
                    {"id": f"gid://shopify/Collection/{cid}", "handle": h} for h, cid in p["collections"].items()]}})
            return gql_ok({"nodes": nodes})
        if op == "KeepwellCollectionByHandle":
            cid = self.collections.get(v["identifier"]["handle"])
            return gql_ok({"collectionByIdentifier": {"id": f"gid://shopify/Collection/{cid}"} if cid else None})
        if op in ("KeepwellOrdersSince", "KeepwellCustomersSince"):  # reconciliation: nothing changed
            root = "orders" if op == "KeepwellOrdersSince" else "customers"
            return gql_ok({root: {"pageInfo": {"hasNextPage": False, "endCursor": None}, "nodes": []}})
        if op == "KeepwellShopProfile":
            return gql_ok({"shop": self.profile})
        if op == "KeepwellCustomerConsent":
            state, updated = self.consents.get(v["id"].rsplit("/", 1)[1], ("NOT_SUBSCRIBED", None))
            phone = self.phones.get(v["id"].rsplit("/", 1)[1])
            return gql_ok({"customer": {"id": v["id"], "defaultEmailAddress": {
                "marketingState": state, "marketingUpdatedAt": updated}, "defaultPhoneNumber": phone and {
                "phoneNumber": phone[0], "smsMarketingConsent": {"state": phone[1], "updatedAt": phone[2]}}}})
        if op == "KeepwellSmsConsent":
            i, cid = v["input"], v["input"]["customerId"].rsplit("/", 1)[1]
            given = i["smsMarketingConsent"]
            self.phones[cid] = (self.phones[cid][0], given["marketingState"], given.get("consentUpdatedAt"))
            return gql_ok({"customerSmsMarketingConsentUpdate": {"customer": {"id": i["customerId"], "defaultPhoneNumber": {
                "phoneNumber": self.phones[cid][0], "smsMarketingConsent": {"state": given["marketingState"]}}},
                "userErrors": []}})
        if op == "KeepwellUnsubscribe":
            i = v["input"]
            self.consents[i["customerId"].rsplit("/", 1)[1]] = (i["emailMarketingConsent"]["marketingState"],
                                                                i["emailMarketingConsent"].get("consentUpdatedAt"))
            return gql_ok({"customerEmailMarketingConsentUpdate": {"customer": {"id": i["customerId"], "defaultEmailAddress": {
                "marketingState": i["emailMarketingConsent"]["marketingState"]}}, "userErrors": []}})
        if op == "KeepwellOrderCustomer":
            oid = v["id"].rsplit("/", 1)[1]
            cid = self.orders.get(oid)
            return gql_ok({"order": {"id": v["id"], "customer": {"id": f"gid://shopify/Customer/{cid}"} if cid else None}})
        raise AssertionError(f"unexpected Shopify operation {op}")


def basic_discount(d: dict) -> dict:
    """A ``DiscountCodeBasic`` as Shopify reads back a ``DiscountCodeBasicInput`` it created."""
    context = d.get("context") or {"all": "ALL"}
    customers = (context.get("customers") or {}).get("add")
    value = (d.get("customerGets") or {}).get("value") or {}
    if "percentage" in value:
        value = {"__typename": "DiscountPercentage", "percentage": value["percentage"]}
    else:
        amount = value.get("discountAmount") or {}
        value = {"__typename": "DiscountAmount", "amount": {"amount": f"{float(amount.get('amount', 0)):.1f}"},
                 "appliesOnEachItem": bool(amount.get("appliesOnEachItem"))}
    items = (d.get("customerGets") or {}).get("items") or {"all": True}
    if items.get("collections"):
        items = {"__typename": "DiscountCollections", "collections": {"nodes": [{"id": c} for c in items["collections"]["add"]]}}
    elif items.get("products"):
        items = {"__typename": "DiscountProducts",
                 "products": {"nodes": [{"id": p} for p in items["products"]["productsToAdd"]]}}
    else:
        items = {"__typename": "AllDiscountItems", "allItems": True}
    minimum = ((d.get("minimumRequirement") or {}).get("subtotal") or {}).get("greaterThanOrEqualToSubtotal")
    return {"__typename": "DiscountCodeBasic", "startsAt": d.get("startsAt"), "endsAt": d.get("endsAt"),
            "usageLimit": d.get("usageLimit"), "appliesOncePerCustomer": bool(d.get("appliesOncePerCustomer")),
            "context": ({"__typename": "DiscountCustomers", "customers": [{"id": c} for c in customers]} if customers
                        else {"__typename": "DiscountBuyerSelectionAll", "all": "ALL"}),
            "customerGets": {"value": value, "items": items},
            "minimumRequirement": ({"__typename": "DiscountMinimumSubtotal",
                                    "greaterThanOrEqualToSubtotal": {"amount": f"{float(minimum):.1f}"}}
                                   if minimum is not None else None)}


# --- WooCommerce: a REST API v3 store behind `responses` -------------------------------------------

def woo_error(code: str, message: str, status: int) -> dict:
    return {"code": code, "message": message, "data": {"status": status}}


def woo_stored_coupon(body: dict, coupon_id: int) -> dict:
    """A ``POST /coupons`` body as WooCommerce stores and lists it: the docs example's shape, with
    WC_Coupon's defaults for what the body does not set, the code lower-cased."""
    defaults = {"minimum_amount": "0.00", "usage_limit": None, "usage_limit_per_user": None,
                "email_restrictions": [], "product_ids": [], "product_categories": [], "meta_data": []}
    coupon = {**load_json("woocommerce", "rest-v3-docs-examples", "coupon_create_response.json"), **defaults,
              **{k: v for k, v in body.items() if k != "date_expires_gmt"}, "id": coupon_id,
              "code": body["code"].lower()}  # wc_format_coupon_code + the woocommerce_coupon_code filters
    # WC_REST_Coupons_V2_Controller sets each prop through set_{key}(); WC_Coupon has
    # set_date_expires but no set_date_expires_gmt, so that one is dropped silently.
    # A date_expires without an offset is in the site's timezone (UTC for this store).
    expires = None
    if body.get("date_expires"):
        expires = datetime.fromisoformat(body["date_expires"].replace("Z", "+00:00"))
        expires = gmt(expires if expires.tzinfo else expires.replace(tzinfo=timezone.utc))
    coupon["date_expires"] = coupon["date_expires_gmt"] = expires
    return coupon


class FakeWoo:
    """A WooCommerce store's REST API v3, mocked at the HTTP layer: coupons (codes lower-cased and
    unique: a second create answers woocommerce_rest_coupon_code_already_exists), customers and their
    meta, orders for reconciliation, product categories. ``fail_next`` queues raw answers."""

    def __init__(self, rsps, base: str, key: str = "ck_test", secret: str = "cs_test"):
        self.base = base.rstrip("/")
        self.api = f"{self.base}/wp-json/wc/v3/"
        self.auth = "Basic " + base64.b64encode(f"{key}:{secret}".encode()).decode()
        self.coupons: dict[str, dict] = {}  # lower-cased code -> stored coupon
        self.creates: list[dict] = []  # every POST /coupons body
        self.customers: dict[str, dict] = {}
        self.orders: list[dict] = []
        self.webhooks: list[dict] = []  # as GET /webhooks lists them
        self.categories = [{"id": 9, "name": "Brewing", "slug": "brewing", "parent": 0, "description": "",
                            "display": "default", "image": None, "menu_order": 0, "count": 4},
                           {"id": 15, "name": "Coffee", "slug": "coffee", "parent": 0, "description": "",
                            "display": "default", "image": None, "menu_order": 0, "count": 12}]
        self.products: dict[str, list[str]] = {}  # product id -> category slugs
        #: GET /settings/{group}: setting id -> value (the settings API answers setting objects)
        self.settings = {"general": {"woocommerce_store_address": "12 Roaster Lane", "woocommerce_store_address_2": "",
                                     "woocommerce_store_city": "Portland", "woocommerce_default_country": "US:OR",
                                     "woocommerce_store_postcode": "97201"},
                         "email": {"woocommerce_email_from_name": "Keepwell Coffee",
                                   "woocommerce_email_from_address": "hello@keepwell-coffee.example"}}
        self.calls: list[tuple[str, str, dict]] = []  # (method, path, query)
        self.failures: list[tuple[str, str, int, dict, object]] = []
        self.lose: list[tuple[str, str]] = []  # (method, path) whose next answer is lost after the store acted
        self._ids = count(719)
        pattern = re.compile(re.escape(self.api) + r".*")
        for method in (responses.GET, responses.POST, responses.PUT):
            rsps.add_callback(method, pattern, callback=self._answer, content_type="application/json")

    def fail_next(self, method: str, path: str, status: int, body, headers: dict | None = None) -> None:
        self.failures.append((method, path, status, headers or {}, body))

    def requests(self, method: str, path: str) -> list[dict]:
        return [q for m, p, q in self.calls if m == method and p == path]

    def _answer(self, request):
        assert request.headers.get("Authorization") == self.auth  # Basic auth over HTTPS
        parts = urlsplit(request.url)
        path = parts.path.removeprefix("/wp-json/wc/v3/")
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        self.calls.append((request.method, path, query))
        for i, (method, fpath, status, headers, body) in enumerate(self.failures):
            if method == request.method and fpath == path:
                del self.failures[i]
                return status, headers, body if isinstance(body, str) else json.dumps(body)
        body = json.loads(request.body) if request.body else None
        status, payload, headers = self._route(request.method, path, query, body)
        return status, headers, json.dumps(payload)

    def _route(self, method, path, query, body):
        if path == "coupons" and method == "POST":
            self.creates.append(body)
            code = body["code"].lower()  # wc_format_coupon_code + the woocommerce_coupon_code filters
            if code in self.coupons:
                return 400, woo_error("woocommerce_rest_coupon_code_already_exists", "The coupon code already exists", 400), {}
            coupon = woo_stored_coupon(body, next(self._ids))
            self.coupons[code] = coupon
            if ("POST", "coupons") in self.lose:  # created, but the answer never reaches Keepwell
                self.lose.remove(("POST", "coupons"))
                raise requests.ConnectionError("Connection reset by peer")
            return 201, coupon, {}
        if path == "coupons" and method == "GET":
            found = [c for c in self.coupons.values() if c["code"] == query.get("code", "").lower()]
            return 200, found, {"X-WP-Total": str(len(found)), "X-WP-TotalPages": "1"}
        if path == "products" and method == "GET":  # ?include=1,2: the products that exist, as GET /products lists them
            items = []
            for pid in query.get("include", "").split(","):
                if pid:
                    cats = [c for c in self.categories if c["slug"] in self.products.get(pid, ())]
                    items.append({"id": int(pid), "name": f"Product {pid}", "type": "simple", "status": "publish",
                                  "categories": [{"id": c["id"], "name": c["name"], "slug": c["slug"]} for c in cats],
                                  "tags": []})
            return 200, items, {"X-WP-Total": str(len(items)), "X-WP-TotalPages": "1"}
        m = re.fullmatch(r"settings/(\w+)", path)
        if m and method == "GET" and m.group(1) in self.settings:
            return 200, [{"id": k, "label": k, "description": "", "type": "text", "default": "", "value": v}
                         for k, v in self.settings[m.group(1)].items()], {}
        if path == "products/categories" and method == "GET":
            return 200, [c for c in self.categories if c["slug"] == query.get("slug")], {}
        m = re.fullmatch(r"customers/(\d+)", path)
        if m and method == "GET":
            if m.group(1) not in self.customers:
                return 404, woo_error("woocommerce_rest_invalid_id", "Invalid resource ID.", 404), {}
            return 200, self.customers[m.group(1)], {}
        if m and method == "PUT":
            customer = self.customers[m.group(1)]
            for meta in body.get("meta_data") or ():
                entry = next((e for e in customer["meta_data"] if meta.get("id") and e.get("id") == meta["id"]), None)
                if entry is None:
                    customer["meta_data"].append({"id": 9000 + len(customer["meta_data"]), **meta})
                else:
                    entry["value"] = meta["value"]
            return 200, customer, {}
        if path == "customers" and method == "GET":
            items = list(self.customers.values())
            return 200, items, {"X-WP-Total": str(len(items)), "X-WP-TotalPages": "1"}
        if path == "webhooks" and method == "GET":
            items = [h for h in self.webhooks if query.get("status", "all") in ("all", h["status"])]
            return 200, items, {"X-WP-Total": str(len(items)), "X-WP-TotalPages": "1"}
        m = re.fullmatch(r"webhooks/(\d+)", path)
        if m and method == "PUT":
            hook = next(h for h in self.webhooks if str(h["id"]) == m.group(1))
            hook.update(body)
            return 200, hook, {}
        if path == "orders" and method == "GET":
            after = query.get("modified_after")
            items = [o for o in self.orders if after is None or o["date_modified_gmt"] > after]
            return 200, items, {"X-WP-Total": str(len(items)), "X-WP-TotalPages": "1"}
        raise AssertionError(f"unexpected WooCommerce call {method} {path}")


# --- one store of each platform, driven the same way by the pack suites -----------------------------

class ShopifyStore:
    """A Shopify shop connected to the running Keepwell: signed webhooks in, GraphQL calls out."""

    platform = "shopify"
    first_customer = 7421852987654321000

    def __init__(self, live: Live, rsps, name: str = "keepwell-packs", token: str = "shpat_packs"):
        self.live, self.domain = live, f"{name}.myshopify.com"
        self.shop_id, _ = live.add_shop("shopify", self.domain, access_token=token, settings={"name": "Keepwell Coffee"})
        self.api = FakeShopify(rsps, self.domain, token)

    def customer(self, n: int, *held_out_by: str) -> str:
        return outside_holdout(self.shop_id, self.first_customer + 1000 * n, *held_out_by)

    def post(self, topic: str, payload: dict, event_id: str | None = None):
        r = self.live.post_shopify(topic, payload, self.domain, event_id=event_id or str(uuid.uuid4()))
        assert r.status_code == 202, (r.status_code, r.data)
        return r

    def signup(self, customer_id: str, at: datetime, email: str, first_name: str, consent: bool = True,
               birthday: str | None = None) -> None:
        """customers/create, then (as Shopify sends it) the consent topic: webhooks since 2025-01
        carry no consent and Shopify customers have no birthday field (``birthday`` is ignored)."""
        if consent:  # what the store holds (and answers a consent look-up with) from the signup on
            self.api.consents[customer_id] = ("SUBSCRIBED", iso(at + timedelta(seconds=2)))
        self.post("customers/create", shopify_customer(customer_id, at, email=email, first_name=first_name))
        if consent:
            self.post("customers_email_marketing_consent/update",
                      shopify_consent(customer_id, at + timedelta(seconds=2), email=email))

    def order(self, order_id: int, customer_id: str, at: datetime, *, total="120.00", codes=(), email: str,
              first_name: str, consent: bool = True, product_id=9182736450918273645) -> None:
        """orders/paid for a checkout whose buyer ticked the marketing box (``consent``)."""
        if consent:
            self.api.consents.setdefault(customer_id, ("SUBSCRIBED", iso(at)))
        self.post("orders/paid", shopify_order(order_id, customer_id, at, total=total, codes=codes, email=email,
                                               first_name=first_name, accepts_marketing=consent,
                                               product_id=product_id))

    def refund(self, refund_id: int, order_id: int, at: datetime, amount: str) -> None:
        self.post("refunds/create", shopify_refund(refund_id, order_id, at, amount=amount))

    def coupon(self, code: str) -> dict:
        """The DiscountCodeBasicInput the store received for ``code`` (created once)."""
        assert self.api.creates.count(code) >= 1, (code, self.api.creates)
        return self.api.discounts[code.upper()]

    def coupon_codes(self) -> list[str]:
        return sorted(self.api.discounts)

    def tags(self, customer_id: str) -> list[str]:
        gid = f"gid://shopify/Customer/{customer_id}"
        return [t for cid, tags in self.api.tags if cid == gid for t in tags]


class WooStore:
    """A WooCommerce store connected to the running Keepwell: signed webhooks in, REST calls out."""

    platform = "woocommerce"
    url = "https://store.example"
    first_customer = 25

    def __init__(self, live: Live, rsps, **settings):
        self.live = live
        self.shop_id, self.secret = live.add_shop(
            "woocommerce", self.url, consumer_key="ck_test", consumer_secret="cs_test",
            settings={"consent_meta_key": "_keepwell_marketing_opt_in", "birthday_meta_key": "birthday",
                      "name": "Keepwell Coffee", **settings})
        self.api = FakeWoo(rsps, self.url)
        self._orders: dict[int, dict] = {}

    def customer(self, n: int, *held_out_by: str) -> str:
        return outside_holdout(self.shop_id, self.first_customer + 1000 * n, *held_out_by)

    def post(self, topic: str, payload: dict):
        r = self.live.post_woocommerce(self.shop_id, self.secret, topic, payload)
        assert r.status_code == 202, (r.status_code, r.data)
        return r

    def _customer_record(self, customer_id: str, at: datetime, email: str, first_name: str, consent: bool,
                         birthday: str | None) -> dict:
        c = woo_customer(int(customer_id), email=email, first_name=first_name, consent="yes" if consent else "no",
                         modified=gmt(at))
        c["billing"]["email"], c["billing"]["first_name"] = email, first_name
        if birthday:
            c["meta_data"].append({"id": 2, "key": "birthday", "value": birthday})
        return c

    def signup(self, customer_id: str, at: datetime, email: str, first_name: str, consent: bool = True,
               birthday: str | None = None) -> None:
        c = self._customer_record(customer_id, at, email, first_name, consent, birthday)
        self.api.customers[customer_id] = c
        self.post("customer.created", c)

    def order(self, order_id: int, customer_id: str, at: datetime, *, total="120.00", codes=(), email: str,
              first_name: str, consent: bool = True, product_id=93) -> None:
        """order.created for a paid (processing) checkout; the customer record exists in the store."""
        self.api.customers.setdefault(customer_id, self._customer_record(customer_id, at, email, first_name, consent, None))
        o = woo_order(order_id, int(customer_id), email=email, total=total, modified=gmt(at),
                      coupons=[c.lower() for c in codes], consent="yes" if consent else "no")
        o["billing"]["first_name"] = first_name
        o["line_items"][0]["product_id"] = product_id
        self._orders[order_id] = o
        self.api.orders.append(o)
        self.post("order.created", o)

    def refund(self, refund_id: int, order_id: int, at: datetime, amount: str) -> None:
        """order.updated after a full refund: WooCommerce lists refunds with negative totals."""
        o = copy.deepcopy(self._orders[order_id])
        o.update(status="refunded", date_modified_gmt=gmt(at))
        o["refunds"] = [{"id": refund_id, "reason": "Wrong size", "total": f"-{amount}"}]
        self.post("order.updated", o)

    def coupon(self, code: str) -> dict:
        """The POST /coupons body the store received for ``code`` (created once)."""
        bodies = [b for b in self.api.creates if b["code"] == code]
        assert bodies, (code, [b["code"] for b in self.api.creates])
        return bodies[0]

    def coupon_codes(self) -> list[str]:
        return sorted(c.upper() for c in self.api.coupons)

    def tags(self, customer_id: str) -> list[str]:
        meta = self.api.customers[customer_id]["meta_data"]
        entry = next((m for m in meta if m["key"] == "keepwell_tags"), None)
        return [t.strip() for t in entry["value"].split(",")] if entry else []


STORES = {"shopify": ShopifyStore, "woocommerce": WooStore}


def _shopify_opt_in(self, customer_id: str, at: datetime, email: str, first_name: str) -> None:
    """The customer subscribes later: Shopify's consent topic."""
    self.api.consents[customer_id] = ("SUBSCRIBED", iso(at))
    self.post("customers_email_marketing_consent/update", shopify_consent(customer_id, at, email=email))


def _woo_opt_in(self, customer_id: str, at: datetime, email: str, first_name: str) -> None:
    """The customer subscribes later: WooCommerce sends customer.updated with the consent meta."""
    c = self._customer_record(customer_id, at, email, first_name, True, None)
    self.api.customers[customer_id] = c
    self.post("customer.updated", c)


ShopifyStore.opt_in = _shopify_opt_in
WooStore.opt_in = _woo_opt_in


# --- raw deliveries, for posting over real HTTP ------------------------------------------------------

def shopify_delivery(topic: str, payload: dict, domain: str, webhook_id: str | None = None,
                     event_id: str | None = None, secret: str = SHOPIFY_SECRET) -> tuple[bytes, dict]:
    """(body, headers) of one Shopify webhook delivery, signed as Shopify signs it."""
    body = json.dumps(payload).encode()
    headers = {"X-Shopify-Topic": topic, "X-Shopify-Shop-Domain": domain, "X-Shopify-API-Version": "2026-10",
               "X-Shopify-Webhook-Id": webhook_id or str(uuid.uuid4()), "X-Shopify-Hmac-Sha256": sign(secret, body),
               "X-Shopify-Triggered-At": datetime.now(timezone.utc).isoformat(), "Content-Type": "application/json"}
    if event_id:
        headers["X-Shopify-Event-Id"] = event_id
    return body, headers


def woo_delivery(topic: str, payload: dict, secret: str, delivery_id: str | None = None) -> tuple[bytes, dict]:
    """(body, headers) of one WooCommerce delivery: wp_json_encode's bytes, signed with the webhook secret."""
    body = json.dumps(payload, separators=(",", ":")).replace("/", "\\/").encode()
    resource, event = topic.split(".")
    headers = {"User-Agent": "WooCommerce/9.4.2 Hookshot (WordPress/6.7.1)", "Content-Type": "application/json",
               "X-WC-Webhook-Source": "https://store.example/", "X-WC-Webhook-Topic": topic,
               "X-WC-Webhook-Resource": resource, "X-WC-Webhook-Event": event, "X-WC-Webhook-ID": "31",
               "X-WC-Webhook-Delivery-ID": delivery_id or uuid.uuid4().hex, "X-WC-Webhook-Signature": sign(secret, body)}
    return body, headers


@contextmanager
def serving(app):
    """The app on a real HTTP server (werkzeug, threaded) on 127.0.0.1; yields its base URL."""
    import threading

    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(5)
