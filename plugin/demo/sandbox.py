"""A small local stand-in for both store APIs, on one port, for the demo.

Shopify: ``POST /admin/api/<version>/graphql.json`` answers the documents the connector sends
(discountCodeBasicCreate, codeDiscountNodeByCode, tagsAdd, the refund's order lookup, the
products' collections, a collection by handle, and empty reconciliation pages) in Shopify's
response shapes; a code it already has gets Shopify's ``TAKEN`` user error. WooCommerce:
``/wp-json/wc/v3/`` coupons (201 with the coupon object, 400
``woocommerce_rest_coupon_code_already_exists`` for a repeated code, case-insensitively),
``customers/<id>`` GET/PUT, ``products?include=`` and ``products/categories?slug=``, with OAuth
1.0a signatures checked as a store over plain http does. GraphQL is parsed just enough to find the root field and its variables: it is a
sandbox, not Shopify.

It records what it created (coupons, tags) so the demo can report it. The storefront tells it
about the customers and orders it makes, as a real store would know them; its catalogue
(products and the collections, or categories, they belong to) is empty unless told otherwise.
"""
from __future__ import annotations

import copy
import hmac
import itertools
import json
import re
import threading
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

from flask import Flask, jsonify, request
from werkzeug.serving import WSGIRequestHandler, make_server

from connectors.woocommerce import oauth

SAMPLES = Path(__file__).resolve().parent / "samples"
CURRENCY = "USD"

_ROOT_FIELD = re.compile(r"\{\s*(\w+)")  # the first field of the operation's selection set
_ID_TAIL = re.compile(r"/\d+$")
_TAKEN = {"field": ["basicCodeDiscount", "code"], "message": "Code must be unique. Please try a different code.",
          "code": "TAKEN", "extraInfo": None}


def _now() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


def _numeric(gid) -> str:
    return str(gid).rsplit("/", 1)[-1]


