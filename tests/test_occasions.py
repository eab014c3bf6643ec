"""Occasions in the customer's own words: captured from real payload shapes (Shopify
``note_attributes``, WooCommerce ``meta_data``), folded into the customer's state, reminded of
every year before the date, and the first-order anniversary."""
from __future__ import annotations

import json
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest

from connectors.base import Shop
from connectors.shopify.payloads import _order_events
from connectors.woocommerce.parse import _order
from plugin.engine import occasions
from plugin.engine.decisions import Kind, Reason
from plugin.engine.occasions import captured, expand, field_names, parse_day
from plugin.engine.state import state_from_dict, state_to_dict
from plugin.events import Event, event_from_dict, event_to_dict
from plugin.simulate import Simulator
from engine_helpers import SHOP, Shell, action, customer_created, order_paid, rules_from, shipped_rules

FIXTURES = Path(__file__).resolve().parent / "fixtures"
GIFT_DAY = datetime(2026, 12, 10, 12, 5, tzinfo=timezone.utc)
REMINDER = {"id": "remind", "trigger": {"occasion": "captured", "before": "7d"},
            "actions": [{"coupon": {"discount": "10%"}}, {"email": {"template": "t", "subject": "s"}}]}


def fixture(*parts) -> dict:
    return json.loads(FIXTURES.joinpath(*parts).read_text())


def gift_order(customer_id: str, order_id: str, at: datetime, attributes: dict, shop: str = SHOP) -> Event:
    """An order.paid whose checkout answered the occasion question (canonical form)."""
    e = event_to_dict(order_paid(customer_id, order_id, at, shop=shop))
    e["order"]["attributes"] = [[k, v] for k, v in attributes.items()]
    return event_from_dict(e)


BIRTHDAY_FOR_MOM = {"keepwell_occasion": "Birthday", "keepwell_occasion_date": "2026-12-20",
                    "keepwell_occasion_for": "אמא", "keepwell_occasion_remind": "yes"}


def test_shopify_cart_attributes_arrive_as_note_attributes_and_become_an_occasion():
    shop = Shop(id="sh_1", platform="shopify", domain="x.myshopify.com", api_url="https://x.myshopify.com")
    (order,) = _order_events(shop, "orders/paid", fixture("shopify", "order_paid_gift.json"))
    assert ("gift_wrap", "yes") in order.order.attributes
    (occ,) = captured(order, field_names())
    assert occ.type == "occasion.captured" and occ.customer_id == order.customer_id
    assert occ.data == {"occasion_id": order.order.id, "kind": "anniversary", "date": "2027-01-03", "recipient": "Miguel",
                        "remind": True, "captured_at": order.order.created_at.isoformat()}


def test_woocommerce_order_meta_from_the_wordpress_plugin_becomes_an_occasion():
    order = _order(fixture("woocommerce", "order_with_occasion.json"), "4310")
    event = Event(id="wc:order.created:4310", type="order.paid", shop="wc_1", customer_id="25", occurred_at=GIFT_DAY,
                  order=order)
    (occ,) = captured(event, field_names())
    assert (occ.data["kind"], occ.data["date"], occ.data["recipient"], occ.data["remind"]) == \
        ("birthday", "2026-12-20", "אמא", True)


def test_fields_the_merchant_already_collects_are_mapped_in_settings():
    rules = rules_from([REMINDER], settings={"occasion_fields": {"kind": "Occasion", "date": ["Gift date", "Event date"],
                                                                 "recipient": "Gift for", "remind": "Remind me"}})
    event = gift_order("5001", "7001", GIFT_DAY, {"Occasion": "Wedding anniversary", "Event date": "12-28",
                                                  "Gift for": "Lior", "Remind me": "Yes"})
    (occ,) = captured(event, rules.settings.occasion_fields)
    assert (occ.data["kind"], occ.data["date"], occ.data["recipient"], occ.data["remind"]) == \
        ("wedding_anniversary", "2026-12-28", "Lior", True)
    assert captured(event, field_names()) == []  # without the mapping these are just attributes


@pytest.mark.parametrize("text, expected", [
    ("2026-12-20", date(2026, 12, 20)), ("12-20", date(2026, 12, 20)), ("--02-29", date(2026, 2, 28)),
    ("20/12/2026", None), ("next tuesday", None), ("13-40", None),
])
def test_occasion_dates(text, expected):
    assert parse_day(text, GIFT_DAY) == expected


