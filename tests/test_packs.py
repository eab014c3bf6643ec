"""The shipped rule packs, loaded with load_rules(), replayed through the simulator in virtual time.

Each scenario names the rule under test, the touches it must make (customer, time) and how many
times it was suppressed for each reason. Customers sign up 30 days before their first order so
the welcome touch stays out of the frequency cap's window unless a scenario wants it there.
"""
from collections import Counter
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from engine_helpers import (CODES, DRIPPER, ETHIOPIA, FRENCH_PRESS, GRINDER, HOUSE_BLEND, SENCHA, SHOP, T0, action,
                            consent_changed, customer_created, day, order_cancelled, order_paid, order_refunded, run,
                            shipped_rules, touches)
from plugin.engine.decisions import stable_percent
from plugin.engine.referral import referral_code
from plugin.engine.ruleset import FrequencyCap

HOLDOUT_RULES = ("icebreaker", "cross_sell_brewing", "winback")


def _ids(pick, n):
    out = []
    cid = 7_000_000_001
    while len(out) < n:
        if pick(str(cid)):
            out.append(str(cid))
        cid += 1
    return out


def _in_control(cid, rule_id):
    return stable_percent(SHOP, rule_id, cid) < 10


# Customers outside every control group, and one inside each rule's control group only.
A, B, C = _ids(lambda c: not any(_in_control(c, r) for r in HOLDOUT_RULES), 3)
HELD = {r: _ids(lambda c, r=r: _in_control(c, r) and not any(_in_control(c, q) for q in HOLDOUT_RULES if q != r), 1)[0]
        for r in HOLDOUT_RULES}
SIGNUP = day(-30)
# What the occasion question at checkout stores (day(0) is 2 March 2026).
GIFT = {"keepwell_occasion": "birthday", "keepwell_occasion_date": "2026-03-20", "keepwell_occasion_for": "Maya",
        "keepwell_occasion_remind": "yes"}


def shopper(cid, consent=True, at=SIGNUP, **kw):
    return customer_created(cid, at, consent, **kw)


def paid(cid, order_id, at, products=(SENCHA,), **kw):
    """A paid order, placed exactly at ``at`` (tea by default: no cross-sell)."""
    return order_paid(cid, order_id, at, products=products, created=at, **kw)


def scenario(name, rule_id, events, until, touched=(), suppressed=None):
    return pytest.param(rule_id, events, until, list(touched), suppressed or {}, id=f"{rule_id}: {name}")


