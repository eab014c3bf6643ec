"""End to end on both databases: a signed WooCommerce signup -> worker -> coupon + email."""
import json
from datetime import timedelta

import pytest
import responses

from plugin.db import DecisionRow, EffectRow
from plugin.pipeline import sweep_timers
from live import load_json, start, stop, woo_customer

STORE = "https://store.example"


@pytest.fixture(params=["sqlite", "postgres"])
def live(request, redis_server, smtp, tmp_path):
    url = f"sqlite:///{tmp_path}/keepwell.db" if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    live = start(redis_server, url, smtp)
    yield live
    stop(live)


@responses.activate
def test_signup_gets_welcome_coupon_and_email(live):
    shop_id, secret = live.add_shop("woocommerce", STORE, consumer_key="ck_test", consumer_secret="cs_test",
                                    settings={"consent_meta_key": "_keepwell_marketing_opt_in"})
    created = load_json("woocommerce", "rest-v3-docs-examples", "coupon_create_response.json")
    responses.post(f"{STORE}/wp-json/wc/v3/coupons", json=created, status=201)

    r = live.post_woocommerce(shop_id, secret, "customer.created", woo_customer(first_name="Zoë"))
    assert r.status_code == 202, r.data
    live.work()
    assert not live.smtp.messages  # the welcome waits an hour for consent webhooks to arrive
    live.clock.now += timedelta(hours=1, seconds=1)
    assert sweep_timers(live.rt, grace=timedelta(0)) == 1
    live.work()

    decision, = live.rows(DecisionRow, rule_id="welcome")
    assert decision.status == "done", decision.error
    coupon, email = live.rows(EffectRow, decision_key=decision.key)
    assert coupon.coupon_code.startswith("WELCOME-") and coupon.status == "done"
    sent = json.loads(responses.calls[0].request.body)
    assert sent["code"] == coupon.coupon_code and sent["email_restrictions"] == ["john.doe@example.com"]
    msg, = live.smtp.messages
    assert msg["To"].addresses[0].addr_spec == "john.doe@example.com"
    assert "Zoë" in msg["Subject"]
    assert coupon.coupon_code in msg.get_body(("plain",)).get_content()
    assert email.message_id == msg["Message-ID"]
