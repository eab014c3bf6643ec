"""Moments the merchant chooses: dated and yearly triggers in the shop's time zone, spread over
a send window, once per customer per occurrence; and the conditions custom events test
(``event.data.*``). Engine, lint and the simulator (virtual clock)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from plugin.engine.decide import moment_timer
from plugin.engine.decisions import Kind, Reason
from plugin.engine.moments import Moment, occurrences, parse_date, parse_yearly
from plugin.engine.ruleset import Problems, compile_ruleset
from plugin.events import EventError, event_from_dict
from plugin.explain import explain
from plugin.rulefile import lint_sources
from plugin.simulate import Simulator
from engine_helpers import SHOP, Shell, customer_created, iso, order_paid, rules_from, touches

JERUSALEM = ZoneInfo("Asia/Jerusalem")
EMAIL = {"email": {"template": "t", "subject": "Summer is coming"}}
SUMMER = {"id": "summer", "trigger": {"yearly": "06-01"}, "window": "4h",
          "when": {"customer.orders_count": {"at_least": 1}}, "actions": [EMAIL]}
GOLD = {"id": "gold_today", "trigger": {"date": "2027-06-01T10:30"}, "window": "1h",
        "when": {"customer.tags": {"contains": "gold"}},
        "actions": [{"coupon": {"discount": "50%", "expires_in": "1d"}}, EMAIL]}


def test_dates_and_yearly_dates_parse_with_the_default_time_of_nine():
    assert parse_date("2027-06-01T09:30") == Moment(at=datetime(1, 1, 1, 9, 30).time(), on=datetime(2027, 6, 1).date())
    assert parse_date("2027-06-01").at.hour == 9
    assert parse_yearly("06-01").month == 6 and parse_yearly("06-01T18:15").at.minute == 15
    for bad, why in (("02-30", "not a day of the year"), ("6/1", "month-day"), ("06-01T25:00", "not a time of day")):
        with pytest.raises(ValueError, match=why):
            parse_yearly(bad)
    with pytest.raises(ValueError, match="not a day of the calendar"):
        parse_date("2027-02-29")


def test_occurrences_are_in_the_shops_time_zone_and_29_february_falls_on_the_28th():
    (label, at), = occurrences(parse_yearly("06-01"), JERUSALEM, datetime(2027, 1, 1, tzinfo=timezone.utc),
                               datetime(2027, 12, 31, tzinfo=timezone.utc))
    assert label == "2027-06-01T09:00" and at == datetime(2027, 6, 1, 6, 0, tzinfo=timezone.utc)  # IDT, UTC+3
    leap = occurrences(parse_yearly("02-29"), timezone.utc, datetime(2027, 1, 1, tzinfo=timezone.utc),
                       datetime(2029, 1, 1, tzinfo=timezone.utc))
    assert [lb for lb, _ in leap] == ["2027-02-28T09:00", "2028-02-29T09:00"]
    once = parse_date("2027-06-01T09:00")
    assert occurrences(once, timezone.utc, datetime(2027, 6, 1, 9, tzinfo=timezone.utc),
                       datetime(2030, 1, 1, tzinfo=timezone.utc)) == []  # after its moment: never again


def test_a_customer_gets_one_timer_per_occurrence_at_a_stable_slot_inside_the_window():
    rules = rules_from([SUMMER])
    rule = rules.by_id["summer"]
    at = datetime(2027, 6, 1, 6, tzinfo=timezone.utc)
    slots = [moment_timer(SHOP, rule, f"c{n}", "2027-06-01T09:00", at, rules.version).occurred_at for n in range(200)]
    assert all(at <= s < at + timedelta(hours=4) for s in slots)
    assert max(slots) - min(slots) > timedelta(hours=3)  # spread, not all at once
    again = moment_timer(SHOP, rule, "c7", "2027-06-01T09:00", at, rules.version)
    assert again == moment_timer(SHOP, rule, "c7", "2027-06-01T09:00", at, rules.version)


def test_the_engine_decides_a_moment_through_conditions_consent_and_holdout():
    rules = rules_from([{**SUMMER, "holdout": "50%"}])
    rule = rules.by_id["summer"]
    shell = Shell(rules)
    at = datetime(2027, 6, 1, 9, tzinfo=timezone.utc)
    outcomes = {}
    for n in range(40):
        cid = f"c{n}"
        shell.handle(customer_created(cid, at - timedelta(days=30), accepts_marketing=n % 4 != 2))
        if n % 2 == 0:
            shell.handle(order_paid(cid, f"o{n}", at - timedelta(days=20)))
        timer = moment_timer(SHOP, rule, cid, "2027-06-01T09:00", at, rules.version)
        (d,) = shell.handle(timer)
        outcomes[cid] = (d.kind, d.reason)
    assert outcomes["c1"] == (Kind.SUPPRESSED, Reason.CONDITIONS)  # never ordered
    kinds = set(outcomes.values())
    assert (Kind.SUPPRESSED, Reason.CONSENT) in kinds and (Kind.SUPPRESSED, Reason.HOLDOUT) in kinds
    assert (Kind.TOUCH, None) in kinds


def _history():
    start = datetime(2027, 5, 1, tzinfo=timezone.utc)
    events = [customer_created("gold-1", start, first_name="נועה"), customer_created("plain-2", start),
              customer_created("late-3", datetime(2027, 6, 2, tzinfo=timezone.utc))]
    gold = event_from_dict({"id": "cu-gold-1", "type": "customer.updated", "shop": SHOP, "customer_id": "gold-1",
                            "occurred_at": iso(start + timedelta(days=1)), "customer": {"id": "gold-1", "tags": ["gold"]}})
    events.append(gold)
    events.append(order_paid("plain-2", "o-2", start + timedelta(days=2)))
    return sorted(events, key=lambda e: e.occurred_at)


def test_simulate_fires_the_moments_in_virtual_time_for_the_customers_known_by_then():
    rules = rules_from([SUMMER, GOLD])
    sim = Simulator(rules, tz=JERUSALEM)
    for e in _history():
        sim.feed(e)
    sim.finish(datetime(2028, 6, 2, tzinfo=timezone.utc))
    summer = [(d.customer_id, d.key.rsplit(":", 2)[-2:]) for d in touches(sim, rule_id="summer")]
    # plain-2 ordered: 2027 and 2028; late-3 was not a customer yet on 2027-06-01, and never ordered
    assert [c for c, _ in summer] == ["plain-2", "plain-2"]
    (gold,) = touches(sim, rule_id="gold_today")
    assert gold.customer_id == "gold-1"
    start = datetime(2027, 6, 1, 7, 30, tzinfo=timezone.utc)  # 10:30 in Jerusalem (UTC+3 in June)
    assert start <= gold.at < start + timedelta(hours=1)
    report = sim.report.to_dict()["rules"]
    assert report["gold_today"]["touches"] == 1 and report["summer"]["triggered"] == 2 + 3  # 2027: 2 known, 2028: 3


def test_explain_says_why_a_customer_did_not_get_the_moment():
    rules = rules_from([GOLD])
    lines = "\n".join(explain(_history(), rules, "plain-2"))
    assert "gold_today: not triggered (waits for 2027-06-01 at 10:30, sent over 1h)" in lines, lines
    assert "gold_today: moment (dated or yearly) timer due 2027-06-01T1" in lines
    assert "FAIL customer.tags contains gold (saw [])\n  => SUPPRESSED (conditions)" in lines


def _lint(rule: dict) -> list[str]:
    import yaml

    text = yaml.safe_dump({"rules": [rule]}, sort_keys=False)
    return [str(p) for p in lint_sources([("moments.yaml", text.encode())], {"t.html": "<p>{{ customer.first_name }}</p>",
                                                                           "t.txt": "{{ customer.first_name }}"},
                                     now=datetime.now(timezone.utc)).problems]


@pytest.mark.parametrize("change, problem", [
    ({"trigger": {"date": "2020-06-01T09:00"}}, "moments.yaml:4:5: [summer] 2020-06-01 at 09:00 has passed"),
    ({"trigger": {"yearly": "02-30"}}, "moments.yaml:4:5: [summer] 02-30 is not a day of the year"),
    ({"window": "2d"}, "moments.yaml:5:3: [summer] window must be longer than zero and at most 1d"),
    ({"trigger": "order.paid"}, "[summer] window only applies to a dated or yearly trigger"),
    ({"trigger": {"date": "2027-06-01T26:00"}}, "26:00 is not a time of day"),
    ({"delay": "1d"}, "delay only applies to event triggers"),
])
def test_lint_names_file_line_and_problem(change, problem):
    found = _lint({**SUMMER, **change})
    assert any(problem in p for p in found), found


def test_a_past_date_on_a_switched_off_rule_is_kept_for_the_record():
    assert _lint({**SUMMER, "trigger": {"date": "2020-06-01"}, "enabled": False}) == []


def test_a_stored_rule_set_whose_date_has_passed_still_loads():
    from plugin.shops import compile_files

    past = {"m.yaml": "rules:\n  - id: old\n    trigger: {date: '2020-06-01'}\n    actions: [{tag: summer}]\n"}
    assert compile_files(past).by_id["old"].trigger.moment.on.year == 2020  # the worker loads it: it never fires
    with pytest.raises(Exception, match="has passed"):
        compile_files(past, datetime.now(timezone.utc))  # installing it again is refused


HEAT = {"id": "heat", "trigger": {"event": "custom.heatwave"},
        "when": {"all": [{"event.data.temperature": {"at_least": 30}}, {"event.data.city": {"in": ["Tel Aviv", "חיפה"]}},
                         {"event.data.flags": {"contains": "outdoor"}}]},
        "actions": [EMAIL]}


def _custom(data: dict, event_type: str = "custom.heatwave", eid: str = "h1"):
    return event_from_dict({"id": eid, "type": event_type, "shop": SHOP, "customer_id": "c1",
                            "occurred_at": "2027-07-01T10:00:00Z", "data": data})


@pytest.mark.parametrize("data, fires", [
    ({"temperature": 31.5, "city": "Tel Aviv", "flags": ["outdoor"]}, True),
    ({"temperature": "31", "city": "חיפה", "flags": "outdoor"}, True),  # a number sent as text still compares as one
    ({"temperature": 29, "city": "Tel Aviv", "flags": ["outdoor"]}, False),
    ({"temperature": "hot", "city": "Tel Aviv", "flags": ["outdoor"]}, False),  # not a number: missing
    ({"temperature": 35, "city": "Eilat", "flags": ["outdoor"]}, False),
    ({"temperature": 35, "city": "Tel Aviv"}, False),
])
def test_custom_event_data_compares_numbers_as_numbers_and_text_as_text(data, fires):
    shell = Shell(rules_from([HEAT]))
    shell.handle(customer_created("c1", datetime(2027, 6, 1, tzinfo=timezone.utc)))
    (d,) = shell.handle(_custom(data))
    assert (d.kind == Kind.TOUCH) is fires, d


def test_custom_event_types_are_checked():
    with pytest.raises(EventError, match="unknown event type"):
        _custom({}, "custom.Heat Wave")
    problems = Problems()
    assert compile_ruleset([("t.yaml", {"rules": [{**HEAT, "trigger": "custom.Heat"}]})], None, problems) is None
    assert "bad custom event 'custom.Heat'" in problems.items[0][1]
    # a string trigger names a custom event just as well
    assert rules_from([{**HEAT, "trigger": "custom.heatwave"}]).by_event["custom.heatwave"]


def test_event_data_on_a_store_event_is_a_lint_problem_with_its_line():
    found = _lint({**HEAT, "id": "summer", "trigger": "order.paid",
                   "when": {"all": [{"customer.orders_count": {"at_least": 1}}, {"event.data.city": {"exists": True}}]}})
    assert any("moments.yaml:8:7: [summer] event.data is what your own events carry: use it with trigger: "
               "{event: custom.NAME}" in p for p in found), found


def test_keepwell_simulate_lists_who_would_receive_a_moment_in_the_shops_time_zone(tmp_path):
    import json

    import yaml
    from click.testing import CliRunner

    from plugin.cli import main
    from plugin.events import event_to_dict

    rules = tmp_path / "rules"
    (rules / "templates").mkdir(parents=True)
    (rules / "moments.yaml").write_text(yaml.safe_dump({"rules": [{**GOLD, "holdout": "0%", "actions": [
        {"coupon": {"discount": "50%", "expires_in": "1d"}}, {"email": {"template": "gold", "subject": "Gold"}}]}]}))
    (rules / "templates" / "gold.txt").write_text("{{ coupon.code }} {{ unsubscribe_url }}")
    (rules / "templates" / "gold.html").write_text("<p>{{ coupon.code }} <a href='{{ unsubscribe_url }}'>x</a></p>")
    history = tmp_path / "history.jsonl"
    history.write_text("".join(json.dumps(event_to_dict(e), ensure_ascii=False) + "\n" for e in _history()))
    out = CliRunner().invoke(main, ["simulate", str(history), "--rules", str(rules), "--timezone", "Asia/Jerusalem",
                                    "--who", "gold_today", "--format", "json"])
    assert out.exit_code == 0, out.output
    report = json.loads(out.output)
    (who,) = report["who"]
    at = datetime.fromisoformat(who["at"])
    start = datetime(2027, 6, 1, 7, 30, tzinfo=timezone.utc)  # 10:30 in Jerusalem, and an hour's window
    assert who["customer"] == "gold-1" and start <= at < start + timedelta(hours=1)
    assert report["rules"]["gold_today"]["suppressed"] == {"conditions": 1}
    bad = CliRunner().invoke(main, ["simulate", str(history), "--rules", str(rules), "--timezone", "Mars/Olympus"])
    assert bad.exit_code == 2 and "unknown time zone 'Mars/Olympus'" in bad.output


def test_the_frequency_cap_defers_a_moment_and_the_deferred_touch_goes_out_later():
    thanks = {"id": "thanks", "trigger": "order.paid", "actions": [EMAIL]}
    rules = rules_from([thanks, {**SUMMER, "when": {"customer.orders_count": {"at_least": 1}}}],
                       {"frequency_cap": {"touches": 1, "per": "7d", "when_capped": "defer"}})
    shell = Shell(rules)
    at = datetime(2027, 6, 1, 6, tzinfo=timezone.utc)
    shell.handle(customer_created("c1", at - timedelta(days=30)))
    (paid,) = shell.handle(order_paid("c1", "o1", at - timedelta(days=2)))
    assert paid.kind == Kind.TOUCH
    timer = moment_timer(SHOP, rules.by_id["summer"], "c1", "2027-06-01T09:00", at, rules.version)
    capped, deferred = shell.handle(timer)
    assert (capped.kind, capped.reason) == (Kind.SUPPRESSED, Reason.CAP)
    assert deferred.kind == Kind.SCHEDULED and deferred.wake_at == at - timedelta(days=2) + timedelta(days=7)
    (later,) = shell.fire(deferred)
    assert later.kind == Kind.TOUCH and later.key == capped.key  # the same occurrence's touch, once