SCENARIOS = [
    # icebreaker: a personal coupon 14 days after the first order, unless the customer came back
    scenario("one paid order -> touch 14 days later", "icebreaker",
             [shopper(A), paid(A, "5101", day(0))], day(60), [(A, day(14))]),
    scenario("second order within 14 days -> cancelled", "icebreaker",
             [shopper(A), paid(A, "5101", day(0)), paid(A, "5102", day(10))], day(60),
             suppressed={"cancelled": 1, "conditions": 1}),
    scenario("second order after the touch -> no second touch", "icebreaker",
             [shopper(A), paid(A, "5101", day(0)), paid(A, "5102", day(20))], day(60), [(A, day(14))],
             suppressed={"conditions": 1}),
    scenario("no consent -> suppressed", "icebreaker",
             [shopper(A, consent=False), paid(A, "5101", day(0))], day(60), suppressed={"consent": 1}),
    scenario("first order cancelled -> cancelled", "icebreaker",
             [shopper(A), paid(A, "5101", day(0)), order_cancelled(A, "5101", day(1), "12.00 USD")], day(60),
             suppressed={"cancelled": 1}),
    scenario("control group -> held out", "icebreaker",
             [shopper(HELD["icebreaker"]), paid(HELD["icebreaker"], "5101", day(0))], day(60),
             suppressed={"holdout": 1}),
    scenario("first order refunded in full during the delay -> cancelled", "icebreaker",
             [shopper(A), paid(A, "5101", day(0)), order_refunded(A, "5101", day(5), "12.00 USD")], day(60),
             suppressed={"cancelled": 1}),
    scenario("first order partly refunded -> still a purchase", "icebreaker",
             [shopper(A), paid(A, "5101", day(0), total="40.00 USD"),
              order_refunded(A, "5101", day(5), "40.00 USD", refunded="10.00 USD")], day(60), [(A, day(14))]),
    scenario("first order returned, the next one is the first purchase", "icebreaker",
             [shopper(A), paid(A, "5101", day(0)), order_refunded(A, "5101", day(5), "12.00 USD"),
              paid(A, "5102", day(20))], day(60), [(A, day(34))], suppressed={"cancelled": 1}),
    scenario("two customers, one comes back", "icebreaker",
             [shopper(A), shopper(B), paid(A, "5101", day(0)), paid(B, "5201", day(1)), paid(B, "5202", day(5))],
             day(60), [(A, day(14))], suppressed={"cancelled": 1, "conditions": 1}),

    # welcome: a signup who opted in; a later opt-in gets the opt-in welcome instead
    scenario("signup with consent -> welcome an hour later", "welcome", [shopper(A, at=T0)], day(30),
             [(A, T0 + timedelta(hours=1))]),
    scenario("consent arriving right after the signup (Shopify) -> welcome with its coupon", "welcome",
             [shopper(A, consent=False, at=T0), consent_changed(A, T0 + timedelta(minutes=1), True)], day(30),
             [(A, T0 + timedelta(hours=1))]),
    scenario("consent right after the signup -> no second, opt-in welcome", "welcome_on_opt_in",
             [shopper(A, consent=False, at=T0), consent_changed(A, T0 + timedelta(minutes=1), True)], day(30),
             suppressed={"conditions": 1}),
    scenario("signup without consent -> suppressed", "welcome", [shopper(A, consent=False, at=T0)], day(30),
             suppressed={"consent": 1}),
    scenario("account made after a guest order -> not new", "welcome",
             [paid(A, "5101", T0), shopper(A, at=T0 + timedelta(minutes=5))], day(30), suppressed={"conditions": 1}),
    scenario("later opt-in -> opt-in welcome", "welcome_on_opt_in",
             [shopper(A, consent=False, at=T0), consent_changed(A, day(3), True)], day(30), [(A, day(3))]),
    scenario("re-subscribe after the welcome -> nothing", "welcome_on_opt_in",
             [shopper(A, at=T0), consent_changed(A, day(3), False), consent_changed(A, day(10), True)], day(30),
             suppressed={"conditions": 2}),

    # winback: 90 days after the last paid order, once per lapse
    scenario("90 days without an order -> winback", "winback",
             [shopper(A), paid(A, "5101", day(0))], day(120), [(A, day(90))]),
    scenario("ordered again at day 60 -> winback 90 days after that", "winback",
             [shopper(A), paid(A, "5101", day(0)), paid(A, "5102", day(60))], day(200), [(A, day(150))],
             suppressed={"cancelled": 1}),
    scenario("two lapses -> two winbacks", "winback",
             [shopper(A), paid(A, "5101", day(0)), paid(A, "5102", day(100))], day(200), [(A, day(90)), (A, day(190))]),
    scenario("no consent -> suppressed", "winback",
             [shopper(A, consent=False), paid(A, "5101", day(0))], day(120), suppressed={"consent": 1}),
    scenario("control group -> held out", "winback",
             [shopper(HELD["winback"]), paid(HELD["winback"], "5101", day(0))], day(120), suppressed={"holdout": 1}),
    scenario("never ordered -> nothing", "winback", [shopper(A)], day(120)),

    # cross-sell: coffee buyers who never bought brewing gear, three days later
    scenario("coffee buyer -> brewing offer after 3 days", "cross_sell_brewing",
             [shopper(A), paid(A, "5101", day(0), products=(HOUSE_BLEND,))], day(30), [(A, day(3))]),
    scenario("bought brewing gear with the coffee -> nothing", "cross_sell_brewing",
             [shopper(A), paid(A, "5101", day(0), products=(HOUSE_BLEND, DRIPPER))], day(30),
             suppressed={"conditions": 1}),
    scenario("tea buyer -> nothing", "cross_sell_brewing",
             [shopper(A), paid(A, "5101", day(0), products=(SENCHA,))], day(30), suppressed={"conditions": 1}),
    scenario("bought brewing gear during the delay -> cancelled", "cross_sell_brewing",
             [shopper(A), paid(A, "5101", day(0), products=(HOUSE_BLEND,)),
              paid(A, "5102", day(1), products=(FRENCH_PRESS,))], day(30),
             suppressed={"cancelled": 1, "conditions": 1}),
    scenario("coffee again within the 60 day cooldown -> limited, after it -> again", "cross_sell_brewing",
             [shopper(A), paid(A, "5101", day(0), products=(HOUSE_BLEND,)),
              paid(A, "5102", day(30), products=(ETHIOPIA,)), paid(A, "5103", day(70), products=(ETHIOPIA,))],
             day(100), [(A, day(3)), (A, day(73))], suppressed={"limit": 1}),
    scenario("control group -> held out", "cross_sell_brewing",
             [shopper(HELD["cross_sell_brewing"]), paid(HELD["cross_sell_brewing"], "5101", day(0), products=(HOUSE_BLEND,))],
             day(30), suppressed={"holdout": 1}),

    # referral: invite after the first order; reward the referrer once the friend's return window passed
    scenario("first order -> referral invite 2 days later", "referral_invite",
             [shopper(A), paid(A, "5101", day(0)), paid(A, "5102", day(20))], day(30), [(A, day(2))],
             suppressed={"conditions": 1}),
    scenario("first order refunded in full before the invite -> none", "referral_invite",
             [shopper(A), paid(A, "5101", day(0)), order_refunded(A, "5101", day(1), "12.00 USD")], day(30),
             suppressed={"cancelled": 1}),
    scenario("guest without an account id -> no invite", "referral_invite",
             [shopper("guest-4471"), paid("guest-4471", "5101", day(0))], day(30), suppressed={"conditions": 1}),
    scenario("friend's first order with the code -> reward after 30 days", "referral_reward",
             [shopper(A), paid(A, "5101", day(0)), shopper(B, at=day(5)),
              paid(B, "5201", day(6), codes=[referral_code(CODES, SHOP, A)])], day(60), [(A, day(36))]),
    scenario("friend refunded -> no reward", "referral_reward",
             [shopper(A), paid(A, "5101", day(0)), shopper(B, at=day(5)),
              paid(B, "5201", day(6), codes=[referral_code(CODES, SHOP, A)]), order_refunded(B, "5201", day(20), "12.00 USD")],
             day(60)),
    scenario("friend cancelled -> no reward", "referral_reward",
             [shopper(A), paid(A, "5101", day(0)), shopper(B, at=day(5)),
              paid(B, "5201", day(6), codes=[referral_code(CODES, SHOP, A)]), order_cancelled(B, "5201", day(7), "12.00 USD")],
             day(60)),
    scenario("own code -> no reward", "referral_reward",
             [shopper(A), paid(A, "5101", day(0)), paid(A, "5102", day(6), codes=[referral_code(CODES, SHOP, A)])], day(60)),
    scenario("code on the friend's second order -> no reward", "referral_reward",
             [shopper(A), paid(A, "5101", day(0)), shopper(B, at=day(5)), paid(B, "5201", day(6)),
              paid(B, "5202", day(8), codes=[referral_code(CODES, SHOP, A)])], day(60)),
    scenario("two friends -> two rewards", "referral_reward",
             [shopper(A), paid(A, "5101", day(0)), shopper(B, at=day(5)), shopper(C, at=day(5)),
              paid(B, "5201", day(6), codes=[referral_code(CODES, SHOP, A)]),
              paid(C, "5301", day(7), codes=[referral_code(CODES, SHOP, A).lower()])], day(60), [(A, day(36)), (A, day(37))]),
    scenario("referrer without consent -> suppressed", "referral_reward",
             [shopper(A, consent=False), paid(A, "5101", day(0)), shopper(B, at=day(5)),
              paid(B, "5201", day(6), codes=[referral_code(CODES, SHOP, A)])], day(60), suppressed={"consent": 1}),

    # occasions: a birthday treat a week ahead at 09:00 UTC, an anniversary thank-you for buyers
    scenario("birthday -> 7 days before at 09:00 UTC", "birthday",
             [shopper(A, birthday="1990-06-14")], datetime(2026, 12, 31, tzinfo=timezone.utc),
             [(A, datetime(2026, 6, 7, 9, tzinfo=timezone.utc))]),
    scenario("birthday every year", "birthday",
             [shopper(A, birthday="1990-06-14")], datetime(2027, 12, 31, tzinfo=timezone.utc),
             [(A, datetime(2026, 6, 7, 9, tzinfo=timezone.utc)), (A, datetime(2027, 6, 7, 9, tzinfo=timezone.utc))]),
    scenario("29 February in a common year -> 28 February", "birthday",
             [shopper(A, birthday="1992-02-29")], datetime(2026, 12, 31, tzinfo=timezone.utc),
             [(A, datetime(2026, 2, 21, 9, tzinfo=timezone.utc))]),
    scenario("birthday without consent -> suppressed", "birthday",
             [shopper(A, consent=False, birthday="1990-06-14")], datetime(2026, 12, 31, tzinfo=timezone.utc),
             suppressed={"consent": 1}),
    scenario("no birthday -> nothing", "birthday", [shopper(A)], datetime(2026, 12, 31, tzinfo=timezone.utc)),

    # occasion reminders: a gift bought for a birthday -> a reminder a week before next year's
    scenario("gift for a birthday -> reminded a year later, and every year", "occasion_reminder",
             [shopper(A), paid(A, "5101", day(0), attributes=GIFT)], day(800),
             [(A, datetime(2027, 3, 13, 9, tzinfo=timezone.utc)), (A, datetime(2028, 3, 13, 9, tzinfo=timezone.utc))]),
    scenario("no reminder wanted -> nothing", "occasion_reminder",
             [shopper(A), paid(A, "5101", day(0), attributes={**GIFT, "keepwell_occasion_remind": "no"})], day(800)),
    scenario("reminder wanted, no marketing consent -> suppressed", "occasion_reminder",
             [shopper(A, consent=False), paid(A, "5101", day(0), attributes=GIFT)], day(400), suppressed={"consent": 1}),
    scenario("first-order anniversary ships switched off", "first_order_anniversary",
             [shopper(A), paid(A, "5101", day(0))], day(800)),
    scenario("anniversary of a buyer -> on the day", "anniversary",
             [shopper(A, anniversary="2015-04-20"), paid(A, "5101", day(0))], datetime(2026, 12, 31, tzinfo=timezone.utc),
             [(A, datetime(2026, 4, 20, 9, tzinfo=timezone.utc))]),
    scenario("anniversary, never bought -> nothing", "anniversary",
             [shopper(A, anniversary="2015-04-20")], datetime(2026, 12, 31, tzinfo=timezone.utc),
             suppressed={"conditions": 1}),

    # vip: tier and tag for everyone, the gold welcome only with consent
    scenario("500 USD spent -> gold tier", "vip_gold_tier",
             [shopper(A), paid(A, "5101", day(0), products=(GRINDER,), total="520.00 USD")], day(10), [(A, day(0))]),
    scenario("gold tier without consent too", "vip_gold_tier",
             [shopper(A, consent=False), paid(A, "5101", day(0), products=(GRINDER,), total="520.00 USD")], day(10),
             [(A, day(0))]),
    scenario("500 USD spent -> gold welcome", "vip_gold_welcome",
             [shopper(A), paid(A, "5101", day(0), products=(GRINDER,), total="520.00 USD")], day(10), [(A, day(0))]),
    scenario("gold welcome needs consent", "vip_gold_welcome",
             [shopper(A, consent=False), paid(A, "5101", day(0), products=(GRINDER,), total="520.00 USD")], day(10),
             suppressed={"consent": 1}),
    scenario("gold welcome once", "vip_gold_welcome",
             [shopper(A), paid(A, "5101", day(0), products=(GRINDER,), total="520.00 USD"),
              paid(A, "5102", day(40), products=(GRINDER,), total="129.00 USD")], day(50), [(A, day(0))],
             suppressed={"limit": 1}),
    scenario("250 then 300 USD -> silver, then gold", "vip_silver_tier",
             [shopper(A), paid(A, "5101", day(0), total="250.00 USD"), paid(A, "5102", day(20), total="300.00 USD")],
             day(30), [(A, day(0))], suppressed={"conditions": 1}),
    scenario("250 then 300 USD -> gold on the second order", "vip_gold_tier",
             [shopper(A), paid(A, "5101", day(0), total="250.00 USD"), paid(A, "5102", day(20), total="300.00 USD")],
             day(30), [(A, day(20))], suppressed={"conditions": 1}),
    scenario("a refund keeps the customer under 500 USD", "vip_gold_tier",
             [shopper(A), paid(A, "5101", day(0), total="480.00 USD"),
              order_refunded(A, "5101", day(5), "480.00 USD", refunded="50.00 USD"),
              paid(A, "5102", day(20), total="60.00 USD")], day(30), suppressed={"conditions": 2}),
    scenario("a full refund takes the order out of the spend", "vip_gold_tier",
             [shopper(A), paid(A, "5101", day(0), total="450.00 USD"),
              order_refunded(A, "5101", day(5), "450.00 USD"),
              paid(A, "5102", day(20), total="100.00 USD")], day(30), suppressed={"conditions": 2}),
    scenario("600 EUR is not 500 USD", "vip_gold_tier",
             [shopper(A), paid(A, "5101", day(0), total="600.00 EUR", currency="EUR")], day(10),
             suppressed={"conditions": 1}),
]


