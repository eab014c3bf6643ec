"""Every shipped rule pack, end to end, on both platforms and both databases: signed webhooks
into the real app, a real RQ worker, timers fired by moving the worker's clock (as tick's sweep
does), coupons and tags written to the store API (mocked at the HTTP layer), emails received by a
real SMTP server, and the ledger rows that record it all.

What the platforms' data cannot feed (see the report in each test's docstring):
- WooCommerce has no consent topic: a later opt-in (customer meta on customer.updated) never
  triggers welcome_on_opt_in, which listens to customer.consent_changed.
- Shopify customers have no birthday field: the birthday rule cannot fire on Shopify.
- Order webhooks carry no product collections: the connectors ask the store for them (mocked
  here like every store call), so the shipped cross_sell pack fires on both platforms.
- Neither connector fills ``customer.anniversary``: the anniversary rule cannot fire.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
import responses

from plugin import jobs
from plugin.db import CustomerRow, TimerRow
from plugin.engine.referral import referral_code
from plugin.engine.ruleset import Settings
from plugin.rulefile import RULES_DIR
from live import (STORES, advance, check_email, decisions, done_touch, gmt, install_pack_variant, mails_to,
                  run_scheduled, running, scheduled, shopify_consent, shopify_customer, text_and_html, work)

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=timezone.utc)
DAY = timedelta(days=1)
LATE = timedelta(minutes=3)  # tick fires timers two minutes after they are due


def shop_code(live, shop_id: str, customer_id: str) -> str:
    """The referral code Keepwell gives the customer: keyed with the shop's secret referral key."""
    from plugin.db import ShopRow
    from plugin.shops import to_shop

    (row,) = live.rows(ShopRow, id=shop_id)
    return referral_code(Settings(referral_key=to_shop(row, live.config).referral_key), shop_id, customer_id)


@pytest.fixture(params=["sqlite", "postgres"])
def live(request, redis_server, smtp, tmp_path):
    with running(request, redis_server, smtp, tmp_path) as live:
        live.clock.now = T0
        yield live


@pytest.fixture
def rsps():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


@pytest.fixture(params=["shopify", "woocommerce"])
def store(request, live, rsps):
    return STORES[request.param](live, rsps)


def at(live, t: datetime) -> None:
    """Webhooks arrive at ``t``: the worker's clock says so while it processes them."""
    live.clock.now = t
    work(live)


def coupon_terms(store, code: str) -> dict:
    """What the store was asked for, in platform-neutral terms."""
    body = store.coupon(code)
    if store.platform == "shopify":
        value = body["customerGets"]["value"]
        customers = (body["context"].get("customers") or {}).get("add")
        minimum = (body.get("minimumRequirement") or {}).get("subtotal", {}).get("greaterThanOrEqualToSubtotal")
        return {"percent": round(value["percentage"] * 100) if "percentage" in value else None,
                "fixed": value.get("discountAmount", {}).get("amount"), "minimum": minimum,
                "for": customers and [c.rsplit("/", 1)[1] for c in customers], "usage_limit": body["usageLimit"],
                "expires": body["endsAt"]}
    return {"percent": int(body["amount"]) if body["discount_type"] == "percent" else None,
            "fixed": body["amount"] if body["discount_type"] == "fixed_cart" else None,
            "minimum": body.get("minimum_amount"), "for": body.get("email_restrictions"),
            "usage_limit": body.get("usage_limit"), "expires": body.get("date_expires")}


def expires(store, t: datetime):
    return t.isoformat() if store.platform == "shopify" else gmt(t) + "+00:00"


def personal(store, customer_id: str, email: str):
    """Whom a personal coupon is for: the customer (Shopify) or their email (WooCommerce)."""
    return [customer_id] if store.platform == "shopify" else [email]


# --- welcome -----------------------------------------------------------------------------------------