class StoreSandbox:
    """The state of the sandbox stores and the Flask app that serves them."""

    def __init__(self, shopify_token: str, woo_key: str, woo_secret: str):
        self.shopify_token, self.woo_key, self.woo_secret = shopify_token, woo_key, woo_secret
        self.lock = threading.Lock()
        self.coupons: list[dict] = []  # every coupon created, both platforms, in order
        self.refused: list[dict] = []  # codes asked for twice ("already exists" answers)
        self.customers: dict[str, dict[str, dict]] = {"shopify": {}, "woocommerce": {}}
        self.orders: dict[str, dict[str, str | None]] = {"shopify": {}, "woocommerce": {}}  # order -> customer
        self.tags: dict[str, dict[str, list[str]]] = {"shopify": {}, "woocommerce": {}}
        self.collections: dict[str, dict[str, int]] = {"shopify": {}, "woocommerce": {}}  # handle (slug) -> id
        self.products: dict[str, dict[str, list[str]]] = {"shopify": {}, "woocommerce": {}}  # id -> handles
        self.calls: Counter = Counter()
        self._ids = itertools.count(1001)
        self.app = self._build_app()

    # --- what the storefront tells the store -----------------------------------------------

    def add_customer(self, platform: str, customer_id: str, record: dict) -> None:
        with self.lock:
            self.customers[platform][str(customer_id)] = copy.deepcopy(record)

    def add_order(self, platform: str, order_id: str, customer_id: str | None) -> None:
        with self.lock:
            self.orders[platform][str(order_id)] = customer_id

    def add_collection(self, platform: str, handle: str, collection_id: int) -> None:
        """A Shopify collection (a WooCommerce product category) with its handle (slug) and id."""
        with self.lock:
            self.collections[platform][handle] = collection_id

    def add_product(self, platform: str, product_id: str, collections: list[str]) -> None:
        """A product of the catalogue, in the collections (categories) with these handles."""
        with self.lock:
            self.products[platform][str(product_id)] = list(collections)

    # --- the app -------------------------------------------------------------------------------

    def _build_app(self) -> Flask:
        app = Flask("keepwell-demo-sandbox")

        @app.post("/admin/api/<version>/graphql.json")
        def shopify(version):
            if not hmac.compare_digest(request.headers.get("X-Shopify-Access-Token", ""), self.shopify_token):
                return jsonify(errors="[API] Invalid API key or access token (unrecognized login or wrong password)"), 401
            body = request.get_json(silent=True) or {}
            query, variables = body.get("query") or "", body.get("variables") or {}
            m = _ROOT_FIELD.search(query)
            field = m.group(1) if m else ""
            handler = getattr(self, f"_gql_{field}", None)
            self.calls["shopify", field] += 1
            if handler is None:
                return jsonify(errors=[{"message": f"Field '{field}' doesn't exist on type 'QueryRoot'",
                                        "extensions": {"code": "undefinedField", "fieldName": field}}])
            with self.lock:
                data = handler(lambda name: variables.get(_variable(query, name)))
            cost = {"requestedQueryCost": 10, "actualQueryCost": 10,
                    "throttleStatus": {"maximumAvailable": 2000.0, "currentlyAvailable": 1990, "restoreRate": 100.0}}
            return jsonify(data={field: data}, extensions={"cost": cost})

        @app.route("/wp-json/wc/v3/<path:path>", methods=["GET", "POST", "PUT"])
        def woocommerce(path):
            if not self._woo_authorized():
                return _woo_error(401, "woocommerce_rest_authentication_error",
                                  "Invalid signature - provided signature does not match.")
            self.calls["woocommerce", f"{request.method} {_ID_TAIL.sub('/<id>', path)}"] += 1
            with self.lock:
                return self._woo(request.method, path.strip("/"))

        return app

    # --- Shopify GraphQL -------------------------------------------------------------------

    def _gql_discountCodeBasicCreate(self, arg):
        d = arg("basicCodeDiscount") or {}
        code = str(d.get("code") or "").strip()
        if not code:
            return {"codeDiscountNode": None, "userErrors": [
                {"field": ["basicCodeDiscount", "code"], "message": "Code can't be blank", "code": "BLANK", "extraInfo": None}]}
        if self._find("shopify", code):
            self.refused.append({"platform": "shopify", "code": code})
            return {"codeDiscountNode": None, "userErrors": [_TAKEN]}
        node_id = f"gid://shopify/DiscountCodeNode/{next(self._ids)}"
        value = (d.get("customerGets") or {}).get("value") or {}
        if "percentage" in value:
            discount = f"{_trim(float(value['percentage']) * 100)}%"
        else:
            discount = f"{_trim((value.get('discountAmount') or {}).get('amount'))} {CURRENCY}"
        minimum = ((d.get("minimumRequirement") or {}).get("subtotal") or {}).get("greaterThanOrEqualToSubtotal")
        customers = ((d.get("context") or {}).get("customers") or {}).get("add") or []
        self.coupons.append({
            "platform": "shopify", "id": node_id, "code": code, "title": d.get("title"), "discount": discount,
            "minimum": f"{_trim(minimum)} {CURRENCY}" if minimum else None, "ends_at": d.get("endsAt"),
            "for": ", ".join(_numeric(c) for c in customers) or "anyone", "usage_limit": d.get("usageLimit"),
        })
        return {"codeDiscountNode": {"id": node_id}, "userErrors": []}

    def _gql_codeDiscountNodeByCode(self, arg):
        found = self._find("shopify", str(arg("code") or ""))
        return {"id": found["id"]} if found else None

    def _gql_tagsAdd(self, arg):
        gid, tags = str(arg("id") or ""), list(arg("tags") or [])
        customer_id = _numeric(gid)
        if customer_id not in self.customers["shopify"]:
            return {"node": None, "userErrors": [{"field": ["id"], "message": "Customer does not exist"}]}
        have = self.tags["shopify"].setdefault(customer_id, [])
        have.extend(t for t in tags if t not in have)
        return {"node": {"id": gid}, "userErrors": []}

    def _gql_order(self, arg):
        order_id = _numeric(arg("id") or "")
        if order_id not in self.orders["shopify"]:
            return None
        customer = self.orders["shopify"][order_id]
        return {"id": f"gid://shopify/Order/{order_id}",
                "customer": {"id": f"gid://shopify/Customer/{customer}"} if customer else None}

    def _gql_nodes(self, arg):
        """Products by gid, each with its tags and collections; null for what the store lacks."""
        out = []
        for gid in arg("ids") or []:
            handles = self.products["shopify"].get(_numeric(gid)) if str(gid).startswith("gid://shopify/Product/") else None
            out.append(None if handles is None else {
                "id": str(gid), "tags": [],
                "collections": {"nodes": [{"id": f"gid://shopify/Collection/{self.collections['shopify'][h]}",
                                           "handle": h} for h in handles]}})
        return out

    def _gql_collectionByIdentifier(self, arg):
        found = self.collections["shopify"].get(str((arg("identifier") or {}).get("handle") or ""))
        return {"id": f"gid://shopify/Collection/{found}"} if found else None

    def _gql_customers(self, arg):  # reconciliation: the sandbox keeps no change history to page through
        return {"pageInfo": {"hasNextPage": False, "endCursor": None}, "nodes": []}

    _gql_orders = _gql_customers

    # --- WooCommerce REST ------------------------------------------------------------------

    def _woo_authorized(self) -> bool:
        auth = request.authorization
        if auth is not None and auth.type == "basic":
            return auth.username == self.woo_key and hmac.compare_digest(auth.password or "", self.woo_secret)
        params = [(k, v) for k, v in request.args.items(multi=True) if k != "oauth_signature"]
        given = request.args.get("oauth_signature", "")
        method = request.args.get("oauth_signature_method", "HMAC-SHA256")
        if request.args.get("oauth_consumer_key") != self.woo_key or method not in ("HMAC-SHA1", "HMAC-SHA256"):
            return False
        expected = oauth.signature(request.method, request.base_url, params, self.woo_secret, method_name=method)
        return hmac.compare_digest(expected, given)

    def _woo(self, method: str, path: str):
        parts = path.split("/")
        if path == "coupons" and method == "POST":
            return self._woo_create_coupon(request.get_json(silent=True) or {})
        if path == "coupons" and method == "GET":
            code = request.args.get("code", "").lower()
            return jsonify([c["object"] for c in self.coupons if c["platform"] == "woocommerce" and (not code or c["code"] == code)])
        if len(parts) == 2 and parts[0] == "customers" and method in ("GET", "PUT"):
            customer = self.customers["woocommerce"].get(parts[1])
            if customer is None:
                return _woo_error(404, "woocommerce_rest_invalid_id", "Invalid ID.")
            if method == "PUT":
                _merge_meta(customer, (request.get_json(silent=True) or {}).get("meta_data") or [], self._ids)
                tags = next((m["value"] for m in customer["meta_data"] if m.get("key") == "keepwell_tags"), "")
                self.tags["woocommerce"][parts[1]] = [t.strip() for t in str(tags).split(",") if t.strip()]
            return jsonify(customer)
        if path == "products" and method == "GET":
            ids = [i for i in request.args.get("include", "").split(",") if i in self.products["woocommerce"]]
            return jsonify([self._woo_product(i) for i in ids])
        if path == "products/categories" and method == "GET" and request.args.get("slug"):
            slug = request.args["slug"]
            found = self.collections["woocommerce"].get(slug)
            return jsonify([self._woo_category(slug, found)] if found else [])
        if path in ("customers", "orders", "products/categories") and method == "GET":
            # reconciliation and category look-ups: the sandbox keeps no listings to page through
            response = jsonify([])
            response.headers.update({"X-WP-Total": "0", "X-WP-TotalPages": "0"})
            return response
        return _woo_error(404, "rest_no_route", "No route was found matching the URL and request method.")

    def _woo_category(self, slug: str, category_id: int) -> dict:
        return {"id": category_id, "name": slug.title(), "slug": slug, "parent": 0}

    def _woo_product(self, product_id: str) -> dict:
        categories = [self._woo_category(s, self.collections["woocommerce"][s]) for s in self.products["woocommerce"][product_id]]
        return {"id": int(product_id), "name": f"Product {product_id}", "type": "simple", "status": "publish",
                "categories": [{k: c[k] for k in ("id", "name", "slug")} for c in categories], "tags": []}

    def _woo_create_coupon(self, body: dict):
        code = str(body.get("code") or "").strip().lower()  # WooCommerce stores codes in lower case
        if not code:
            return _woo_error(400, "rest_missing_callback_param", "Missing parameter(s): code")
        if self._find("woocommerce", code):
            self.refused.append({"platform": "woocommerce", "code": code})
            return _woo_error(400, "woocommerce_rest_coupon_code_already_exists", "The coupon code already exists")
        coupon_id = next(self._ids)
        obj = json.loads((SAMPLES / "woocommerce_coupon.json").read_text())
        now = _now()[:19]
        obj.update(id=coupon_id, code=code, date_created=now, date_created_gmt=now, date_modified=now,
                   date_modified_gmt=now, minimum_amount="0.00", exclude_sale_items=False)
        for key in ("amount", "discount_type", "description", "individual_use", "product_ids", "product_categories",
                    "email_restrictions", "usage_limit", "usage_limit_per_user", "minimum_amount"):
            if key in body:
                obj[key] = body[key]
        obj["date_expires"] = obj["date_expires_gmt"] = body.get("date_expires")  # WooCommerce ignores date_expires_gmt
        obj["meta_data"] = [{"id": next(self._ids), **m} for m in body.get("meta_data") or []]
        base = request.host_url.rstrip("/") + "/wp-json/wc/v3/coupons"
        obj["_links"] = {"self": [{"href": f"{base}/{coupon_id}"}], "collection": [{"href": base}]}
        amount = _trim(obj["amount"])
        self.coupons.append({
            "platform": "woocommerce", "id": str(coupon_id), "code": code, "title": obj["description"],
            "discount": f"{amount}%" if obj["discount_type"] == "percent" else f"{amount} {CURRENCY}",
            "minimum": f"{_trim(obj['minimum_amount'])} {CURRENCY}" if float(obj["minimum_amount"] or 0) else None,
            "ends_at": obj["date_expires_gmt"], "for": ", ".join(obj["email_restrictions"]) or "anyone",
            "usage_limit": obj["usage_limit"], "object": obj,
        })
        return jsonify(obj), 201

    def _find(self, platform: str, code: str) -> dict | None:
        return next((c for c in self.coupons if c["platform"] == platform and c["code"].lower() == code.lower()), None)