def test_no_date_no_occasion_and_other_events_capture_nothing():
    assert captured(gift_order("5002", "7002", GIFT_DAY, {"keepwell_occasion": "birthday"}), field_names()) == []
    assert captured(order_paid("5002", "7003", GIFT_DAY), field_names()) == []
    assert expand([customer_created("5002", GIFT_DAY)], field_names())[0].type == "customer.created"


def _shell_with_gift(rules, attributes=BIRTHDAY_FOR_MOM, customer_id="5003", order_id="7004"):
    shell = Shell(rules)
    shell.handle(customer_created(customer_id, GIFT_DAY - timedelta(days=30), first_name="נועה"))
    decisions = []
    for e in expand([gift_order(customer_id, order_id, GIFT_DAY, attributes)], rules.settings.occasion_fields):
        decisions += shell.handle(e)
    return shell, decisions


def test_a_gift_for_a_birthday_is_reminded_of_a_week_before_next_years_birthday():
    shell, decisions = _shell_with_gift(shipped_rules())
    (timer,) = [d for d in decisions if d.rule_id == "occasion_reminder"]
    # 20 December 2026 is what the gift was for: the first reminder is for 2027.
    assert (timer.kind, timer.reason, timer.wake_at) == (Kind.SCHEDULED, Reason.OCCASION,
                                                         datetime(2027, 12, 13, 9, 0, tzinfo=timezone.utc))
    fired = shell.fire(timer)
    touch = next(d for d in fired if d.kind == Kind.TOUCH)
    assert touch.key.endswith(":captured:7004:2027-12-20")
    email = action(touch, "email")
    assert email.occasion == {"kind": "birthday", "title": "Birthday", "recipient": "אמא", "date": "2026-12-20"}
    assert action(touch, "coupon").code.startswith("REMIND-")
    (again,) = [d for d in fired if d.kind == Kind.SCHEDULED]  # and every year after
    assert again.wake_at == datetime(2028, 12, 13, 9, 0, tzinfo=timezone.utc)


def test_no_reminder_unless_the_customer_asked_for_one():
    shell, decisions = _shell_with_gift(shipped_rules(), {**BIRTHDAY_FOR_MOM, "keepwell_occasion_remind": "no"})
    assert [d for d in decisions if d.rule_id == "occasion_reminder"] == []
    (kept,) = shell.state("5003").occasions.values()  # still known, for the merchant and later rules
    assert (kept.kind, kept.remind) == ("birthday", False)


def test_a_reminder_can_be_limited_to_some_kinds_and_a_customer_holds_several_occasions():
    rule = {**REMINDER, "trigger": {"occasion": "captured", "before": "3d", "kind": ["birthday"]}}
    rules = rules_from([rule])
    shell, first = _shell_with_gift(rules)
    later = GIFT_DAY + timedelta(days=40)
    second = []
    for e in expand([gift_order("5003", "7005", later, {**BIRTHDAY_FOR_MOM, "keepwell_occasion_date": "2027-03-02",
                                                        "keepwell_occasion_for": "Dad"})], rules.settings.occasion_fields):
        second += shell.handle(e)
    anniversary = expand([gift_order("5003", "7006", later, {**BIRTHDAY_FOR_MOM, "keepwell_occasion": "anniversary"})],
                         rules.settings.occasion_fields)
    third = [d for e in anniversary for d in shell.handle(e)]
    assert len(shell.state("5003").occasions) == 3
    assert [d.wake_at.date() for d in first + second if d.kind == Kind.SCHEDULED] == [date(2027, 12, 17), date(2028, 2, 28)]
    assert [d for d in third if d.kind == Kind.SCHEDULED] == []


def test_a_withdrawn_reminder_cancels_the_timer():
    rules = rules_from([REMINDER])
    shell, decisions = _shell_with_gift(rules)
    (timer,) = [d for d in decisions if d.kind == Kind.SCHEDULED]
    redelivered = gift_order("5003", "7004", GIFT_DAY + timedelta(hours=1), {**BIRTHDAY_FOR_MOM, "keepwell_occasion_remind": "no"})
    for e in expand([redelivered], rules.settings.occasion_fields):
        shell.handle(e)
    (cancelled,) = shell.fire(timer)
    assert (cancelled.kind, cancelled.reason) == (Kind.SUPPRESSED, Reason.CANCELLED)