def test_welcome_an_hour_after_signup(store, live):
    """The welcome waits an hour: Shopify's customers/create carries no consent, its separate
    consent topic does; consent is checked when the hour is over."""
    zoe = store.customer(1)
    store.signup(zoe, T0, "zoe@example.com", "Zoë")
    at(live, T0 + timedelta(seconds=5))
    assert live.smtp.messages == [] and store.coupon_codes() == []
    assert decisions(live, "welcome_on_opt_in", zoe) == []  # an opt-in at signup is not a later opt-in

    advance(live, T0 + timedelta(hours=1) + LATE)
    d, eff = done_touch(live, "welcome", zoe)
    code = eff["coupon"].coupon_code
    assert code.startswith("WELCOME-") and eff["coupon"].store_id
    assert coupon_terms(store, code) == {"percent": 10, "fixed": None, "minimum": None,
                                         "for": personal(store, zoe, "zoe@example.com"), "usage_limit": 1,
                                         "expires": expires(store, live.clock.now + 14 * DAY)}
    if store.platform == "woocommerce":
        assert store.coupon(code)["meta_data"] == [{"key": "keepwell_key", "value": f"{d.key}:0"}]
    else:
        assert store.coupon(code)["appliesOncePerCustomer"] is True
    (msg,) = mails_to(live, "zoe@example.com")
    check_email(live, msg, to="zoe@example.com", subject="Welcome, Zoë! Here is 10% off", code=code,
                effect=eff["email"])
    advance(live, T0 + 3 * DAY)
    assert len(live.smtp.messages) == 1 and decisions(live, "welcome_on_opt_in", zoe) == []


def test_a_timer_fires_once_whether_rq_or_the_minutely_tick_gets_there(store, live):
    """A timer is a durable TimerRow that plugin.jobs.tick fires when due, and (when it is due soon
    enough to be worth one) an RQ scheduled job too: whichever runs first fires it, once."""
    zoe = store.customer(1)
    store.signup(zoe, T0, "zoe@example.com", "Zoë")
    at(live, T0 + timedelta(seconds=5))
    (timer,) = [t for t in live.rows(TimerRow, shop_id=store.shop_id) if ":welcome:" in t.key]
    assert (timer.status, timer.wake_at) == ("pending", T0 + timedelta(hours=1, seconds=5))
    live.clock.now = T0 + timedelta(hours=1) + LATE
    rq_timers = scheduled(live, "plugin.jobs.fire_timer")
    if rq_timers:  # RQ's scheduler moves the job to the queue when it is due
        assert run_scheduled(live, "plugin.jobs.fire_timer") == 1
    assert jobs.tick()["timers"] == (0 if rq_timers else 1)
    work(live)
    done_touch(live, "welcome", zoe)
    live.clock.now += timedelta(minutes=1)
    assert jobs.tick()["timers"] == 0
    work(live)
    assert len(live.smtp.messages) == 1 and len(store.coupon_codes()) == 1


def test_shopify_consent_before_the_signup_still_gets_one_welcome(live, rsps):
    """Shopify does not order its webhooks: the consent topic may come before customers/create."""
    store = STORES["shopify"](live, rsps)
    amy = store.customer(1)
    store.post("customers_email_marketing_consent/update", shopify_consent(amy, T0, email="amy@example.com"))
    store.post("customers/create", shopify_customer(amy, T0, email="amy@example.com", first_name="Amy"))
    at(live, T0 + timedelta(seconds=5))
    advance(live, T0 + timedelta(hours=1) + LATE)
    d, eff = done_touch(live, "welcome", amy)
    assert decisions(live, "welcome_on_opt_in", amy) == []
    (msg,) = live.smtp.messages
    check_email(live, msg, to="amy@example.com", subject="Welcome, Amy! Here is 10% off",
                code=eff["coupon"].coupon_code, effect=eff["email"])