@pytest.mark.parametrize("rule_id, events, until, touched, suppressed", SCENARIOS)
def test_pack_scenario(rule_id, events, until, touched, suppressed):
    sim = run(events, until=until)
    assert [(d.customer_id, d.at) for d in touches(sim, rule_id=rule_id)] == touched
    report = sim.report.rules.get(rule_id)
    assert dict(report.suppressed if report else Counter()) == suppressed


def test_every_shipped_rule_has_a_scenario():
    tested = {p.values[0] for p in SCENARIOS}
    assert tested >= {r.id for r in shipped_rules().rules} - {"referral_qualified"}


def test_winback_after_the_last_order_is_cancelled():
    events = [shopper(A), paid(A, "5101", day(0)), paid(A, "5102", day(88)), order_cancelled(A, "5102", day(91), "12.00 USD")]
    sim = run(events, until=day(400))
    assert sim.states[(SHOP, A)].last_order_id == "5101"
    assert touches(sim, A, "winback")


def test_icebreaker_coupon():
    sim = run([shopper(A), paid(A, "5101", day(0))], until=day(60))
    (touch,) = touches(sim, A, "icebreaker")
    coupon, email = touch.actions
    assert coupon.type == "coupon" and email.type == "email"
    assert coupon.code.startswith("THANKS-")
    assert (coupon.discount_type, coupon.value) == ("percent", Decimal("15"))
    assert coupon.expires_at == day(44)
    assert coupon.minimum_subtotal.amount == Decimal("30") and coupon.minimum_subtotal.currency == "USD"
    assert (coupon.customer_id, coupon.usage_limit) == (A, 1)
    assert (email.template, email.to) == ("icebreaker", f"olivia.{A}@example.com")


