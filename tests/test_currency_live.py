"""The store's own currency, end to end: the shipped packs (which name no currency) run unchanged
on a EUR WooCommerce store and an ILS Shopify store whose buyer paid in EUR (compared in the shop's
``shop_money``); the shop's currency is learned from its first order, coupons are created in it,
and a coupon that names another currency is refused before any store call."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
import responses

from plugin.db import DecisionRow, EffectRow, ShopRow
from live import (FIXTURES, FakeShopify, FakeWoo, done_touch, gmt, iso, mails_to, outside_holdout, running,
                  text_and_html, woo_customer, woo_order, work)

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=timezone.utc)


@pytest.fixture(params=["sqlite", "postgres"])
def live(request, redis_server, smtp, tmp_path):
    with running(request, redis_server, smtp, tmp_path) as live:
        live.clock.now = T0
        yield live


@pytest.fixture
def rsps():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


def shop_currency(live, shop_id: str):
    with live.rt.sessions() as session:
        return (session.get(ShopRow, shop_id).settings or {}).get("currency")


def test_a_eur_woocommerce_store_runs_the_vip_pack_in_euros(live, rsps):
    url = "https://hanut.example"
    shop_id, secret = live.add_shop("woocommerce", url, consumer_key="ck_test", consumer_secret="cs_test",
                                    settings={"consent_meta_key": "_keepwell_marketing_opt_in", "name": "חנות הקפה"})
    store = FakeWoo(rsps, url)
    noa = outside_holdout(shop_id, 25, "vip_gold_welcome")
    customer = woo_customer(int(noa), email="noa@example.co.il", first_name="נועה", modified=gmt(T0))
    store.customers[noa] = customer
    order = woo_order(4101, int(noa), email="noa@example.co.il", total="612.40", modified=gmt(T0))
    order["currency"] = "EUR"
    order["billing"]["first_name"] = "נועה"
    assert shop_currency(live, shop_id) is None
    r = live.post_woocommerce(shop_id, secret, "order.created", order)
    assert r.status_code == 202
    work(live)

    assert shop_currency(live, shop_id) == "EUR"  # learned from the store's first order
    _, tier = done_touch(live, "vip_gold_tier", noa)  # "at_least: 500" means 500 EUR on this store
    _, eff = done_touch(live, "vip_gold_welcome", noa)
    (body,) = [b for b in store.creates if b["code"] == eff["coupon"].coupon_code]
    assert (body["discount_type"], body["amount"]) == ("fixed_cart", "25")
    (mail,) = mails_to(live, "noa@example.co.il")
    text, html = text_and_html(mail)
    assert mail["Subject"] == "Welcome to Gold, נועה"
    assert "25.00 EUR off" in text and "25.00 EUR off" in html


def test_an_ils_shopify_store_compares_a_multi_currency_order_in_shop_money(live, rsps):
    domain = "hanut-tel-aviv.myshopify.com"
    shop_id, _ = live.add_shop("shopify", domain, access_token="shpat_ils", settings={"name": "חנות תל אביב"})
    api = FakeShopify(rsps, domain, "shpat_ils")
    dana = outside_holdout(shop_id, 7421852987654330000, "vip_gold_welcome")
    # The buyer paid 160 EUR; the shop's books say 652.80 ILS. Only the latter reaches the Gold tier.
    order = json.loads((FIXTURES / "shopify" / "order_paid_multicurrency.json").read_text())
    order["customer"].update(id=int(dana), admin_graphql_api_id=f"gid://shopify/Customer/{dana}")
    order.update(processed_at=iso(T0), created_at=iso(T0), updated_at=iso(T0 + timedelta(seconds=3)))
    r = live.post_shopify("orders/paid", order, domain)
    assert r.status_code == 202
    work(live)

    assert shop_currency(live, shop_id) == "ILS"
    with live.rt.sessions() as session:
        from plugin.db import CustomerRow
        state = session.get(CustomerRow, (shop_id, dana)).state
    assert (state["currency"], state["orders"][0]["total"]) == ("ILS", "652.80")
    done_touch(live, "vip_gold_tier", dana)
    _, eff = done_touch(live, "vip_gold_welcome", dana)
    discount = api.discounts[eff["coupon"].coupon_code.upper()]
    assert discount["customerGets"]["value"] == {"discountAmount": {"amount": "25", "appliesOnEachItem": False}}
    (mail,) = mails_to(live, "dana@example.co.il")
    assert "25.00 ILS off" in text_and_html(mail)[0]


def test_a_coupon_in_another_currency_is_refused_before_any_store_call(live, rsps, tmp_path):
    url = "https://euro.example"
    shop_id, secret = live.add_shop("woocommerce", url, consumer_key="ck_test", consumer_secret="cs_test",
                                    settings={"consent_meta_key": "_keepwell_marketing_opt_in", "currency": "EUR"})
    store = FakeWoo(rsps, url)
    rules = tmp_path / "usd"
    (rules / "templates").mkdir(parents=True)
    (rules / "templates" / "gift.txt").write_text("{{ coupon.discount }}")
    (rules / "templates" / "gift.html").write_text("<p>{{ coupon.discount }}</p>")
    (rules / "gift.yaml").write_text(
        "rules:\n  - id: gift\n    trigger: order.paid\n    actions:\n"
        "      - coupon: {discount: \"10 USD\", code_prefix: GIFT}\n      - email: {template: gift, subject: Gift}\n")
    from plugin import rulesets
    with live.rt.sessions.begin() as session:
        pushed = rulesets.push(session, shop_id, rules)
    assert [w.message for w in pushed.warnings] == [
        "warning: a marketing rule without a holdout: nobody can tell what it earns. Add holdout: 10% (or write "
        "holdout: 0% to reach everyone on purpose)",
        "warning: this coupon never expires: add expires_in (e.g. 30d), or a code sent once stays good for ever and a "
        "deadline is what brings customers back",
        "warning: '10 USD' names USD, but the shop's currency is EUR; write the amount without a currency to mean the shop's"]
    customer = outside_holdout(shop_id, 25)
    store.customers[customer] = woo_customer(int(customer), modified=gmt(T0))
    order = woo_order(4201, int(customer), total="80.00", modified=gmt(T0))
    order["currency"] = "EUR"
    assert live.post_woocommerce(shop_id, secret, "order.created", order).status_code == 202
    work(live)

    (d,) = live.rows(DecisionRow, rule_id="gift")
    (coupon,) = live.rows(EffectRow, decision_key=d.key, type="coupon")
    assert coupon.status == "failed"
    assert "the rule gives an amount in USD, but the store's currency is EUR" in coupon.error
    assert store.creates == []