def test_woocommerce_keeps_the_coupon_expiry(live, rsps):
    store = STORES["woocommerce"](live, rsps)
    zoe = store.customer(1)
    store.signup(zoe, T0, "zoe@example.com", "Zoë")
    at(live, T0)
    advance(live, T0 + timedelta(hours=1) + LATE)
    _, eff = done_touch(live, "welcome", zoe)
    stored = store.api.coupons[eff["coupon"].coupon_code.lower()]  # what GET /coupons/<id> would show
    assert stored["date_expires_gmt"] == gmt(live.clock.now + 14 * DAY)


def test_no_welcome_without_consent_then_the_opt_in_welcome(store, live, request):
    ned = store.customer(1)
    store.signup(ned, T0, "ned@example.com", "Ned", consent=False)
    at(live, T0 + timedelta(seconds=5))
    advance(live, T0 + timedelta(hours=1) + LATE)
    (held,) = decisions(live, "welcome", ned)
    assert (held.status, held.reason) == ("suppressed", "consent")
    assert live.smtp.messages == [] and store.coupon_codes() == []

    store.opt_in(ned, T0 + 2 * DAY, "ned@example.com", "Ned")  # two days later Ned subscribes
    at(live, T0 + 2 * DAY)
    d, eff = done_touch(live, "welcome_on_opt_in", ned)
    assert set(eff) == {"email"} and store.coupon_codes() == []
    (msg,) = mails_to(live, "ned@example.com")
    check_email(live, msg, to="ned@example.com", subject="Thanks for subscribing", code=None, effect=eff["email"])
    assert "Thanks for subscribing, Ned" in text_and_html(msg)[0]


# --- icebreaker (and the referral invite that shares its first order) --------------------------------

def test_icebreaker_two_weeks_after_a_first_order(store, live):
    ana, ben = store.customer(1, "icebreaker"), store.customer(2, "icebreaker")
    store.order(5001, ana, T0, email="ana@example.com", first_name="Ana")
    store.order(5002, ben, T0, email="ben@example.com", first_name="Ben")
    at(live, T0)
    assert live.smtp.messages == [] and store.coupon_codes() == []  # both rules wait

    advance(live, T0 + 2 * DAY + LATE)  # the referral invite's 2-day delay is over
    d, eff = done_touch(live, "referral_invite", ana)
    code = shop_code(live, store.shop_id, ana)
    assert eff["coupon"].coupon_code == code
    terms = coupon_terms(store, code)
    assert terms["percent"] == 10 and not terms["for"] and terms["usage_limit"] is None  # for any friend
    (invite,) = mails_to(live, "ana@example.com")
    check_email(live, invite, to="ana@example.com", subject="Give 10%, get a thank-you", code=code, effect=eff["email"])
    if store.platform == "shopify":
        assert f"https://{store.domain}/discount/{code}" in text_and_html(invite)[0]

    store.order(5003, ben, T0 + 3 * DAY, email="ben@example.com", first_name="Ben")  # Ben came back by himself
    at(live, T0 + 3 * DAY)
    advance(live, T0 + 13 * DAY)
    assert not [x for x in store.coupon_codes() if x.startswith("THANKS-")]

    advance(live, T0 + 14 * DAY + LATE)
    d, eff = done_touch(live, "icebreaker", ana)
    code = eff["coupon"].coupon_code
    assert code.startswith("THANKS-")
    assert coupon_terms(store, code) == {"percent": 15, "fixed": None, "minimum": "30",
                                         "for": personal(store, ana, "ana@example.com"), "usage_limit": 1,
                                         "expires": expires(store, live.clock.now + 30 * DAY)}
    mail = [m for m in mails_to(live, "ana@example.com") if m is not invite]
    assert len(mail) == 1
    check_email(live, mail[0], to="ana@example.com", subject="Ana, 15% off your next order", code=code,
                effect=eff["email"])
    assert "30.00 USD" in text_and_html(mail[0])[0]  # the minimum subtotal, as the customer reads it
    (skipped,) = decisions(live, "icebreaker", ben)
    assert (skipped.status, skipped.reason) == ("suppressed", "cancelled")  # orders_count is 2 by now
    assert [m["Subject"] for m in mails_to(live, "ben@example.com")] == ["Give 10%, get a thank-you"]


