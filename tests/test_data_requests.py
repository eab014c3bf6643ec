"""Privacy duties, end to end (the real app, an RQ worker, SMTP, SQLite and PostgreSQL; Shopify
mocked at the HTTP layer): a customers/data_request export reaches the shop owner by email with
a download link that works for a limited time, and on the dashboard's Privacy page; exports and
customers quiet for the retention period are purged, opt-outs kept."""
from __future__ import annotations

import re
from datetime import timedelta
from urllib.parse import urlsplit

import itsdangerous
import pytest
import responses
from sqlalchemy import update

from plugin import data_requests, jobs
from plugin.admin_auth import admin_link
from plugin.db import CustomerRow, DataExportRow, UnsubscribeRow
from plugin.mail import unsubscribe_token
from live import STORES, SHOPIFY_SECRET, running, shopify_sample, work
from test_live_failures import T0, signed_up


@pytest.fixture(params=["sqlite", "postgres"])
def live(request, redis_server, smtp, tmp_path):
    with running(request, redis_server, smtp, tmp_path) as live:
        live.clock.now = T0
        yield live


@pytest.fixture
def rsps():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


def data_request(live, store, customer_id: str, request_id: int = 9999):
    payload = shopify_sample("customers_data_request")
    payload.update(shop_domain=store.domain)
    payload["customer"].update(id=int(customer_id), email="zoe@example.com")
    payload["data_request"]["id"] = request_id
    r = live.post_shopify("customers/data_request", payload, store.domain, secret=SHOPIFY_SECRET)
    assert r.status_code == 200 and r.get_json() == {"status": "queued"}
    work(live)


def owner_mail(live):
    (msg,) = [m for m in live.smtp.messages if m["To"].addresses[0].addr_spec == "owner@keepwell-coffee.example"]
    return msg


def link_in(msg) -> str:
    return re.search(r"https://keepwell\.test/privacy/exports/\S+", msg.get_body(("plain",)).get_content()).group(0)


def test_the_export_reaches_the_shop_owner_with_a_download_link(live, rsps):
    store = STORES["shopify"](live, rsps)
    cid, email = signed_up(store, live)
    data_request(live, store, cid)
    (export,) = live.rows(DataExportRow)
    msg = owner_mail(live)
    assert "9999" in msg["Subject"] and str(msg["From"]) == live.config.mail_from
    body = msg.get_body(("plain",)).get_content()
    assert email not in body and "Zoe" not in body  # the email carries a link, not the data
    r = live.app.test_client().get(urlsplit(link_in(msg)).path)
    assert r.status_code == 200 and r.headers["Cache-Control"] == "no-store"
    assert r.headers["Content-Disposition"] == f'attachment; filename="keepwell-data-request-9999-customer-{cid}.json"'
    assert r.get_json()["customer_state"]["email"] == email and r.get_json()["request_id"] == "9999"
    # Shopify's retry of the request: the same export, the link still works, no second row
    data_request(live, store, cid)
    assert [e.id for e in live.rows(DataExportRow)] == [export.id]


def test_the_link_expires_and_cannot_be_bent_to_another_export(live, rsps, monkeypatch):
    store = STORES["shopify"](live, rsps)
    cid, _ = signed_up(store, live)
    data_request(live, store, cid)
    (export,) = live.rows(DataExportRow)
    client = live.app.test_client()
    real = itsdangerous.TimestampSigner.get_timestamp
    monkeypatch.setattr(itsdangerous.TimestampSigner, "get_timestamp",
                        lambda self: real(self) - int(data_requests.LINK_TTL.total_seconds()) - 60)
    old = data_requests.download_token(live.config.secret_keys, store.shop_id, export.id)
    monkeypatch.undo()
    r = client.get(f"/privacy/exports/{old}")
    assert r.status_code == 410 and b"dashboard" in r.data
    forged = data_requests.download_token(("another-key",), store.shop_id, export.id)
    assert client.get(f"/privacy/exports/{forged}").status_code == 404
    other_shop = data_requests.download_token(live.config.secret_keys, "sh_someoneelse", export.id)
    assert client.get(f"/privacy/exports/{other_shop}").status_code == 410
    # signed with the previous key during a rotation: still good
    rotated = type(live.config)(**{**live.config.__dict__, "secret_keys": ("new-key", *live.config.secret_keys)})
    assert data_requests.download_url(rotated, store.shop_id, export.id) != data_requests.download_url(
        live.config, store.shop_id, export.id)
    assert client.get(urlsplit(data_requests.download_url(live.config, store.shop_id, export.id)).path).status_code == 200


def test_the_privacy_page_lists_the_shops_exports_only(live, rsps):
    store = STORES["shopify"](live, rsps)
    cid, _ = signed_up(store, live)
    data_request(live, store, cid)
    (export,) = live.rows(DataExportRow)
    woo = STORES["woocommerce"](live, rsps)
    for shop_id, sees in ((store.shop_id, True), (woo.shop_id, False)):
        client = live.app.test_client()
        link = urlsplit(admin_link(live.config, shop_id, 60))
        client.get(f"{link.path}?{link.query}")
        page = client.get("/admin/privacy").get_data(as_text=True)
        assert (f'data-export="{export.id}"' in page) is sees
        assert "1095 days after their last change" in page
        r = client.get(f"/admin/privacy/exports/{export.id}")
        assert r.status_code == (200 if sees else 404)
        if sees:
            assert r.get_json()["customer_id"] == cid


def test_retention_purges_old_exports_and_quiet_customers_but_keeps_opt_outs(live, rsps):
    store = STORES["shopify"](live, rsps)
    quiet, _ = signed_up(store, live, "quinn")
    active = store.customer(2)
    store.signup(active, T0, "ava@example.com", "Ava")
    work(live)
    token = unsubscribe_token(live.config.secret_key, store.shop_id, quiet)
    live.client.post(f"/unsubscribe/{token}", data={"List-Unsubscribe": "One-Click"})
    work(live)
    data_request(live, store, quiet)
    now = live.rows(DataExportRow)[0].created_at + timedelta(days=31)  # exports are dated by the wall clock
    with live.rt.sessions.begin() as s:
        s.execute(update(CustomerRow).where(CustomerRow.customer_id == quiet)
                  .values(updated_at=now - timedelta(days=live.config.retention_days + 1)))
        s.execute(update(CustomerRow).where(CustomerRow.customer_id == active)
                  .values(updated_at=now - timedelta(days=live.config.retention_days - 1)))
    live.clock.now = now
    assert data_requests.purge(live.rt) == {"exports": 1, "customers": 1, "more": False}
    assert live.rows(DataExportRow) == []
    assert [c.customer_id for c in live.rows(CustomerRow)] == [active]
    assert [u.customer_id for u in live.rows(UnsubscribeRow)] == [quiet]  # the opt-out stays honoured
    assert data_requests.purge(live.rt) == {"exports": 0, "customers": 0, "more": False}
    # the minutely tick runs it once a day
    jobs.tick()
    assert live.rt.queue.fetch_job(f"{live.config.queue}-purge-{now:%Y%m%d}") is not None
