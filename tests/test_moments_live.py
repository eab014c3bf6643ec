"""A dated rule end to end ("gold customers: 50% today"): Shopify customers arrive through the
signed edge into the real worker; at the moment, in the shop's time zone, the tick starts the
fan-out job, which gives every customer one timer spread over the send window; as the timers
come due the worker decides each (conditions, consent) and the gold customers who opted in get
their coupon (Shopify's GraphQL Admin API behind `responses`) and email (aiosmtpd). A fan-out cut
off half-way resumes, and running it again changes nothing: once per customer per occurrence."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
import responses

from live import FakeShopify, decisions, finish, iso, mails_to, shopify_customer, start, text_and_html, work
from plugin import effects, jobs
from plugin.db import DecisionRow, TimerRow
from plugin.pipeline import sweep_timers
from plugin.rulefile import RULES_DIR
from plugin.shops import install_rules, read_rule_dir

DOMAIN = "gold-beans.myshopify.com"
MOMENT = datetime(2027, 6, 1, 7, 30, tzinfo=timezone.utc)  # 10:30 in Jerusalem (IDT, UTC+3)
RULES = """
rules:
  - id: gold_today
    name: Gold customers, 50% today
    trigger: {date: 2027-06-01T10:30}
    window: 1h
    when:
      customer.tags: {contains: gold}
    holdout: 0%
    actions:
      - coupon: {discount: 50%, expires_in: 1d, code_prefix: GOLD}
      - email:
          template: gold_today
          subject: "{{ customer.first_name }}, as a gold customer you get 50% today"