def test_welcome_coupon_and_opt_in_email():
    sim = run([shopper(A, at=T0), shopper(B, consent=False, at=T0), consent_changed(B, day(1), True)], until=day(5))
    (welcome,) = touches(sim, A, "welcome")
    assert action(welcome, "coupon").code.startswith("WELCOME-")
    assert action(welcome, "email").template == "welcome"
    (opt_in,) = touches(sim, B)
    assert opt_in.rule_id == "welcome_on_opt_in"
    assert [a.type for a in opt_in.actions] == ["email"]


def test_winback_coupon():
    sim = run([shopper(A), paid(A, "5101", day(0))], until=day(120))
    (touch,) = touches(sim, A, "winback")
    c = action(touch, "coupon")
    assert c.code.startswith("MISSYOU-") and c.value == Decimal("20") and c.expires_at == day(104)
    assert action(touch, "email").template == "winback"


def test_cross_sell_coupon_is_scoped_to_the_brewing_collection():
    sim = run([shopper(A), paid(A, "5101", day(0), products=(HOUSE_BLEND,))], until=day(30))
    (touch,) = touches(sim, A, "cross_sell_brewing")
    c = action(touch, "coupon")
    assert c.code.startswith("BREW-")
    assert c.collections == ("brewing",) and c.products == ()
    assert (c.discount_type, c.value, c.expires_at) == ("percent", Decimal("10"), day(24))
    assert action(touch, "email").template == "cross_sell"