def _variable(query: str, argument: str) -> str:
    """The name of the variable passed as ``argument`` (``basicCodeDiscount: $discount`` -> discount)."""
    m = re.search(rf"\b{argument}\s*:\s*\$(\w+)", query)
    return m.group(1) if m else argument


def _woo_error(status: int, code: str, message: str):
    return jsonify(code=code, message=message, data={"status": status}), status


def _merge_meta(record: dict, updates: list[dict], ids) -> None:
    """WooCommerce's meta_data update: an entry with an id replaces that entry, others are added."""
    meta = record.setdefault("meta_data", [])
    for update in updates:
        target = next((m for m in meta if update.get("id") and m.get("id") == update["id"]), None)
        if target is None:
            target = next((m for m in meta if m.get("key") == update.get("key")), None)
        if target is None:
            meta.append({"id": next(ids), "key": update.get("key"), "value": update.get("value")})
        else:
            target["value"] = update.get("value")


def _trim(amount) -> str:
    """15.0 -> "15", "25.00" -> "25", "7.5" -> "7.50"."""
    value = float(amount or 0)
    return str(int(value)) if value == int(value) else f"{value:.2f}"


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, *args, **kwargs):  # the demo prints its own report
        pass


class Server:
    """The sandbox served from a background thread on a free local port."""

    def __init__(self, sandbox: StoreSandbox, host: str = "127.0.0.1", port: int = 0):
        self.httpd = make_server(host, port, sandbox.app, threaded=True, request_handler=_QuietHandler)
        self.url = f"http://{host}:{self.httpd.server_port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="store-sandbox", daemon=True)

    def start(self) -> "Server":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
