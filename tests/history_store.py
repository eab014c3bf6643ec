"""A generated store history of any size, served in both platforms' real formats behind
``responses``: Shopify's bulk operations (``bulkOperationRunQuery``, ``bulkOperation(id:)`` and a
grouped JSONL result with ``__parentId`` children) and WooCommerce's paged ``/customers`` and
``/orders`` (``X-WP-Total``/``X-WP-TotalPages``, ``orderby=modified`` with ``modified_after``).

Records are computed from their index, never held as a list, so a 50,000-order store costs no
more memory than a small one. Every customer orders ``orders / customers`` times (a loyal
base); a share of orders is unpaid, refunded, partly refunded or cancelled; a third of the
customers opted in to marketing. Like a real store it has gaps: guest checkouts, customers
known by phone only (Shopify), products deleted since they were sold, Hebrew names.
``expected(customer)`` says what the import must end with.
"""
from __future__ import annotations

import functools
import itertools
import json
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Callable
from urllib.parse import parse_qs, urlsplit

import responses

SHOPIFY_API_VERSION = "2026-10"
PRODUCTS = 12
SHOPIFY_CUSTOMER_BASE = 7_340_000_000_000
SHOPIFY_ORDER_BASE = 5_120_000_000_000
SHOPIFY_PRODUCT_BASE = 8_800_000_000_000
WOO_CONSENT_KEY = "_keepwell_marketing_opt_in"