# --- referral ------------------------------------------------------------------------------------------

def test_referral_reward_after_the_return_window_and_none_for_a_refunded_friend(store, live):
    rita = store.customer(1)
    fred, fay = store.customer(2), store.customer(3)
    store.order(6001, rita, T0, email="rita@example.com", first_name="Rita")
    at(live, T0)
    advance(live, T0 + 2 * DAY + LATE)
    code = shop_code(live, store.shop_id, rita)
    assert code in store.coupon_codes()  # her invite created the shared code in the store

    store.order(6002, fred, T0 + 3 * DAY, codes=[code], email="fred@example.com", first_name="Fred")
    store.order(6003, fay, T0 + 3 * DAY, codes=[code], email="fay@example.com", first_name="Fay")
    at(live, T0 + 3 * DAY)
    store.refund(7001, 6003, T0 + 10 * DAY, amount="120.00")  # Fay sent everything back
    at(live, T0 + 10 * DAY)
    for step in (5, 14, 17, 32):  # invites, icebreakers: each on its day, as tick would
        advance(live, T0 + step * DAY + LATE)
    assert decisions(live, "referral_reward", rita) == []  # the friends' 30-day window is still open

    advance(live, T0 + 33 * DAY + LATE)
    _, signal = done_touch(live, "referral_qualified", fred)
    assert set(signal) == {"signal"}
    (fays,) = decisions(live, "referral_qualified", fay)
    assert (fays.status, fays.reason) == ("suppressed", "cancelled")
    d, eff = done_touch(live, "referral_reward", rita)
    assert d.decision["actions"][0]["customer_id"] == rita
    reward = eff["coupon"].coupon_code
    assert reward.startswith("THANKYOU-")
    assert coupon_terms(store, reward) == {"percent": None, "fixed": "10", "minimum": None,
                                           "for": personal(store, rita, "rita@example.com"), "usage_limit": 1,
                                           "expires": expires(store, live.clock.now + 60 * DAY)}
    (mail,) = [m for m in mails_to(live, "rita@example.com") if m["Subject"].startswith("Your friend ordered")]
    check_email(live, mail, to="rita@example.com", subject="Your friend ordered: here is 10.00 USD off", code=reward,
                effect=eff["email"])
    assert len([c for c in store.coupon_codes() if c.startswith("THANKYOU-")]) == 1


# --- reactivation ----------------------------------------------------------------------------------------

def test_winback_after_90_days_unless_the_customer_ordered_again(store, live):
    lou, max_ = store.customer(1, "winback"), store.customer(2, "winback")
    store.order(8001, lou, T0, email="lou@example.com", first_name="Lou")
    store.order(8002, max_, T0, email="max@example.com", first_name="Max")
    at(live, T0)
    for step in (2, 14):
        advance(live, T0 + step * DAY + LATE)
    store.order(8003, max_, T0 + 30 * DAY, email="max@example.com", first_name="Max")
    at(live, T0 + 30 * DAY)
    advance(live, T0 + 89 * DAY)
    assert decisions(live, "winback") == []

    advance(live, T0 + 90 * DAY + LATE)
    d, eff = done_touch(live, "winback", lou)
    code = eff["coupon"].coupon_code
    assert code.startswith("MISSYOU-")
    assert coupon_terms(store, code)["percent"] == 20
    (mail,) = [m for m in mails_to(live, "lou@example.com") if "It has been a while" in m["Subject"]]
    check_email(live, mail, to="lou@example.com", subject="It has been a while, Lou: 20% off", code=code,
                effect=eff["email"])
    (held,) = decisions(live, "winback", max_)
    assert (held.status, held.reason, held.detail) == ("suppressed", "cancelled", "the customer ordered again")
    assert not [m for m in mails_to(live, "max@example.com") if "It has been a while" in m["Subject"]]

    advance(live, T0 + 120 * DAY + LATE)  # 90 days after Max's second order
    done_touch(live, "winback", max_)
    assert len([c for c in store.coupon_codes() if c.startswith("MISSYOU-")]) == 2


