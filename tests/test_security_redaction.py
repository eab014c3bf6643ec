"""Credentials never reach errors, logs or stored effect errors. A WooCommerce store over plain http
is called with the consumer key and the OAuth signature in the query string, and a connection
failure quotes that URL: a store that is down (a loopback port nobody listens on) must not put
them into the CLI's output, the worker's log or the effect's stored error."""
from __future__ import annotations

import logging
import re
from datetime import datetime, timedelta, timezone

import pytest
import requests
import responses
from click.testing import CliRunner
from sqlalchemy import update

from conftest import free_port
from connectors.woocommerce.client import store_error
from live import STORES, advance, decisions, effects, running, start, stop, work
from plugin.cli import main
from plugin.db import ShopRow
from plugin.redact import install_log_redaction, redact

CK = "ck_8c3b0c5b84f4e1e7d0c5b2a6a4f1c2d3e4f5a6b7"
CS = "cs_1f2e3d4c5b6a79880716253443526170819a2b3c"
T0 = datetime(2026, 11, 23, 12, 0, tzinfo=timezone.utc)
SIGNED = re.compile(r"oauth_(signature|consumer_key)=(?!\[redacted\])")


def leaks(text: str, *secrets: str) -> list[str]:
    return [s for s in secrets if s in text] + SIGNED.findall(text)


@pytest.mark.parametrize("text,secret", [
    ("GET http://store.test/wp-json/wc/v3/webhooks?oauth_consumer_key=ck_x&oauth_signature=abc%2Bdef%3D", "abc%2Bdef"),
    (f"Basic auth failed for {CK}", CK),
    (f"key {CS} rejected", CS),
    ("X-Shopify-Access-Token: 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", "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"),
    ('{"consumer_secret": "s3cr3t-value", "ok": 1}', "s3cr3t-value"),
    ("smtp+starttls://mailer:hunter2@smtp.example:587", "hunter2"),
    ("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig", "eyJhbGciOiJIUzI1NiJ9"),
])
def test_redact_masks_credentials(text, secret):
    assert secret not in redact(text) and "[redacted]" in redact(text)


def test_redact_keeps_ordinary_text():
    text = "WooCommerce POST coupons: 400 rest_invalid_param: Invalid parameter(s): email_restrictions"
    assert redact(text) == text


def test_a_store_error_quoting_a_signed_url_is_masked():
    # requests' own text for a refused connection quotes the whole signed URL
    url = f"/wp-json/wc/v3/webhooks?oauth_consumer_key={CK}&oauth_nonce=n1&oauth_signature=Zm9vYmFy%3D"
    exc = requests.ConnectionError(f"HTTPConnectionPool(host='store.test', port=80): Max retries exceeded with "
                                   f"url: {url} (Caused by NewConnectionError('Failed to establish a new "
                                   f"connection: [Errno 111] Connection refused'))")
    error = store_error("GET", "webhooks", exc=exc)
    assert error.retryable and "Max retries exceeded" in error.message
    assert leaks(error.message + str(error), CK, "Zm9vYmFy") == [], error.message


@pytest.fixture
def down_store(monkeypatch):
    monkeypatch.setenv("KEEPWELL_ALLOW_PRIVATE_STORES", "1")  # a loopback store, as in development
    return f"http://127.0.0.1:{free_port()}"  # nothing listens there: connection refused


@pytest.fixture
def live(redis_server, smtp, tmp_path):
    live = start(redis_server, f"sqlite:///{tmp_path}/keepwell.db", smtp, allow_private_stores=True)
    yield live
    stop(live)


def test_a_failed_disconnect_prints_no_key_or_signature(live, down_store):
    shop_id, _ = live.add_shop("woocommerce", down_store, consumer_key=CK, consumer_secret=CS)
    env = {"DATABASE_URL": live.config.database_url, "KEEPWELL_SECRET_KEY": live.config.secret_key,
           "KEEPWELL_APP_URL": "https://keepwell.test", "REDIS_URL": live.config.redis_url,
           "KEEPWELL_QUEUE": live.config.queue, "KEEPWELL_ALLOW_PRIVATE_STORES": "1"}
    result = CliRunner().invoke(main, ["shop", "disconnect", shop_id], env=env)
    assert result.exit_code == 1
    assert "store error: WooCommerce GET webhooks: ConnectionError" in result.stderr
    assert leaks(result.output + result.stderr, CK, CS) == [], result.stderr


def test_a_store_that_is_down_leaves_no_credentials_in_the_worker_log_or_the_effect(redis_server, smtp, tmp_path,
                                                                                     request, down_store, caplog):
    with running(request, redis_server, smtp, tmp_path) as live, \
            responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        live.clock.now = T0
        store = STORES["woocommerce"](live, rsps)
        cid = store.customer(1)
        store.signup(cid, T0, "zoe@example.com", "Zoe")
        work(live)
        with live.rt.sessions.begin() as session:  # the store goes down, reached over plain http
            session.execute(update(ShopRow).where(ShopRow.id == store.shop_id).values(api_url=down_store))
        live.rt._shops.clear()  # the worker's short shop cache
        rsps.add_passthru(down_store)
        install_log_redaction()
        with caplog.at_level(logging.INFO):
            advance(live, T0 + timedelta(hours=1, minutes=3))
        (d,) = [d for d in decisions(live, "welcome", cid) if d.kind == "touch"]
        coupon = effects(live, d)["coupon"]
        assert coupon.attempts == 1 and "ConnectionError" in coupon.error
        assert leaks(coupon.error, "ck_test", "cs_test") == [], coupon.error
        logged = "\n".join(r.getMessage() + (r.exc_text or "") for r in caplog.records)
        assert "ConnectionError" in logged
        assert leaks(logged, "ck_test", "cs_test") == []


def test_the_log_safety_net_masks_what_any_logger_writes(caplog):
    install_log_redaction()
    with caplog.at_level(logging.INFO):
        logging.getLogger("somewhere.else").info("calling %s", f"http://s.test/x?oauth_consumer_key={CK}&oauth_signature=zz")
        try:
            raise RuntimeError(f"boom at http://s.test/x?consumer_secret={CS}")
        except RuntimeError:
            logging.getLogger("rq.worker").exception("job failed")
    text = "\n".join(r.getMessage() + (r.exc_text or "") for r in caplog.records)
    assert "RuntimeError" in text and leaks(text, CK, CS, "zz") == []
