"""Failures of the outside world, end to end: store throttling and errors, a code the store already
has, SMTP down, and the customer's one-click unsubscribe. Retries are RQ jobs scheduled with
backoff (honouring Retry-After); a retried touch never repeats an effect that went through."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
import responses

from plugin import jobs
from plugin.db import CustomerRow, DecisionRow, UnsubscribeRow
from plugin.engine.decisions import coupon_code
from plugin.engine.decide import decision_key
from conftest import Mailbox, free_port
from live import (STORES, advance, check_email, decisions, done_touch, effects, gql_throttled, mails_to,
                  run_scheduled, running, scheduled, unsubscribe_path, woo_error, work)

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=timezone.utc)
HOUR = timedelta(hours=1)
LATE = timedelta(minutes=3)


@pytest.fixture(params=["sqlite", "postgres"])
def live(request, redis_server, smtp, tmp_path):
    with running(request, redis_server, smtp, tmp_path) as live:
        live.clock.now = T0
        yield live


@pytest.fixture
def rsps():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


def signed_up(store, live, name="zoe"):
    """A customer who signed up with consent at T0; the welcome is due at T0 + 1 h."""
    cid = store.customer(1)
    store.signup(cid, T0, f"{name}@example.com", name.title())
    live.clock.now = T0
    work(live)
    return cid, f"{name}@example.com"


def welcome(live, cid):
    (d,) = [d for d in decisions(live, "welcome", cid) if d.kind == "touch"]
    return d, effects(live, d)


def retry_delay(live) -> float:
    ((job, when),) = scheduled(live)
    return (when - datetime.now(timezone.utc)).total_seconds()


# --- Shopify throttling ----------------------------------------------------------------------------------

def test_shopify_429_and_throttled_are_retried_after_the_stores_wait_then_one_coupon(live, rsps):
    store = STORES["shopify"](live, rsps)
    cid, email = signed_up(store, live)
    store.api.fail_next(429, {"errors": "Exceeded 2 calls per second for api client. Reduce request rates to resume "
                                        "uninterrupted service."}, headers={"Retry-After": "30"})
    store.api.fail_next(200, gql_throttled(requested=112, available=12.0, restore=50.0))

    advance(live, T0 + HOUR + LATE)
    d, eff = welcome(live, cid)
    assert d.status == "pending" and eff["coupon"].status == "pending" and eff["email"].status == "pending"
    assert eff["coupon"].attempts == 1 and "Shopify answered 429: Exceeded 2 calls per second" in eff["coupon"].error
    assert store.api.discounts == {} and live.smtp.messages == []
    ((job, _),) = scheduled(live)
    assert job.args == (store.shop_id, d.key)
    assert 25 < retry_delay(live) <= 30  # the store's Retry-After, not the 5 s first backoff

    before = datetime.now(timezone.utc)
    assert run_scheduled(live) == 1  # the retry: Shopify now answers 200 with a THROTTLED error
    after = datetime.now(timezone.utc)
    d, eff = welcome(live, cid)
    assert d.status == "pending" and eff["coupon"].attempts == 2 and "throttled" in eff["coupon"].error
    # what the bucket implies, (112 - 12) / 50 = 2 s, not a fixed backoff (RQ keeps whole seconds)
    ((_, when),) = scheduled(live)
    assert before + timedelta(seconds=1) <= when <= after + timedelta(seconds=2)

    assert run_scheduled(live) == 1
    d, eff = done_touch(live, "welcome", cid)
    assert store.api.creates == [eff["coupon"].coupon_code]  # exactly one create reached the store
    assert eff["coupon"].store_id == store.api.discounts[eff["coupon"].coupon_code]["id"]
    (msg,) = live.smtp.messages
    check_email(live, msg, to=email, subject="Welcome, Zoe", code=eff["coupon"].coupon_code, effect=eff["email"])
    assert scheduled(live) == []
    assert run_scheduled(live) == 0 and len(live.smtp.messages) == 1


def test_a_store_that_stays_down_fails_the_decision_after_the_last_attempt(live, rsps):
    from plugin.effects import MAX_EFFECT_ATTEMPTS

    store = STORES["shopify"](live, rsps)
    cid, _ = signed_up(store, live)
    for _ in range(MAX_EFFECT_ATTEMPTS):
        store.api.fail_next(503, {"errors": "Unavailable Shop"}, headers={"Retry-After": "30"})
    advance(live, T0 + HOUR + LATE)
    for attempt in range(2, MAX_EFFECT_ATTEMPTS + 1):
        assert run_scheduled(live) == 1, attempt
    d, eff = welcome(live, cid)
    assert (d.status, eff["coupon"].status, eff["coupon"].attempts) == ("failed", "failed", MAX_EFFECT_ATTEMPTS)
    assert d.error == "coupon: Shopify answered 503: Unavailable Shop"
    assert eff["email"].status == "skipped" and scheduled(live) == []
    assert len(store.api.ops("KeepwellCouponCreate")) == MAX_EFFECT_ATTEMPTS and live.smtp.messages == []


# --- a store that says no ----------------------------------------------------------------------------------

REFUSALS = [
    # WP's schema validation of the request ...
    (400, woo_error("rest_invalid_param", "Invalid parameter(s): email_restrictions", 400)),
    # ... and WC_Coupon's own WC_Data_Exception, as WC_REST_CRUD_Controller::create_item answers it
    (400, woo_error("coupon_invalid_email_address", "Invalid email address restriction", 400)),
    (403, woo_error("woocommerce_rest_cannot_create", "Sorry, you are not allowed to create resources.", 403)),
]


@pytest.mark.parametrize("status, body", REFUSALS, ids=[b["code"] for _, b in REFUSALS])
def test_woocommerce_refusal_fails_the_decision_with_the_store_message_and_is_never_retried(live, rsps, status, body):
    store = STORES["woocommerce"](live, rsps)
    cid, _ = signed_up(store, live)
    store.api.fail_next("POST", "coupons", status, body)
    advance(live, T0 + HOUR + LATE)
    d, eff = welcome(live, cid)
    assert d.status == "failed"
    assert d.error == f"coupon: WooCommerce POST coupons: {status} {body['code']}: {body['message']}"
    assert (eff["coupon"].status, eff["coupon"].attempts) == ("failed", 1)
    assert eff["email"].status == "skipped"  # an email would show a coupon that does not exist
    assert live.smtp.messages == [] and scheduled(live) == []

    # Nothing brings it back: a direct retry, tick's sweep of stranded decisions, a re-delivery.
    assert jobs.execute(store.shop_id, d.key) == "failed"
    live.clock.now = T0 + timedelta(hours=5)
    jobs.tick()
    work(live)
    assert len(store.api.requests("POST", "coupons")) == 1 and live.smtp.messages == []
    (d,) = [x for x in live.rows(DecisionRow, key=d.key)]
    assert d.status == "failed"


@pytest.mark.parametrize("platform", ["shopify", "woocommerce"])
def test_a_code_our_lost_attempt_created_is_adopted(redis_server, smtp, tmp_path, request, rsps, platform):
    """The store created the coupon but its answer got lost: the retry asks for the same code, the
    store refuses it (Shopify: TAKEN; WooCommerce: woocommerce_rest_coupon_code_already_exists),
    and the existing coupon, being exactly what Keepwell asked for, is adopted."""
    with running(request, redis_server, smtp, tmp_path) as live:
        live.clock.now = T0
        store = STORES[platform](live, rsps)
        cid, email = signed_up(store, live)
        store.api.lose.append("KeepwellCouponCreate" if platform == "shopify" else ("POST", "coupons"))
        advance(live, T0 + HOUR + LATE)
        d, eff = welcome(live, cid)
        assert eff["coupon"].status == "pending" and "Connection reset" in eff["coupon"].error
        assert run_scheduled(live) == 1
        d, eff = done_touch(live, "welcome", cid)
        code = coupon_code("WELCOME", decision_key(store.shop_id, "welcome", cid, "customer.created"))
        assert eff["coupon"].coupon_code == code and eff["coupon"].error is None
        stored = store.api.discounts[code]["id"] if platform == "shopify" else str(store.api.coupons[code.lower()]["id"])
        assert eff["coupon"].store_id == stored
        assert len(store.coupon_codes()) == 1 and len(store.api.creates) == 2
        (msg,) = live.smtp.messages
        check_email(live, msg, to=email, subject="Welcome", code=code, effect=eff["email"])


@pytest.mark.parametrize("platform", ["shopify", "woocommerce"])
def test_a_code_another_discount_holds_is_left_alone_and_a_fresh_code_created(redis_server, smtp, tmp_path, request,
                                                                               rsps, platform):
    """The merchant's own discount happens to use the code: it is not adopted (it is for everyone,
    with another value and no end); the touch goes out under a fresh code derived from the
    decision key, and the ledger records the conflict."""
    with running(request, redis_server, smtp, tmp_path) as live:
        live.clock.now = T0
        store = STORES[platform](live, rsps)
        cid, email = signed_up(store, live)
        key = decision_key(store.shop_id, "welcome", cid, "customer.created")
        code = coupon_code("WELCOME", key)
        if platform == "shopify":
            theirs = {"code": code, "title": "Staff 50", "startsAt": "2026-01-01T00:00:00Z", "endsAt": None,
                      "context": {"all": "ALL"}, "customerGets": {"value": {"percentage": 0.5}, "items": {"all": True}},
                      "minimumRequirement": None, "usageLimit": None, "appliesOncePerCustomer": False,
                      "id": "gid://shopify/DiscountCodeNode/1471023658900"}
            store.api.discounts[code] = theirs
        else:
            theirs = {**store.api._route("POST", "coupons", {}, {"code": code, "discount_type": "percent",
                                                                 "amount": "50", "description": "Staff 50"})[1]}
            store.api.creates.clear()
        advance(live, T0 + HOUR + LATE)
        d, eff = done_touch(live, "welcome", cid)
        fresh = coupon_code("WELCOME", f"{key}:0:taken")
        assert eff["coupon"].coupon_code == fresh != code
        assert eff["coupon"].error.startswith(f"code {code} is another")
        assert f"created {fresh} instead" in eff["coupon"].error
        if platform == "shopify":
            assert store.api.discounts[code] == theirs
            assert store.coupon(fresh)["context"] == {"customers": {"add": [f"gid://shopify/Customer/{cid}"]}}
        else:
            assert store.api.coupons[code.lower()] == theirs
            assert store.coupon(fresh)["email_restrictions"] == [email]
        (msg,) = live.smtp.messages
        check_email(live, msg, to=email, subject="Welcome", code=fresh, effect=eff["email"])
        assert code not in msg.get_body(("plain",)).get_content()


# --- SMTP down ----------------------------------------------------------------------------------------------

def test_smtp_down_keeps_the_email_pending_and_delivers_it_once_when_back(redis_server, tmp_path, request, rsps):
    from aiosmtpd.controller import Controller

    port = free_port()  # nothing listens here yet
    box = Mailbox()
    box.url = f"smtp://127.0.0.1:{port}"
    with running(request, redis_server, box, tmp_path) as live:
        live.clock.now = T0
        store = STORES["woocommerce"](live, rsps)
        cid, email = signed_up(store, live)
        advance(live, T0 + HOUR + LATE)
        d, eff = welcome(live, cid)
        assert d.status == "pending"
        assert eff["coupon"].status == "done" and eff["email"].status == "pending"
        assert eff["email"].attempts == 1 and f"SMTP server 127.0.0.1:{port}" in eff["email"].error
        assert 0 < retry_delay(live) <= 5

        assert run_scheduled(live) == 1  # still down
        d, eff = welcome(live, cid)
        assert eff["email"].attempts == 2 and d.status == "pending"

        controller = Controller(box, hostname="127.0.0.1", port=port)
        controller.start()
        try:
            assert run_scheduled(live) == 1
            assert run_scheduled(live) == 0
        finally:
            controller.stop()
        d, eff = done_touch(live, "welcome", cid)
        assert len(store.api.creates) == 1  # the coupon was not asked for again
        (msg,) = box.messages
        check_email(live, msg, to=email, subject="Welcome", code=eff["coupon"].coupon_code, effect=eff["email"])


def test_a_recipient_the_mail_server_refuses_fails_the_email_for_good(redis_server, tmp_path, request, rsps):
    from aiosmtpd.controller import Controller

    class NoSuchUser(Mailbox):
        async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
            return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown in virtual mailbox table"

    box = NoSuchUser()
    controller = Controller(box, hostname="127.0.0.1", port=free_port())
    controller.start()
    box.url = f"smtp://127.0.0.1:{controller.port}"
    try:
        with running(request, redis_server, box, tmp_path) as live:
            live.clock.now = T0
            store = STORES["woocommerce"](live, rsps)
            cid, email = signed_up(store, live)
            advance(live, T0 + HOUR + LATE)
            d, eff = welcome(live, cid)
            assert (d.status, eff["coupon"].status, eff["email"].status) == ("failed", "done", "failed")
            assert d.error.startswith(f"email: SMTP 550 5.1.1 <{email}>: Recipient address rejected")
            assert scheduled(live) == [] and box.messages == []
    finally:
        controller.stop()


# --- unsubscribe ----------------------------------------------------------------------------------------------

def test_one_click_unsubscribe_stops_later_marketing_emails(live, rsps):
    store = STORES["woocommerce"](live, rsps)
    cid, email = signed_up(store, live)
    advance(live, T0 + HOUR + LATE)
    (welcome_mail,) = mails_to(live, email)
    path = unsubscribe_path(welcome_mail)

    assert live.client.get(path).status_code == 200  # a mail scanner following the link changes nothing
    assert live.rows(UnsubscribeRow) == []
    r = live.client.post(path, data={"List-Unsubscribe": "One-Click"})
    assert r.status_code == 200 and b"Unsubscribed" in r.data
    assert [(u.shop_id, u.customer_id) for u in live.rows(UnsubscribeRow)] == [(store.shop_id, cid)]
    work(live)
    (state,) = live.rows(CustomerRow, customer_id=cid)
    assert state.state["accepts_marketing"] is False

    # Later the customer orders, and the checkout still carries the store's old opt-in box.
    store.order(4001, cid, T0 + 3 * 24 * HOUR, email=email, first_name="Zoe")
    live.clock.now = T0 + 3 * 24 * HOUR
    work(live)
    for day in (5, 17):  # the referral invite and the icebreaker come due
        advance(live, T0 + day * 24 * HOUR + LATE)
    later = [d for d in live.rows(DecisionRow, customer_id=cid) if d.rule_id in ("referral_invite", "icebreaker")]
    assert sorted(d.rule_id for d in later) == ["icebreaker", "referral_invite"]
    for d in later:  # the store's opt-in does not outrank the customer's unsubscribe
        assert (d.kind, d.status, d.reason) == ("suppressed", "suppressed", "consent"), (d.rule_id, d.reason)
    assert len(store.api.creates) == 1  # the welcome's coupon, and no coupon nobody would be told about
    assert mails_to(live, email) == [welcome_mail]