def test_referral_invite_and_reward():
    code = referral_code(CODES, SHOP, A)
    sim = run([shopper(A), paid(A, "5101", day(0)), shopper(B, at=day(5)), paid(B, "5201", day(6), codes=[code])],
              until=day(60))
    (invite,) = touches(sim, A, "referral_invite")
    c = action(invite, "coupon")
    assert c.code == code and code.startswith("REF")
    assert (c.usage_limit, c.customer_id, c.value) == (None, None, Decimal("10"))
    (signal,) = touches(sim, B, "referral_qualified")
    assert action(signal, "signal").customer_id == A
    (reward,) = touches(sim, A, "referral_reward")
    r = action(reward, "coupon")
    assert r.code.startswith("THANKYOU-") and (r.discount_type, r.value, r.currency) == ("fixed", Decimal("10"), "USD")
    assert r.customer_id == A
    assert not touches(sim, B, "referral_reward")


def test_vip_gold_tags_and_tier_for_everyone():
    sim = run([shopper(A), shopper(B, consent=False), paid(A, "5101", day(0), products=(GRINDER,), total="520.00 USD"),
               paid(B, "5201", day(0), products=(GRINDER,), total="520.00 USD")], until=day(10))
    for cid in (A, B):
        state = sim.states[(SHOP, cid)]
        assert state.tier == "gold" and "vip-gold" in state.tags
    (welcome,) = touches(sim, rule_id="vip_gold_welcome")
    assert welcome.customer_id == A
    c = action(welcome, "coupon")
    assert c.code.startswith("GOLD-") and (c.discount_type, c.value) == ("fixed", Decimal("25"))


