"""Text messages in the pure engine: segments as Twilio bills them (GSM-7 160/153 with extension
characters counting two, UCS-2 70/67 with surrogate pairs counting two), E.164 numbers, the
customer's time zone, quiet hours as a recorded deferral decided again in the morning (in
simulate exactly as live, through step), SMS consent gating an SMS rule apart from email consent."""
from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal

import pytest

from plugin.engine.decisions import Kind, Reason
from plugin.engine.sms import SmsSettings, customer_zone, e164, quiet_until, segments
from engine_helpers import SHOP, Shell, _event, iso, order_paid, rules_from, run, touches

HEBREW = "שלום דנה! הקופון שלך: THANKS-K3J5Q2ZX7ABC, 15% הנחה עד 24 בדצמבר."


@pytest.mark.parametrize("text, encoding, units, parts", [
    ("", "GSM-7", 0, 0),
    ("a" * 160, "GSM-7", 160, 1),
    ("a" * 161, "GSM-7", 161, 2),
    ("a" * 306, "GSM-7", 306, 2),
    ("a" * 307, "GSM-7", 307, 3),
    ("€" * 80, "GSM-7", 160, 1),  # the euro sign is an extension character: two septets
    ("a" * 159 + "[", "GSM-7", 161, 2),
    ("Olá, é você? Ça va", "UCS-2", 18, 1),  # á and ç are not in GSM-7 (é and Ç are): the whole text is UCS-2
    ("א" * 70, "UCS-2", 70, 1),
    ("א" * 71, "UCS-2", 71, 2),
    ("א" * 134, "UCS-2", 134, 2),
    ("א" * 135, "UCS-2", 135, 3),
    ("🎉" * 35, "UCS-2", 70, 1),  # outside the BMP: a surrogate pair, two units each
    ("🎉" * 36, "UCS-2", 72, 2),
])
def test_segments(text, encoding, units, parts):
    assert segments(text) == (encoding, units, parts)


def test_a_hebrew_reminder_is_ucs2_and_costs_its_segments():
    s = segments(HEBREW)
    assert s.encoding == "UCS-2" and s.units == len(HEBREW) and s.parts == 1
    long = segments(HEBREW * 3)
    assert long.parts == 3  # 198 units / 67
    assert SmsSettings().cost(long.parts) == Decimal("0.0237")


@pytest.mark.parametrize("raw, region, expected", [
    ("052-555-1234", "IL", "+972525551234"),
    ("+972 52 555 1234", None, "+972525551234"),
    ("(123) 456-7890", "US", None),  # no US area code starts with 1
    ("(201) 555-0123", "US", "+12015550123"),
    ("052-555-1234", None, None),  # no country to read it with
    ("not a number", "IL", None),
    ("", "IL", None),
])
def test_e164(raw, region, expected):
    assert e164(raw, region) == expected


def test_the_customer_time_zone_is_their_numbers_when_it_has_one_else_the_shops():
    shop = SmsSettings(time_zone="Europe/London")
    assert customer_zone("+972525551234", shop).key == "Asia/Jerusalem"
    assert customer_zone("+12015550123", shop).key == "America/New_York"
    assert customer_zone("+11234567890", shop).key == "Europe/London"  # not a valid number: the shop's
    assert customer_zone(None, shop).key == "Europe/London"


def test_quiet_hours_in_the_customers_zone():
    s = SmsSettings()
    il = "+972525551234"  # Jerusalem is UTC+2 in December
    at = lambda h, m=0: datetime(2026, 12, 10, h, m, tzinfo=timezone.utc)  # noqa: E731
    assert quiet_until(at(10), il, s) is None  # 12:00 local
    assert quiet_until(at(17, 59), il, s) is None  # 19:59 local
    assert quiet_until(at(18), il, s) == datetime(2026, 12, 11, 7, tzinfo=timezone.utc)  # 20:00 local: tomorrow 09:00
    assert quiet_until(at(3), il, s) == datetime(2026, 12, 10, 7, tzinfo=timezone.utc)  # 05:00 local: this morning
    assert quiet_until(at(3), None, s) == datetime(2026, 12, 10, 9, tzinfo=timezone.utc)  # no number: UTC


SMS_RULE = {"id": "thanks_sms", "name": "Thanks by text", "trigger": "order.paid", "holdout": "0%",
            "actions": [{"coupon": {"discount": "15%"}}, {"sms": {"template": "thanks"}}]}


