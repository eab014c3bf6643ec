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
from rq import SimpleWorker
from sqlalchemy import text

from plugin import runtime as runtime_module
from plugin.app import create_app
from plugin.config import Config
from plugin.db import Base, sessions, upgrade
from plugin.pipeline import Runtime

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "platforms"
SHOPIFY_SECRET = "shpss_test_app_secret"


def load_json(*parts) -> dict:
    return json.loads(SHARED.joinpath(*parts).read_text())


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
        """Run a real RQ worker in this process until the queue is empty."""
        SimpleWorker([self.rt.queue], connection=self.rt.redis).work(burst=True, with_scheduler=False)

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


def start(redis_url: str, database_url: str, smtp) -> Live:
    config = Config(redis_url=redis_url, database_url=database_url, smtp_url=smtp.url, app_url="https://keepwell.test",
                    shopify_api_secrets=(SHOPIFY_SECRET,), queue=f"kwt{uuid.uuid4().hex[:8]}",
                    secret_keys=("test-secret-key",), mail_from="Keepwell Demo <shop@keepwell.test>")
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