def _z(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def _gmt(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S")


@dataclass(frozen=True)
class History:
    orders: int
    now: datetime
    customers: int = 0  # default: one customer per five orders
    years: int = 3
    currency: str = "EUR"

    def __post_init__(self):
        if not self.customers:
            object.__setattr__(self, "customers", max(1, self.orders // 5))

    # --- the records, by index -------------------------------------------------------------------

    def customer_of(self, i: int) -> int:
        return (i * 7919) % self.customers + 1  # 7919 is prime: every customer gets the same share

    def guest(self, i: int) -> bool:
        """A guest checkout: no customer account, only the email typed at checkout."""
        return i % 41 == 13

    def guest_email(self, i: int) -> str:
        return f"guest{i % 10}@example.org"  # some guests come back: one state per email (WooCommerce)

    def guest_states(self, platform: str) -> set[str]:
        """The guest checkouts' customer states: WooCommerce keeps one per email (for orders that
        were paid, cancelled or refunded); Shopify parses a guest order into nothing."""
        if platform == "shopify":
            return set()
        return {"guest:" + self.guest_email(i) for i in range(self.orders) if self.guest(i) and self.status(i) != "pending"}

    def guest_last_orders(self, platform: str) -> dict[str, int]:
        """Guest state -> its last order that counts as a purchase (WooCommerce: paid, not refunded
        in full), the one a lapse is counted from."""
        if platform == "shopify":
            return {}
        return {"guest:" + self.guest_email(i): i for i in range(self.orders)
                if self.guest(i) and self.status(i) in ("paid", "partially_refunded")}

    def deleted_product(self, i: int) -> bool:
        """The order's products were deleted from the catalogue since (the line keeps its title)."""
        return i % 23 == 0

    def first_name(self, c: int) -> str:
        return "נועה" if c % 11 == 0 else f"Name{c}"

    def last_name(self, c: int) -> str:
        return "כהן" if c % 11 == 0 else ("Ünal" if c % 7 == 0 else "Smith")

    def created(self, i: int) -> datetime:
        span = timedelta(days=365 * self.years)
        return self.now - span + span * (i + 1) / (self.orders + 1) - timedelta(days=2)

    def status(self, i: int) -> str:
        k = (i + i // self.customers) % 50  # a customer's orders differ, whatever the store's size
        return {7: "pending", 13: "refunded", 21: "partially_refunded", 33: "cancelled"}.get(k, "paid")

    def lines(self, i: int) -> list[tuple[int, int, Decimal]]:
        """(product number, quantity, unit price) of order ``i``."""
        return [((i + j * 5) % PRODUCTS, 1 + (i + j) % 2, Decimal(12 + (i * 7 + j * 3) % 40) + Decimal("0.90"))
                for j in range(1 + i % 3)]

    def total(self, i: int) -> Decimal:
        return sum((q * p for _, q, p in self.lines(i)), Decimal(0)) + Decimal("4.90")

    def refunded(self, i: int) -> Decimal:
        s = self.status(i)
        return self.total(i) if s in ("refunded", "cancelled") else (Decimal("5.00") if s == "partially_refunded" else Decimal(0))

    def consent(self, c: int) -> bool:
        return c % 3 == 0

    def signed_up(self, c: int) -> datetime:
        return self.now - timedelta(days=365 * self.years + 30) + timedelta(minutes=c)

    def changed_at(self, c: int) -> datetime:
        """The customer record's last change (an order, a consent change): after every order."""
        return self.now - timedelta(days=1, seconds=c)

    def ticked(self, i: int) -> bool:
        """The checkout's marketing box: ticked on some orders of customers who opted out since."""
        return i % 4 == 0

    def email(self, c: int) -> str:
        return f"customer{c}@example.com"

    def shopify_email(self, c: int) -> str | None:
        """Shopify customers may have a phone number and no email address."""
        return None if c % 17 == 0 else self.email(c)

    def expected(self, c: int, full_refunds_count: bool) -> dict:
        """What a customer's folded state holds: paid orders counted, net spend, first and last.
        ``full_refunds_count``: whether a paid order refunded in full still counts as a purchase
        (WooCommerce's status ``refunded`` is never reported paid, so there it never does)."""
        return self._expected(full_refunds_count).get(c, {"orders_count": 0, "spent": Decimal(0), "last": None,
                                                          "first": None})

    @functools.lru_cache(maxsize=2)
    def _expected(self, full_refunds_count: bool) -> dict:
        out: dict[int, dict] = {}
        for i in range(self.orders):  # one pass: orders ascend in time
            s = self.status(i)
            if self.guest(i) or s in ("pending", "cancelled") or (s == "refunded" and not full_refunds_count):
                continue
            e = out.setdefault(self.customer_of(i), {"orders_count": 0, "spent": Decimal(0), "last": None, "first": i})
            e["orders_count"] += 1
            e["spent"] += self.total(i) - self.refunded(i)
            e["last"] = i
        return out

    # --- Shopify: the grouped JSONL of the two bulk queries ------------------------------------

    def shopify_customer_id(self, c: int) -> int:
        return SHOPIFY_CUSTOMER_BASE + c

    def shopify_order_id(self, i: int) -> int:
        return SHOPIFY_ORDER_BASE + i

    def shopify_customers_jsonl(self):
        for c in range(1, self.customers + 1):
            cid = self.shopify_customer_id(c)
            email = None if self.shopify_email(c) is None else {
                "emailAddress": self.email(c), "marketingState": "SUBSCRIBED" if self.consent(c) else "NOT_SUBSCRIBED",
                "marketingUpdatedAt": _z(self.signed_up(c)) if self.consent(c) else None}
            yield {"id": f"gid://shopify/Customer/{cid}", "legacyResourceId": str(cid),
                   "firstName": self.first_name(c), "lastName": self.last_name(c),
                   "locale": "he" if c % 11 == 0 else "en",
                   "createdAt": _z(self.signed_up(c)), "updatedAt": _z(self.changed_at(c)),
                   "tags": ["wholesale"] if c % 13 == 0 else [], "defaultEmailAddress": email}

    def shopify_orders_jsonl(self):
        status = {"paid": "PAID", "pending": "PENDING", "refunded": "REFUNDED",
                  "partially_refunded": "PARTIALLY_REFUNDED", "cancelled": "REFUNDED"}
        for i in range(self.orders):
            c, at, oid = self.customer_of(i), self.created(i), self.shopify_order_id(i)
            money = {"shopMoney": {"amount": str(self.total(i)), "currencyCode": self.currency}}
            refunds = []
            if self.refunded(i):
                refunds.append({"legacyResourceId": str(900_000_000 + i), "createdAt": _z(at + timedelta(days=3)),
                                "totalRefundedSet": {"shopMoney": {"amount": str(self.refunded(i)),
                                                                   "currencyCode": self.currency}}})
            gid = f"gid://shopify/Order/{oid}"
            customer = None if self.guest(i) else {
                "legacyResourceId": str(self.shopify_customer_id(c)), "firstName": self.first_name(c),
                "lastName": self.last_name(c), "createdAt": _z(self.signed_up(c)),
                "defaultEmailAddress": None if self.shopify_email(c) is None else {"emailAddress": self.email(c)}}
            email = self.guest_email(i) if self.guest(i) else self.shopify_email(c)
            yield {"id": gid, "legacyResourceId": str(oid), "name": f"#{1000 + i}", "email": email,
                   "createdAt": _z(at), "updatedAt": _z(at + timedelta(hours=1)), "processedAt": _z(at),
                   "cancelledAt": _z(at + timedelta(days=3)) if self.status(i) == "cancelled" else None,
                   "displayFinancialStatus": status[self.status(i)], "currencyCode": self.currency,
                   "customerAcceptsMarketing": self.ticked(i) and email is not None, "customerLocale": "en",
                   "discountCodes": [], "totalPriceSet": money, "subtotalPriceSet": money, "customer": customer,
                   "refunds": refunds}
            gone = self.deleted_product(i)
            for p, q, price in self.lines(i):
                yield {"quantity": q, "sku": None if gone else f"SKU-{p}", "title": f"Product {p}",
                       "product": None if gone else {"legacyResourceId": str(SHOPIFY_PRODUCT_BASE + p)},
                       "variant": None if gone else {"legacyResourceId": str(SHOPIFY_PRODUCT_BASE + 100 + p)},
                       "originalUnitPriceSet": {"shopMoney": {"amount": str(price)}}, "__parentId": gid}

    def write_jsonl(self, directory: Path) -> dict[str, Path]:
        paths = {}
        for name, rows in (("customers", self.shopify_customers_jsonl()), ("orders", self.shopify_orders_jsonl())):
            paths[name] = directory / f"{name}.jsonl"
            with paths[name].open("w", encoding="utf-8") as f:
                for row in rows:
                    f.write(json.dumps(row, ensure_ascii=False, separators=(",", ":")) + "\n")
        return paths

    # --- WooCommerce: GET /customers and GET /orders entries ------------------------------------

    def woo_customer(self, c: int) -> dict:
        at, changed = _gmt(self.signed_up(c)), _gmt(self.changed_at(c))
        return {"id": c, "date_created": at, "date_created_gmt": at, "date_modified": changed, "date_modified_gmt": changed,
                "email": self.email(c), "first_name": self.first_name(c), "last_name": self.last_name(c),
                "role": "customer", "username": f"customer{c}",
                "billing": {"first_name": self.first_name(c), "last_name": self.last_name(c), "email": self.email(c),
                            "country": "IL" if c % 11 == 0 else "DE"},
                "shipping": {}, "is_paying_customer": True, "avatar_url": "",
                "meta_data": [{"id": 100 + c, "key": WOO_CONSENT_KEY, "value": "yes" if self.consent(c) else "no"}]}

    def woo_modified(self, i: int) -> datetime:
        return self.created(i) + timedelta(hours=1)

    def woo_order(self, i: int) -> dict:
        c, at = self.customer_of(i), self.created(i)
        s = self.status(i)
        wc_status = {"paid": "completed", "pending": "pending", "refunded": "refunded",
                     "partially_refunded": "completed", "cancelled": "cancelled"}[s]
        paid = s != "pending"
        refunds = [{"id": 900_000 + i, "reason": "", "total": f"-{self.refunded(i)}"}] if self.refunded(i) else []
        return {"id": 10_000 + i, "parent_id": 0, "number": str(10_000 + i), "order_key": f"wc_order_{i}",
                "created_via": "checkout", "version": "9.4.2", "status": wc_status, "currency": self.currency,
                "date_created": _gmt(at), "date_created_gmt": _gmt(at), "date_modified": _gmt(self.woo_modified(i)),
                "date_modified_gmt": _gmt(self.woo_modified(i)), "discount_total": "0.00", "shipping_total": "4.90",
                "total": str(self.total(i)), "total_tax": "0.00", "prices_include_tax": False,
                "customer_id": 0 if self.guest(i) else c,
                "billing": {"first_name": "", "last_name": "", "email": self.guest_email(i)} if self.guest(i) else
                {"first_name": self.first_name(c), "last_name": self.last_name(c), "email": self.email(c)},
                "shipping": {},
                "payment_method": "bacs", "transaction_id": "", "date_paid": _gmt(at) if paid else None,
                "date_paid_gmt": _gmt(at) if paid else None, "date_completed_gmt": None,
                "meta_data": [{"id": 500 + i, "key": WOO_CONSENT_KEY, "value": "yes"}] if self.ticked(i) else [],
                "line_items": [
                    {"id": i * 10 + n, "name": f"Product {p}", "product_id": 0 if self.deleted_product(i) else 300 + p,
                     "variation_id": 0, "quantity": q, "subtotal": str(q * price), "total": str(q * price),
                     "sku": "" if self.deleted_product(i) else f"SKU-{p}", "price": float(price)}
                    for n, (p, q, price) in enumerate(self.lines(i))],
                "coupon_lines": [], "refunds": refunds}


class BulkShopify:
    """A Shopify shop's bulk operations API: each run starts an operation that answers RUNNING to
    its first poll, then COMPLETED with a download URL on the loopback address.

    ``refusals``: userError codes answering the next runs (OPERATION_IN_PROGRESS, LIMIT_REACHED).
    ``endings[kind]``: for the next operations of that kind, the statuses their polls answer after
    RUNNING, the last one sticking ("FAILED:TIMEOUT" carries its errorCode), instead of COMPLETED.
    ``expire()``: every operation so far answers EXPIRED from now on (its result is gone)."""

    def __init__(self, rsps, domain: str, token: str, history: History, directory: Path, running_polls: int = 1):
        self.running_polls = running_polls
        self.url = f"https://{domain}/admin/api/{SHOPIFY_API_VERSION}/graphql.json"
        self.token, self.history, self.directory = token, history, directory
        self.files: dict[str, Path] | None = None
        self.operations: dict[str, dict] = {}
        self.calls: list[tuple[str, dict]] = []
        self.bodies: list[dict] = []
        self.downloads = 0
        self.refusals: list[str] = []
        self.endings: dict[str, list[list[str]]] = {"customers": [], "orders": []}
        rsps.add_callback(responses.POST, self.url, callback=self._answer, content_type="application/json")
        rsps.add_callback(responses.GET, re.compile(r"http://127\.0\.0\.1:9/bulk/.*"), callback=self._download)

    def _answer(self, request):
        assert request.headers["X-Shopify-Access-Token"] == self.token
        body = json.loads(request.body)
        self.bodies.append(body)
        op = re.search(r"\b(?:mutation|query)\s+(\w+)", body["query"]).group(1)
        v = body.get("variables") or {}
        self.calls.append((op, v))
        if op == "KeepwellHistory":
            if self.refusals:
                code = self.refusals.pop(0)
                message = {"OPERATION_IN_PROGRESS": "A bulk query operation for this app and shop is already in progress.",
                           "LIMIT_REACHED": "Bulk operations limit reached. Please try again later."}[code]
                return 200, {}, json.dumps(ok({"bulkOperationRunQuery": {"bulkOperation": None, "userErrors": [
                    {"field": None, "message": message, "code": code}]}}))
            kind = "customers" if re.search(r"^\s*{\s*customers\b", v["query"]) else "orders"
            gid = f"gid://shopify/BulkOperation/{720_000 + len(self.operations)}"
            ending = self.endings[kind].pop(0) if self.endings[kind] else ["COMPLETED"]
            self.operations[gid] = {"kind": kind, "polls": 0, "query": v["query"], "ending": ending}
            return 200, {}, json.dumps(ok({"bulkOperationRunQuery": {
                "bulkOperation": {"id": gid, "status": "CREATED"}, "userErrors": []}}))
        if op == "KeepwellHistoryStatus":
            o = self.operations[v["id"]]
            o["polls"] += 1
            status = "RUNNING" if o["polls"] <= self.running_polls else \
                o["ending"][min(o["polls"] - self.running_polls, len(o["ending"])) - 1]
            if status != "COMPLETED":
                status, _, code = status.partition(":")
                partial = f"http://127.0.0.1:9/bulk/partial-{o['kind']}.jsonl" if status == "FAILED" else None
                return 200, {}, json.dumps(ok({"bulkOperation": {
                    "id": v["id"], "status": status, "errorCode": code or None, "objectCount": "0",
                    "rootObjectCount": "0", "url": None, "partialDataUrl": partial}}))
            if self.files is None:
                self.files = self.history.write_jsonl(self.directory)
            roots = self.history.customers if o["kind"] == "customers" else self.history.orders
            return 200, {}, json.dumps(ok({"bulkOperation": {
                "id": v["id"], "status": "COMPLETED", "errorCode": None, "objectCount": str(roots),
                "rootObjectCount": str(roots), "url": f"http://127.0.0.1:9/bulk/{o['kind']}.jsonl?op={v['id']}",
                "partialDataUrl": None}}))
        if op == "KeepwellProductGroups":
            return 200, {}, json.dumps(ok({"nodes": [{"id": gid, "tags": ["roast"], "collections": {"nodes": [
                {"id": "gid://shopify/Collection/841564295", "handle": "coffee"}]}} for gid in v["ids"]]}))
        if op == "KeepwellCustomerConsent":  # a customer's consent, looked up once (null: no such customer)
            c = int(v["id"].rsplit("/", 1)[1]) - SHOPIFY_CUSTOMER_BASE
            if not 1 <= c <= self.history.customers:
                return 200, {}, json.dumps(ok({"customer": None}))
            return 200, {}, json.dumps(ok({"customer": {"id": v["id"], "defaultEmailAddress": {
                "marketingState": "SUBSCRIBED" if self.history.consent(c) else "NOT_SUBSCRIBED",
                "marketingUpdatedAt": _z(self.history.signed_up(c)) if self.history.consent(c) else None}}}))
        raise AssertionError(f"unexpected Shopify operation {op}")

    def expire(self) -> None:
        for o in self.operations.values():
            o["ending"], o["polls"] = ["EXPIRED"], self.running_polls

    def _download(self, request):
        assert "X-Shopify-Access-Token" not in request.headers  # the file is on storage, not the Admin API
        self.downloads += 1
        kind = urlsplit(request.url).path.rsplit("/", 1)[1].removesuffix(".jsonl")
        return 200, {"Content-Type": "application/jsonl"}, self.files[kind].open("rb")


def ok(data: dict) -> dict:
    return {"data": data, "extensions": {"cost": {"requestedQueryCost": 10, "actualQueryCost": 10, "throttleStatus": {
        "maximumAvailable": 2000.0, "currentlyAvailable": 1990.0, "restoreRate": 100.0}}}}


class PagedWoo:
    """A WooCommerce store's ``/customers`` and ``/orders`` lists, 100 a page, as WP_REST answers them."""

    def __init__(self, rsps, base: str, history: History):
        self.api = f"{base.rstrip('/')}/wp-json/wc/v3/"
        self.history = history
        self.calls: list[tuple[str, dict]] = []
        self.changed: dict[int, datetime] = {}  # order index -> a later date_modified (changed during the import)
        self.paid: set[int] = set()  # pending orders paid since (at their changed time)
        self.meanwhile: tuple[int, Callable[[], None]] | None = None  # after N order pages, the store changes
        rsps.add_callback(responses.GET, re.compile(re.escape(self.api) + r".*"), callback=self._answer,
                          content_type="application/json")

    def _answer(self, request):
        parts = urlsplit(request.url)
        path = parts.path.split("/wp-json/wc/v3/", 1)[1]
        q = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        self.calls.append((path, q))
        per_page, page = int(q.get("per_page", 10)), int(q.get("page", 1))
        if path == "customers":
            assert q.get("orderby") == "id"
            rows = range(1, self.history.customers + 1)
            items = [self.history.woo_customer(c) for c in rows[(page - 1) * per_page:page * per_page]]
            return self._page(items, len(rows), per_page)
        if path == "orders":
            assert (q.get("orderby"), q.get("order"), q.get("dates_are_gmt")) == ("modified", "asc", "true")
            if self.meanwhile and sum(p == "orders" for p, _ in self.calls) > self.meanwhile[0]:
                self.meanwhile[1]()
                self.meanwhile = None
            matching = self._matching(q.get("modified_after"))
            items = []
            for i in itertools.islice(matching, (page - 1) * per_page, page * per_page):
                o = self.history.woo_order(i)
                o["date_modified"] = o["date_modified_gmt"] = self._modified(i)
                if i in self.paid:
                    o["status"], o["date_paid"] = "processing", o["date_modified"]
                    o["date_paid_gmt"] = o["date_modified_gmt"]
                items.append(o)
            return self._page(items, self._count(q.get("modified_after")), per_page)
        if path == "products":
            ids = [int(x) for x in q.get("include", "").split(",") if x]
            items = [{"id": pid, "name": f"Product {pid}", "type": "simple", "status": "publish",
                      "categories": [{"id": 15, "name": "Coffee", "slug": "coffee"}], "tags": []} for pid in ids]
            return self._page(items, len(items), max(len(items), 1))
        m = re.fullmatch(r"customers/(\d+)", path)
        if m:  # a customer's record (its consent meta), looked up once
            c = int(m.group(1))
            if not 1 <= c <= self.history.customers:
                return 404, {}, json.dumps({"code": "woocommerce_rest_invalid_id", "message": "Invalid ID.",
                                            "data": {"status": 404}})
            return 200, {}, json.dumps(self.history.woo_customer(c))
        raise AssertionError(f"unexpected WooCommerce call GET {path}")

    def _modified(self, i: int) -> str:
        return _gmt(self.changed.get(i) or self.history.woo_modified(i))

    def _first_after(self, after: str | None) -> int:
        """The first order index modified after ``after``: orders are modified in index order
        (apart from those changed since, which sort last), so a binary search finds it."""
        if after is None:
            return 0
        lo, hi = 0, self.history.orders
        while lo < hi:
            mid = (lo + hi) // 2
            if _gmt(self.history.woo_modified(mid)) > after:
                hi = mid
            else:
                lo = mid + 1
        return lo

    def _later(self, after: str | None) -> list[int]:
        return sorted((i for i in self.changed if after is None or self._modified(i) > after), key=self._modified)

    def _matching(self, after: str | None):
        """Order indexes modified after ``after``, oldest change first."""
        unchanged = (i for i in range(self._first_after(after), self.history.orders) if i not in self.changed)
        return itertools.chain(unchanged, self._later(after))

    def _count(self, after: str | None) -> int:
        start = self._first_after(after)
        return self.history.orders - start - sum(1 for i in self.changed if i >= start) + len(self._later(after))

    @staticmethod
    def _page(items: list, total: int, per_page: int):
        pages = max(1, -(-total // per_page))
        return 200, {"X-WP-Total": str(total), "X-WP-TotalPages": str(pages)}, json.dumps(items)


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)