def customer(cid: str, at: datetime, phone: str | None = "+972525551234", sms_consent: bool | None = True,
             accepts_marketing: bool = False):
    c = {"id": cid, "email": f"dana.{cid}@example.co.il", "first_name": "דנה", "accepts_marketing": accepts_marketing,
         "phone": phone, "sms_consent": sms_consent, "created_at": iso(at)}
    return _event("customer.created", f"cc-{cid}", cid, at, customer={k: v for k, v in c.items() if v is not None})


def test_an_sms_rule_needs_sms_consent_not_email_consent():
    rules = rules_from([SMS_RULE])
    noon = datetime(2026, 12, 10, 10, tzinfo=timezone.utc)
    shell = Shell(rules)
    shell.handle(customer("1", noon, sms_consent=False, accepts_marketing=True))
    (d,) = shell.handle(order_paid("1", "9001", noon))
    assert (d.kind, d.reason, d.detail) == (Kind.SUPPRESSED, Reason.CONSENT, "customer has not opted in to SMS marketing")
    shell.handle(customer("2", noon, sms_consent=True, accepts_marketing=False))
    (d,) = shell.handle(order_paid("2", "9002", noon))
    assert d.kind == Kind.TOUCH
    sms = [a for a in d.actions if a.type == "sms"][0]
    assert (sms.template, sms.to, sms.customer_id) == ("thanks", "+972525551234", "2")


def test_a_text_due_at_night_waits_for_the_morning_as_a_recorded_deferral():
    night = datetime(2026, 12, 10, 21, 30, tzinfo=timezone.utc)  # 23:30 in Jerusalem
    sim = run([customer("1", night), order_paid("1", "9001", night)], rules_from([SMS_RULE]),
              until=datetime(2026, 12, 12, tzinfo=timezone.utc))
    (touch,) = touches(sim, "1", "thanks_sms")
    assert touch.at == datetime(2026, 12, 11, 7, tzinfo=timezone.utc)  # 09:00 in Jerusalem
    assert sim.report.rules["thanks_sms"].suppressed == {"quiet_hours": 1}
    shell = Shell(rules_from([SMS_RULE]))  # what the ledger row says
    shell.handle(customer("1", night))
    deferral, timer = shell.handle(order_paid("1", "9001", night))
    assert (deferral.kind, deferral.reason) == (Kind.SUPPRESSED, Reason.QUIET_HOURS)
    assert deferral.detail == ("texts go out 09:00-20:00 in the customer's time zone; "
                               "deferred to 2026-12-11T07:00:00+00:00")
    assert (timer.kind, timer.reason, timer.wake_at) == (Kind.SCHEDULED, Reason.DEFERRED, touch.at)
    assert shell.fire(timer)[0].kind == Kind.TOUCH


def test_the_shops_hours_and_the_cap_hold_together():
    rules = rules_from([SMS_RULE], {"sms": {"send_between": "10:00-18:00", "time_zone": "Asia/Jerusalem"},
                                   "frequency_cap": {"touches": 1, "per": "1d", "when_capped": "defer"}})
    evening = datetime(2026, 12, 10, 16, 30, tzinfo=timezone.utc)  # 18:30 local: after the shop's hours
    sim = run([customer("1", evening), order_paid("1", "9001", evening),
               order_paid("1", "9002", evening.replace(minute=40))], rules,
              until=datetime(2026, 12, 14, tzinfo=timezone.utc))
    sent = touches(sim, "1", "thanks_sms")
    assert [t.at for t in sent] == [datetime(2026, 12, 11, 8, tzinfo=timezone.utc),  # 10:00 local
                                   datetime(2026, 12, 12, 8, tzinfo=timezone.utc)]  # the cap, then the morning


def test_sms_settings_problems_are_reported():
    from plugin.engine.ruleset import Problems, compile_ruleset

    problems = Problems()
    compile_ruleset([("t.yaml", {"rules": [], "settings": {"sms": {"time_zone": "Mars/Olympus",
                                                                   "price_per_segment": "cheap"}}})], None, problems)
    messages = [m for _, m, _ in problems.items]
    assert any("Mars/Olympus" in m and "time zone" in m for m in messages)
    assert any("price_per_segment 'cheap'" in m for m in messages)
    ok = rules_from([], {"sms": {"price_per_segment": "0.05 ILS", "region": "il", "send_between": "08:30-21:00"}})
    s = ok.settings.sms
    assert (s.price_per_segment, s.price_currency, s.region) == (Decimal("0.05"), "ILS", "IL")
    assert (s.quiet_end.isoformat(), s.quiet_start.isoformat()) == ("08:30:00", "21:00:00")


assert SHOP