"""
TEMPLATE_TXT = "Today only: {{ coupon.code }} ({{ coupon.discount }} off).\n{{ shop.url }}\nUnsubscribe: {{ unsubscribe_url }}\n"
TEMPLATE_HTML = ("<p>Today only: <b>{{ coupon.code }}</b> ({{ coupon.discount }} off).</p>"
                 "<p><a href=\"{{ unsubscribe_url }}\">Unsubscribe</a></p>")
#: customer id -> (first name, tags, opted in)
CUSTOMERS = {"7001": ("נועה", "gold, coffee", True), "7002": ("Ana", "gold", True), "7003": ("Bob", "tea", True),
             "7004": ("Chen", "gold", False), "7005": ("Dana", "gold", True)}


@pytest.fixture(params=["sqlite", "postgres"])
def live(request, redis_server, smtp, tmp_path):
    url = f"sqlite:///{tmp_path}/keepwell.db" if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    live = start(redis_server, url, smtp)
    try:
        yield live
    finally:
        finish(live)


@pytest.fixture
def shop(live):
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        store = FakeShopify(rsps, DOMAIN, "shpat_gold")
        shop_id, _ = live.add_shop("shopify", DOMAIN, access_token="shpat_gold",
                                   settings={"name": "Gold Beans", "timezone": "Asia/Jerusalem"})
        files = {k: v for k, v in read_rule_dir(RULES_DIR).items() if k.startswith("templates/")}
        files.update({"moments.yaml": RULES, "templates/gold_today.txt": TEMPLATE_TXT,
                      "templates/gold_today.html": TEMPLATE_HTML})
        live.clock.now = MOMENT - timedelta(days=10)
        with live.rt.sessions.begin() as session:
            install_rules(session, shop_id, files)
        for cid, (name, tags, opted_in) in CUSTOMERS.items():
            if opted_in:
                store.consents[cid] = ("SUBSCRIBED", iso(MOMENT - timedelta(days=30)))
            c = shopify_customer(cid, MOMENT - timedelta(days=10), email=f"c{cid}@example.com", first_name=name)
            c["tags"] = tags
            assert live.post_shopify("customers/create", c, DOMAIN).status_code == 202
        work(live)
        yield shop_id, store


def _tick(live, at: datetime) -> dict:
    live.clock.now = at
    out = jobs.tick()
    work(live)
    return out


def settle(live, shop_id: str, rounds: int = 5) -> None:
    """Work until no touch of the shop is pending, re-arming its drain and effect runners between
    rounds as the tick does (a touch may reach the effect line as a runner finishes)."""
    for _ in range(rounds):
        work(live)
        if not [d for d in live.rows(DecisionRow, shop_id=shop_id) if d.status == "pending"]:
            return
        live.rt.handoff.ensure_drain(shop_id)
        effects.ensure_runners(live.rt, shop_id)


def _timers(live, shop_id):
    return {t.customer_id: t for t in live.rows(TimerRow, shop_id=shop_id) if ":gold_today:" in t.key}


def test_gold_customers_get_50_percent_once_spread_over_the_window(live, shop):
    shop_id, store = shop
    assert _tick(live, MOMENT - timedelta(minutes=1))["moments"] == 0  # 10:29 in Jerusalem: not yet
    assert _timers(live, shop_id) == {}
    assert _tick(live, MOMENT + timedelta(seconds=20))["moments"] == 1
    timers = _timers(live, shop_id)
    assert sorted(timers) == sorted(CUSTOMERS)  # every customer, once; the conditions decide later
    wakes = sorted(t.wake_at for t in timers.values())
    assert MOMENT <= wakes[0] and wakes[-1] < MOMENT + timedelta(hours=1) and wakes[0] != wakes[-1]

    _tick(live, MOMENT + timedelta(minutes=2))  # the next tick: nothing more to fan out
    assert len(_timers(live, shop_id)) == len(CUSTOMERS)

    live.clock.now = MOMENT + timedelta(hours=1, minutes=1)
    sweep_timers(live.rt)
    settle(live, shop_id)
    for cid, (name, tags, opted_in) in CUSTOMERS.items():
        mails = mails_to(live, f"c{cid}@example.com")
        got = [d for d in decisions(live, "gold_today", cid)]
        if "gold" in tags and opted_in:
            (mail,) = mails
            (d,) = got
            assert d.kind == "touch" and d.status == "done", (d.status, d.error)
            assert mail["Subject"] == f"{name}, as a gold customer you get 50% today"
            code = next(c for c in store.creates if c.startswith("GOLD"))
            assert "GOLD" in text_and_html(mail)[0] and code
        elif "gold" in tags:
            assert mails == [] and [(d.kind, d.reason) for d in got] == [("suppressed", "consent")]
        else:
            assert mails == [] and got == []  # not gold: the rule simply did not apply
    assert len([c for c in store.creates if c.startswith("GOLD")]) == 3


def test_a_fan_out_cut_off_half_way_resumes_and_a_second_run_changes_nothing(live, shop, monkeypatch):
    shop_id, store = shop
    monkeypatch.setattr("plugin.fanout.BATCH", 2)
    _tick(live, MOMENT + timedelta(seconds=5))
    first = {cid: (t.key, t.wake_at) for cid, t in _timers(live, shop_id).items()}
    assert len(first) == len(CUSTOMERS)
    # What a worker killed after its first batch leaves: that batch's timers and the cursor after
    # it, no more timers, no done mark.
    mark = f"{live.config.queue}:{{{shop_id}}}:moment:gold_today:2027-06-01T10:30"
    batch = sorted(CUSTOMERS)[:2]
    with live.rt.sessions.begin() as session:
        for cid, (key, _) in first.items():
            if cid not in batch:
                session.delete(session.get(TimerRow, (shop_id, key)))
    live.rt.redis.set(mark + ":cursor", batch[-1])
    live.rt.redis.delete(mark + ":done")
    _tick(live, MOMENT + timedelta(minutes=1, seconds=5))
    assert {cid: (t.key, t.wake_at) for cid, t in _timers(live, shop_id).items()} == first

    live.clock.now = MOMENT + timedelta(hours=2)
    sweep_timers(live.rt)
    work(live)
    touched = sorted(d.customer_id for d in decisions(live, "gold_today") if d.kind == "touch")
    assert touched == ["7001", "7002", "7005"]

    # Redis lost every mark within the late limit: the fan-out walks again and finds every timer
    live.rt.redis.delete(mark + ":cursor")
    _tick(live, MOMENT + timedelta(hours=3))
    assert {cid: (t.key, t.wake_at) for cid, t in _timers(live, shop_id).items()} == first
    live.clock.now = MOMENT + timedelta(hours=4)
    sweep_timers(live.rt)
    work(live)
    assert sorted(d.customer_id for d in decisions(live, "gold_today") if d.kind == "touch") == touched
    assert len([m for m in live.smtp.messages if "50% today" in m["Subject"]]) == 3


def test_an_occurrence_missed_by_more_than_a_day_is_skipped(live, shop):
    shop_id, _ = shop
    assert _tick(live, MOMENT + timedelta(hours=1, days=1, minutes=1))["moments"] == 0
    assert _timers(live, shop_id) == {}