def test_birthday_coupon():
    sim = run([shopper(A, birthday="1990-06-14")], until=datetime(2026, 7, 1, tzinfo=timezone.utc))
    (touch,) = touches(sim, A, "birthday")
    c = action(touch, "coupon")
    assert c.code.startswith("BDAY-") and c.value == Decimal("20")
    assert c.expires_at == datetime(2026, 6, 21, 9, tzinfo=timezone.utc)
    assert sim.report.timers_pending >= 1  # next year's reminder is waiting


def test_settings_pack():
    settings = shipped_rules().settings
    assert settings.frequency_cap == FrequencyCap(touches=2, per=timedelta(days=7), when_capped="defer")
    assert settings.referral_prefix == "REF"


def test_frequency_cap_defers_the_third_touch_in_a_week():
    signup, order = T0, T0 + timedelta(hours=1)
    sim = run([shopper(A, at=signup), paid(A, "5101", order, products=(HOUSE_BLEND,))], until=day(30))
    assert [(d.rule_id, d.at) for d in touches(sim, A) if d.marketing] == [
        ("welcome", signup + timedelta(hours=1)),
        ("referral_invite", order + timedelta(days=2)),
        ("cross_sell_brewing", signup + timedelta(days=7, hours=1)),  # due on day 3, deferred until welcome left the window
        ("icebreaker", order + timedelta(days=14)),
    ]
    assert sim.report.rules["cross_sell_brewing"].suppressed == {"cap": 1}
