"""A gift bought for a birthday, a reminder a year later, end to end on both platforms: the
occasion answers arrive in the real payload shapes (WooCommerce order ``meta_data`` written by
the WordPress plugin, Shopify ``note_attributes`` from the cart block) through the signed edge
into the real worker; a year later the timer sweep sends the reminder with its coupon."""
from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone

import pytest
import responses

from live import (FIXTURES, FakeShopify, FakeWoo, advance, done_touch, gmt, iso, mails_to, outside_holdout, running,
                  text_and_html, woo_customer, work)

GIFT_DAY = datetime(2026, 12, 10, 12, 5, 9, tzinfo=timezone.utc)
REMINDED = datetime(2027, 12, 13, 9, 0, tzinfo=timezone.utc)  # a week before 20 December 2027, at 09:00 UTC


@pytest.fixture(params=["sqlite", "postgres"])
def live(request, redis_server, smtp, tmp_path):
    with running(request, redis_server, smtp, tmp_path) as live:
        live.clock.now = GIFT_DAY
        yield live


@pytest.fixture
def rsps():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


def _remind_next_year(live, customer_id: str, email: str) -> str:
    work(live)
    for day in (3, 15, 91, 366):  # the year passes: referral invite, icebreaker and win-back go out on their days
        advance(live, GIFT_DAY + timedelta(days=day))
    advance(live, datetime(2027, 12, 12, tzinfo=timezone.utc))
    assert not any("week away" in m["Subject"] for m in mails_to(live, email))  # never early
    advance(live, REMINDED.replace(minute=3))
    _, eff = done_touch(live, "occasion_reminder", customer_id)
    (mail,) = [m for m in mails_to(live, email) if "week away" in m["Subject"]]
    assert eff["coupon"].coupon_code.startswith("REMIND-") and eff["coupon"].coupon_code in text_and_html(mail)[0]
    # the reminder links to the customer's page: the offer, and the dates they can add there
    page = re.search(r"Your page: https://keepwell\.test(/p/\S+)", text_and_html(mail)[0]).group(1)
    shown = live.client.get(page).get_data(as_text=True)
    assert eff["coupon"].coupon_code in shown and "Dates to remember" in shown
    return mail["Subject"]


def test_woocommerce_gift_for_mom_reminded_a_year_later(live, rsps):
    url = "https://hanut.example"
    shop_id, secret = live.add_shop("woocommerce", url, consumer_key="ck_test", consumer_secret="cs_test",
                                    settings={"consent_meta_key": "_keepwell_marketing_opt_in", "name": "חנות הפרחים"})
    store = FakeWoo(rsps, url)
    noa = outside_holdout(shop_id, 25)
    order = json.loads((FIXTURES / "woocommerce" / "order_with_occasion.json").read_text())
    order["customer_id"] = int(noa)
    store.customers[noa] = woo_customer(int(noa), email=order["billing"]["email"], first_name="נועה", modified=gmt(GIFT_DAY))
    store.orders.append(order)
    assert live.post_woocommerce(shop_id, secret, "order.created", order).status_code == 202
    subject = _remind_next_year(live, noa, "noa.cohen@example.co.il")
    assert subject == "Birthday for אמא is a week away"


def test_shopify_gift_from_the_cart_block_reminded_a_year_later(live, rsps):
    domain = "flowers.myshopify.com"
    shop_id, _ = live.add_shop("shopify", domain, access_token="shpat_flowers", settings={"name": "Flowers"})
    FakeShopify(rsps, domain, "shpat_flowers")
    ana = outside_holdout(shop_id, 7421852987654400000)
    order = json.loads((FIXTURES / "shopify" / "order_paid_gift.json").read_text())
    order["note_attributes"][1]["value"] = "2026-12-20"  # the cart block's date input
    order["customer"].update(id=int(ana), admin_graphql_api_id=f"gid://shopify/Customer/{ana}")
    order.update(buyer_accepts_marketing=True, processed_at=iso(GIFT_DAY), created_at=iso(GIFT_DAY),
                 updated_at=iso(GIFT_DAY))
    assert live.post_shopify("orders/paid", order, domain).status_code == 202
    subject = _remind_next_year(live, ana, "ana.silva@example.com")
    assert subject == "Anniversary for Miguel is a week away"