# --- occasions -------------------------------------------------------------------------------------------

def test_birthday_treat_a_week_ahead(store, live):
    """WooCommerce reads the birthday from the customer meta key the shop names; Shopify
    customers have no birthday field, so no birthday is ever known and nothing is scheduled."""
    bea = store.customer(1)
    store.signup(bea, T0, "bea@example.com", "Bea", birthday="1990-12-10")
    at(live, T0 + timedelta(seconds=5))
    timers = [t for t in live.rows(TimerRow, shop_id=store.shop_id) if ":birthday:" in t.key]
    if store.platform == "shopify":
        assert timers == []
        advance(live, datetime(2026, 12, 3, 9, tzinfo=timezone.utc) + LATE)
        assert decisions(live, "birthday") == []
        return
    (timer,) = timers
    assert timer.wake_at == datetime(2026, 12, 3, 9, tzinfo=timezone.utc)  # 7 days before, 09:00 UTC

    advance(live, timer.wake_at + LATE)
    d, eff = done_touch(live, "birthday", bea)
    code = eff["coupon"].coupon_code
    assert code.startswith("BDAY-")
    assert coupon_terms(store, code) == {"percent": 20, "fixed": None, "minimum": None, "for": ["bea@example.com"],
                                         "usage_limit": 1, "expires": expires(store, live.clock.now + 14 * DAY)}
    (mail,) = [m for m in mails_to(live, "bea@example.com") if "birthday" in m["Subject"]]
    check_email(live, mail, to="bea@example.com", subject="An early happy birthday, Bea!", code=code,
                effect=eff["email"])
    nxt = [t for t in live.rows(TimerRow, shop_id=store.shop_id) if ":birthday:2027-12-10:" in t.key]
    assert [t.wake_at for t in nxt] == [datetime(2027, 12, 3, 9, tzinfo=timezone.utc)]  # and next year's


# --- vip ---------------------------------------------------------------------------------------------------

def test_vip_tiers_are_tagged_in_the_store_and_gold_gets_a_coupon(store, live):
    vic = store.customer(1)
    store.order(9001, vic, T0, total="250.00", email="vic@example.com", first_name="Vic")
    at(live, T0)
    _, silver = done_touch(live, "vip_silver_tier", vic)
    assert set(silver) == {"tier", "tag"}
    assert store.tags(vic) == ["vip-silver"]
    assert live.smtp.messages == []  # a tier change alone sends nothing

    store.order(9002, vic, T0 + 5 * DAY, total="300.00", email="vic@example.com", first_name="Vic")
    at(live, T0 + 5 * DAY)
    done_touch(live, "vip_gold_tier", vic)
    if store.platform == "shopify":
        assert store.tags(vic) == ["vip-silver", "vip-gold"]  # one tagsAdd each
        assert store.api.ops("KeepwellTagsAdd")[-1] == {"id": f"gid://shopify/Customer/{vic}", "tags": ["vip-gold"]}
    else:
        assert store.tags(vic) == ["vip-silver", "vip-gold"]  # merged into the keepwell_tags meta
        put = [q for q in store.api.calls if q[0] == "PUT"]
        assert len(put) == 2
    d, eff = done_touch(live, "vip_gold_welcome", vic)
    code = eff["coupon"].coupon_code
    assert code.startswith("GOLD-")
    assert coupon_terms(store, code) == {"percent": None, "fixed": "25", "minimum": None,
                                         "for": personal(store, vic, "vic@example.com"), "usage_limit": 1,
                                         "expires": expires(store, live.clock.now + 60 * DAY)}
    (mail,) = mails_to(live, "vic@example.com")
    check_email(live, mail, to="vic@example.com", subject="Welcome to Gold, Vic", code=code, effect=eff["email"])