def test_first_order_anniversary():
    rule = {"id": "thanks_a_year", "trigger": {"occasion": "first_order_anniversary"},
            "actions": [{"email": {"template": "t", "subject": "s"}}]}
    shell = Shell(rules_from([rule]))
    shell.handle(customer_created("5004", GIFT_DAY - timedelta(days=1)))
    (timer,) = [d for d in shell.handle(order_paid("5004", "7010", GIFT_DAY)) if d.kind == Kind.SCHEDULED]
    assert timer.wake_at == datetime(2027, 12, 10, 9, 0, tzinfo=timezone.utc)  # never the day of the order itself
    assert [d for d in shell.handle(order_paid("5004", "7011", GIFT_DAY + timedelta(days=20))) if d.kind == Kind.SCHEDULED] == []
    fired = shell.fire(timer)
    touch = next(d for d in fired if d.kind == Kind.TOUCH)
    assert action(touch, "email").occasion["kind"] == "first_order_anniversary"
    assert [d.wake_at.year for d in fired if d.kind == Kind.SCHEDULED] == [2028]


def test_occasions_survive_the_stored_state():
    shell, _ = _shell_with_gift(rules_from([REMINDER]))
    state = shell.state("5003")
    assert state_from_dict(json.loads(json.dumps(state_to_dict(state)))).occasions == state.occasions


def test_the_simulator_derives_the_same_occasions_as_the_worker():
    sim = Simulator(shipped_rules())
    sim.feed(customer_created("5005", GIFT_DAY - timedelta(days=3), first_name="נועה"))
    sim.feed(gift_order("5005", "7020", GIFT_DAY, BIRTHDAY_FOR_MOM))
    sim.finish(datetime(2028, 1, 1, tzinfo=timezone.utc))
    reminders = [d for d in sim.report.ledger.values() if d.rule_id == "occasion_reminder"]
    assert [(d.at.date(), d.key.rsplit(":", 1)[1]) for d in reminders] == [(date(2027, 12, 13), "2027-12-20")]


@pytest.mark.parametrize("trigger, message", [
    ({"occasion": "birthday", "kind": "birthday"}, "kind only applies to {occasion: captured}"),
    ({"occasion": "capture"}, "unknown occasion 'capture' (did you mean 'captured'?)"),
])
def test_occasion_trigger_problems(trigger, message):
    from plugin.engine.ruleset import Problems, compile_ruleset

    problems = Problems()
    assert compile_ruleset([("t.yaml", {"rules": [{**REMINDER, "trigger": trigger}]})], None, problems) is None
    assert [m for _, m, _ in problems.items] == [message]


def test_defaults_read_both_the_plain_and_the_hidden_meta_spelling():
    assert occasions.DEFAULT_FIELDS["date"] == ("keepwell_occasion_date",)
    hidden = gift_order("5006", "7030", GIFT_DAY, {"_keepwell_occasion_date": "2027-05-01"})
    assert captured(hidden, field_names())[0].data["date"] == "2027-05-01"


def test_the_shopify_cart_block_writes_the_attributes_the_engine_reads():
    import re
    import tomllib

    root = Path(__file__).resolve().parents[1] / "extensions" / "keepwell-occasion"
    assert tomllib.loads((root / "shopify.extension.toml").read_text())["type"] == "theme"
    liquid = (root / "blocks" / "occasion.liquid").read_text()
    schema = json.loads(re.search(r"{% schema %}(.*){% endschema %}", liquid, re.S).group(1))
    assert schema["target"] == "section" and schema["enabled_on"] == {"templates": ["cart"]}
    written = set(re.findall(r'name="attributes\[(\w+)\]"', liquid))
    assert written == {names[0] for names in occasions.DEFAULT_FIELDS.values()}


def test_an_imported_past_implies_the_next_first_order_anniversary_and_captured_occasions():
    from plugin.engine.imported import implied_timers

    rules = rules_from([REMINDER, {"id": "thanks_a_year", "trigger": {"occasion": "first_order_anniversary"},
                                   "actions": [{"email": {"template": "t", "subject": "s"}}]}])
    shell = Shell(rules)
    shell.handle(customer_created("5005", GIFT_DAY - timedelta(days=800)))
    first = gift_order("5005", "7020", GIFT_DAY - timedelta(days=700), BIRTHDAY_FOR_MOM)
    for e in expand([first], rules.settings.occasion_fields):
        shell.handle(e)
    now = GIFT_DAY + timedelta(days=20)
    wakes = sorted((d.rule_id, d.wake_at) for d in implied_timers(shell.state("5005"), rules, now))
    # the first order was 2025-01-09: its next anniversary ahead of now; Mom's birthday (12-20), 7 days before
    assert wakes == [("remind", datetime(2027, 12, 13, 9, 0, tzinfo=timezone.utc)),
                     ("thanks_a_year", datetime(2027, 1, 9, 9, 0, tzinfo=timezone.utc))]
