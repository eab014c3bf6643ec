"""A third platform is one package plus one registry line.

The platform below ("Acme", a store platform that does not exist) is defined here, in the test,
and registered with ``connectors.register``: nothing else in Keepwell is told about it. It then
goes through the real web app, the real worker, the real database and SMTP server, with its store
API mocked at the HTTP layer: a store is added with credentials its schema checks, its signed
webhooks are identified and verified by its package at ``/webhooks/acme``, the shipped welcome
rule creates a coupon through its package and emails it, its install page is served, and its
merchants sign in to the admin pages with its own scheme.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import types
from datetime import datetime, timedelta

import pytest
import requests
import responses
from flask import Blueprint

import connectors
from connectors.base import CouponResult, Shop
from connectors.interfaces import INTERFACES, Answer, ShopRef
from plugin.admin_auth import Unauthenticated
from plugin.db import DecisionRow, EffectRow, ShopRow
from plugin.errors import PayloadError, SignatureError, StoreError
from plugin.events import Customer, Event
from plugin.pipeline import sweep_timers
from live import start, stop


# --- the platform package, as a new platform's author would write it ------------------------------

def _sign(secret: str, text: str | bytes) -> str:
    return hmac.new(secret.encode(), text if isinstance(text, bytes) else text.encode(), hashlib.sha256).hexdigest()


def _call(shop: Shop, method: str, path: str, **kw) -> dict:
    response = requests.request(method, f"{shop.api_url}/{path}", timeout=5,
                                headers={"Authorization": f"Bearer {shop.credentials['api_key']}"}, **kw)
    if response.status_code >= 400:
        raise StoreError(f"Acme answered {response.status_code}", retryable=response.status_code >= 500,
                         status=response.status_code)
    return response.json()


class AcmeConnector:
    platform = "acme"
    topics = frozenset({"customer.signup"})
    credentials_schema = {"type": "object", "properties": {"api_key": {"type": "string"}},
                          "required": ["api_key"], "additionalProperties": False}
    own_webhook_secret = True

    # inbound
    def identify(self, headers, shop_ref):
        return ShopRef("domain", headers.get("X-Acme-Store", "").lower()) if shop_ref is None else None

    def unbound(self, edge, topic, headers, body):
        return Answer("pong") if topic == "ping" else None

    def is_ping(self, headers, body):
        return False

    def verify(self, shop, headers, body):
        given = headers.get("X-Acme-Signature", "")
        if not any(hmac.compare_digest(_sign(s, body), given) for s in shop.webhook_secrets):
            raise SignatureError("X-Acme-Signature does not match")

    def topic(self, headers):
        return headers.get("X-Acme-Topic", "")

    def lifecycle(self, edge, shop, topic, payload):
        return None

    def delivery_key(self, headers, payload):
        if not headers.get("X-Acme-Event"):
            raise PayloadError("missing X-Acme-Event")
        return headers["X-Acme-Event"]

    def parse(self, shop, topic, payload, customer_of_order=None):
        cid = str(payload["id"])
        at = datetime.fromisoformat(payload["signed_up_at"])
        customer = Customer(id=cid, email=payload["email"], first_name=payload.get("name"),
                            accepts_marketing=payload.get("newsletter"), created_at=at)
        return [Event(id=f"acme:{cid}", type="customer.created", shop=shop.id, customer_id=cid, occurred_at=at,
                      customer=customer)]

    def export_deliveries(self, order):
        return []

    # outbound
    def create_coupon(self, shop, action):
        made = _call(shop, "POST", "discounts", json={"code": action.code, "percent": str(action.value)})
        return CouponResult(code=made["code"], store_id=str(made["id"]))

    def add_tag(self, shop, customer_id, action):
        _call(shop, "POST", f"customers/{customer_id}/tags", json={"tag": action.tag})

    def marketing_consent(self, shop, customer_id):
        return None

    def unsubscribe(self, shop, customer_id, at):
        _call(shop, "POST", f"customers/{customer_id}/unsubscribe")
        return "done"

    def sms_consent_update(self, shop, customer_id, subscribed, at):
        _call(shop, "POST", f"customers/{customer_id}/sms", json={"subscribed": subscribed})
        return "done"

    def discount_link(self, shop, code):
        return f"https://{shop.domain}/discount/{code}"

    def shop_profile(self, shop):
        return _call(shop, "GET", "store")

    # sync
    def changes_since(self, shop, since):
        return iter(())

    def history(self, shop, since, cursor):
        return iter(())

    def revive_webhooks(self, shop, app_url):
        return []

    # install
    blueprint = Blueprint("acme", __name__, url_prefix="/acme")

    def normal_domain(self, domain):
        return domain.lower()

    def default_api_url(self, domain):
        return f"https://{domain}/api"

    def webhook_url(self, app_url, shop_id):
        return f"{app_url}/webhooks/acme"

    def register_webhooks(self, shop, app_url):
        _call(shop, "POST", "webhooks", json={"url": self.webhook_url(app_url, shop.id), "secret": shop.webhook_secrets[0]})
        return sorted(self.topics)

    def with_app(self, shop, config):
        return shop

    # admin authentication: ``X-Acme-Session: <store domain>.<signature of it with the shop's secret>``
    @staticmethod
    def _session(request, edge):
        given = request.headers.get("X-Acme-Session")
        if not given:
            return None
        domain, _, signature = given.rpartition(".")
        shop = edge.shops.get("acme", domain)
        if shop is None or not hmac.compare_digest(_sign(shop.webhook_secrets[0], domain), signature):
            raise Unauthenticated("not a valid Acme session")
        return shop.id

    admin_schemes = ((_session, True),)

    def frame_ancestors(self, request, domain):
        return None  # Acme's admin does not embed apps

    def customer_admin_url(self, domain, customer_id):
        return f"https://{domain}/admin/people/{customer_id}"


@AcmeConnector.blueprint.get("/install")
def _install_page():
    return "Install Keepwell on your Acme store"


# --- the test -------------------------------------------------------------------------------------

STORE = "corner.acme.test"
API = f"https://{STORE}/api"


@pytest.fixture
def acme():
    connector = AcmeConnector()
    connectors.register("acme", connector)  # the registry line
    yield connector
    connectors.unregister("acme")


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request, tmp_path):
    return f"sqlite:///{tmp_path}/keepwell.db" if request.param == "sqlite" else request.getfixturevalue("postgres_url")


@pytest.fixture
def live(acme, redis_server, smtp, database_url):
    """Keepwell started with Acme registered (the web app registers its platforms' pages)."""
    live = start(redis_server, database_url, smtp)
    yield live
    stop(live)


@pytest.fixture
def live_without_acme(redis_server, smtp, tmp_path):
    live = start(redis_server, f"sqlite:///{tmp_path}/keepwell.db", smtp)
    yield live
    stop(live)


def signup(live, secret: str, event: str = "evt-1", store: str = STORE):
    body = json.dumps({"id": 501, "email": "noa@example.com", "name": "Noa", "newsletter": True,
                       "signed_up_at": live.clock.now.isoformat()}).encode()
    return live.client.post("/webhooks/acme", data=body, headers={
        "X-Acme-Store": store, "X-Acme-Topic": "customer.signup", "X-Acme-Event": event,
        "X-Acme-Signature": _sign(secret, body), "Content-Type": "application/json"})


def test_the_registered_package_implements_every_interface(acme):
    assert "acme" in connectors.platforms() and connectors.get("acme") is acme
    assert all(isinstance(acme, interface) for interface in INTERFACES)
    assert "acme" not in [p.value for p in connectors.Platform]  # the shipped list is untouched
    with pytest.raises(ValueError):
        connectors.register("shopify", types.SimpleNamespace())  # a shipped platform cannot be replaced


def test_a_registered_platform_runs_end_to_end(live, acme):
    with pytest.raises(ValueError, match="acme credentials"):
        live.add_shop("acme", STORE, credentials={"password": "hunter2"})  # its schema decides
    shop_id, secret = live.add_shop("acme", STORE.upper(), credentials={"api_key": "ak_live_1"})
    (row,) = live.rows(ShopRow, id=shop_id)
    assert (row.platform, row.domain, row.api_url) == ("acme", STORE, API)
    assert secret and "ak_live_1" not in row.secrets  # its own webhook secret; credentials encrypted

    assert live.client.get("/acme/install").status_code == 200  # its install page is served
    assert live.client.post("/webhooks/unknown-platform", data=b"{}").status_code == 404
    unsigned = live.client.post("/webhooks/acme", data=b"{}", headers={"X-Acme-Topic": "ping"})
    assert unsigned.get_json() == {"status": "pong"}  # answered by the package before any shop lookup
    assert signup(live, "not-the-secret").status_code == 401
    assert signup(live, secret, store="other.acme.test").status_code == 404
    assert live.client.post(f"/webhooks/acme/{shop_id}", data=b"{}").status_code == 404  # Acme names shops by header

    with responses.RequestsMock() as store:
        store.get(f"{API}/store", json={"name": "Corner Shop", "email": "hello@corner.acme.test",
                                        "postal_address": "1 Corner Rd, Springfield"})
        store.add_callback(responses.POST, f"{API}/discounts", content_type="application/json",
                           callback=lambda req: (201, {}, json.dumps({"id": 88, "code": json.loads(req.body)["code"]})))
        assert signup(live, secret).status_code == 202
        assert signup(live, secret).status_code == 200  # the same event again: a duplicate
        live.work()
        live.clock.now += timedelta(hours=1, seconds=1)  # the welcome waits an hour for consent updates
        assert sweep_timers(live.rt, grace=timedelta(0)) == 1
        live.work()
        created = [c for c in store.calls if c.request.url == f"{API}/discounts"]

    (decision,) = live.rows(DecisionRow, rule_id="welcome")
    assert decision.status == "done", decision.error
    coupon = next(e for e in live.rows(EffectRow, decision_key=decision.key) if e.type == "coupon")
    assert coupon.status == "done" and coupon.store_id == "88"
    (call,) = created
    assert call.request.headers["Authorization"] == "Bearer ak_live_1"
    assert json.loads(call.request.body)["code"] == coupon.coupon_code
    (message,) = live.smtp.messages
    assert message["To"].addresses[0].addr_spec == "noa@example.com"
    assert coupon.coupon_code in message.get_body(("plain",)).get_content()
    assert "1 Corner Rd, Springfield" in message.get_body(("plain",)).get_content()  # its shop_profile


def test_a_registered_platforms_merchants_sign_in_with_its_scheme(live, acme):
    shop_id, secret = live.add_shop("acme", STORE, credentials={"api_key": "ak_live_1"})
    good = live.client.get("/admin/", headers={"X-Acme-Session": f"{STORE}.{_sign(secret, STORE)}"})
    assert good.status_code == 200 and STORE in good.get_data(as_text=True)
    bad = live.client.get("/admin/", headers={"X-Acme-Session": f"{STORE}.{_sign('guess', STORE)}"})
    assert bad.status_code == 401
    assert live.client.get("/admin/").status_code == 401  # no credentials of any kind


def test_an_unregistered_platform_is_not_served(live_without_acme):
    live = live_without_acme
    with pytest.raises(ValueError, match="unknown platform 'acme'"):
        live.add_shop("acme", STORE, credentials={"api_key": "ak"})
    assert live.client.post("/webhooks/acme", data=b"{}").status_code == 404
    assert live.client.get("/acme/install").status_code == 404
    with pytest.raises(KeyError):
        connectors.get("acme")