# --- cross-sell --------------------------------------------------------------------------------------------

CROSS_SELL_BY_PRODUCT = (RULES_DIR / "cross_sell.yaml").read_text().replace(
    "order.collections: {contains: coffee}", "order.product_ids: {contains: 'PRODUCT'}").replace(
    "collections: [brewing]", "collections: [COLLECTION]")


def test_cross_sell_variant_by_product_id(store, live):
    """A merchant's variant of the pack: keyed on a product id, the offer on a collection given by
    its numeric id (Shopify) or category slug (WooCommerce, looked up)."""
    product, collection = ("9182736450918273645", "841564295") if store.platform == "shopify" else ("93", "brewing")
    assert "order.product_ids" in CROSS_SELL_BY_PRODUCT
    install_pack_variant(live, store.shop_id, "cross_sell.yaml",
                         CROSS_SELL_BY_PRODUCT.replace("PRODUCT", product).replace("COLLECTION", collection))
    cal = store.customer(1, "cross_sell_brewing")
    store.order(9101, cal, T0, email="cal@example.com", first_name="Cal", product_id=int(product))
    at(live, T0)
    advance(live, T0 + 2 * DAY + LATE)  # the referral invite
    advance(live, T0 + 3 * DAY + LATE)
    d, eff = done_touch(live, "cross_sell_brewing", cal)
    code = eff["coupon"].coupon_code
    assert code.startswith("BREW-")
    body = store.coupon(code)
    if store.platform == "shopify":
        assert body["customerGets"]["items"] == {"collections": {"add": ["gid://shopify/Collection/841564295"]}}
    else:
        assert body["product_categories"] == [9]
        assert store.api.requests("GET", "products/categories") == [{"slug": "brewing"}]
    (mail,) = [m for m in mails_to(live, "cal@example.com") if "Brew it better" in m["Subject"]]
    check_email(live, mail, to="cal@example.com", subject="Brew it better: 10% off brewing gear", code=code,
                effect=eff["email"])


def test_shipped_cross_sell_for_a_coffee_order(store, live):
    """The pack as shipped: a product of the "coffee" collection (category) -> 10 % off "brewing"."""
    if store.platform == "shopify":
        product = "9182736450918273645"
        store.api.products[product] = {"tags": ["single-origin"], "collections": {"coffee": "841564290"}}
        store.api.collections["brewing"] = "841564295"
    else:
        product = "93"
        store.api.products[product] = ["coffee"]
    cal = store.customer(1, "cross_sell_brewing")
    store.order(9101, cal, T0, email="cal@example.com", first_name="Cal", product_id=int(product))
    at(live, T0)
    advance(live, T0 + 2 * DAY + LATE)  # the referral invite
    advance(live, T0 + 3 * DAY + LATE)
    d, eff = done_touch(live, "cross_sell_brewing", cal)
    code = eff["coupon"].coupon_code
    assert code.startswith("BREW-")
    body = store.coupon(code)
    if store.platform == "shopify":
        assert body["customerGets"]["items"] == {"collections": {"add": ["gid://shopify/Collection/841564295"]}}
    else:
        assert body["product_categories"] == [9]
    (mail,) = [m for m in mails_to(live, "cal@example.com") if "Brew it better" in m["Subject"]]
    check_email(live, mail, to="cal@example.com", subject="Brew it better: 10% off brewing gear", code=code,
                effect=eff["email"])
    (state,) = live.rows(CustomerRow, customer_id=cal)  # what the customer bought from, for later rules
    assert "coffee" in state.state["collections_bought"]
