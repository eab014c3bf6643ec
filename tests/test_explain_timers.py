"""`explain` tells what a delayed, lapse or occasion touch decided when it came due (and which
are still ahead), shows the customer's A/B variant, and replays only the customer's part of the
history (their events and their referred friends'), with the same answer as the whole store."""
import json
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

import children
from plugin.engine.ruleset import for_shop
from plugin.events import event_from_dict
from plugin.explain import HistoryIndex, explain
from plugin.rulefile import RULES_DIR, lint, load_rules
from plugin.sample_history import SAMPLE_REFERRAL_KEY, generate

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=timezone.utc)
RULES = """rules:
  - id: thanks
    trigger: order.paid
    delay: 14d
    holdout: 0%
    when:
      customer.orders_count: {equals: 1}
    actions:
      - coupon: {discount: 10%, expires_in: 30d}
      - email: {template: icebreaker, subject: "Thanks"}
    variants:
      - name: ten
      - name: twenty
        coupon: {discount: 20%}
  - id: come_back
    trigger: {lapsed: 60d}
    holdout: 0%
    actions:
      - email: {template: winback, subject: "We miss you"}
  - id: birthday
    trigger: {occasion: birthday, before: 7d}
    holdout: 0%
    actions:
      - email: {template: birthday, subject: "Happy birthday"}
"""


def event(n, kind, cid, at, **extra):
    d = {"id": f"e{n}", "type": kind, "shop": "s.myshopify.com", "customer_id": cid, "occurred_at": at.isoformat(),
         "customer": {"id": cid, "email": f"{cid}@example.com", "accepts_marketing": True, "birthday": "1990-06-20"}}
    d.update(extra)
    return event_from_dict(d)


def paid(n, cid, at):
    return event(n, "order.paid", cid, at, order={"id": f"o{n}", "total": "40.00 USD"})


def rules(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text(RULES)
    ruleset, problems = lint([path], RULES_DIR / "templates")
    assert problems == []
    return ruleset


def test_a_cancelled_delay_a_lapse_and_an_occasion_are_explained(tmp_path):
    rs = rules(tmp_path)
    history = [event(1, "customer.created", "41", T0), paid(2, "41", T0 + timedelta(days=1)),
               paid(3, "41", T0 + timedelta(days=5)),  # a second order before the delay ends
               event(4, "customer.updated", "41", T0 + timedelta(days=200))]
    lines = explain(history, rs, "41", "e2")
    text = "\n".join(lines)
    assert lines[0] == f"customer 41 at {(T0 + timedelta(days=1)).isoformat()}: event e2 (order.paid)"
    variant = next(line for line in lines if line.startswith("thanks: triggered by order.paid"))
    assert variant in ("thanks: triggered by order.paid (A/B variant ten)",
                       "thanks: triggered by order.paid (A/B variant twenty)")
    assert "scheduled touches (delays, lapses, occasions):" in lines
    due = (T0 + timedelta(days=15)).isoformat()
    assert (f"thanks: delay timer due {due} (from order.paid:o2)\n"
            "  FAIL customer.orders_count equals 1 (saw 2)\n"
            "  => SUPPRESSED (cancelled)") in text
    lapse = (T0 + timedelta(days=65)).isoformat()
    assert f"come_back: lapse timer due {lapse} (from lapse:o3)\n  => TOUCH: email 'winback'" in text
    assert "birthday: occasion timer due 2026-06-13T09:00:00+00:00 (from birthday:2026-06-20)\n" in text
    assert "  => TOUCH: email 'birthday'" in text
    assert ("birthday: occasion timer due 2027-06-13T09:00:00+00:00: not yet due when the history ends "
            f"({(T0 + timedelta(days=200)).isoformat()})") in text


def test_a_delayed_touch_shows_the_variant_it_sent(tmp_path):
    rs = rules(tmp_path)
    history = [paid(1, "42", T0), event(2, "customer.updated", "42", T0 + timedelta(days=20))]
    text = "\n".join(explain(history, rs, "42"))
    assert f"thanks: delay timer due {(T0 + timedelta(days=14)).isoformat()} (from order.paid:o1)" in text
    touch = next(line for line in text.split("\n") if line.startswith("  => TOUCH: coupon THANKS-"))
    assert touch.endswith(("(A/B variant ten)", "(A/B variant twenty)"))


def test_the_index_gives_the_same_answer_as_the_whole_history():
    rs = for_shop(load_rules(), SAMPLE_REFERRAL_KEY)
    events = sorted((event_from_dict(d) for d in generate(400, seed=3)), key=lambda e: e.occurred_at)
    index = HistoryIndex(events, rs.settings)
    assert index.referred, "the sample store has referrals"
    referrer = next(iter(sorted(index.referred)))
    friend = sorted(index.referred[referrer])[0]
    mine = index.for_customer(referrer)
    assert {e.customer_id for e in mine} == {referrer} | index.referred[referrer]
    assert any(e.customer_id == friend for e in mine)
    for cid in (referrer, friend, sorted(index.by_customer)[10]):
        assert explain(index, rs, cid) == explain(events, rs, cid)


def test_a_reward_for_a_referral_is_explained_from_the_index():
    rs = for_shop(load_rules(), SAMPLE_REFERRAL_KEY)
    events = sorted((event_from_dict(d) for d in generate(400, seed=3)), key=lambda e: e.occurred_at)
    index = HistoryIndex(events, rs.settings)
    # the reward comes from a friend's order, not the referrer's own events: the index replays it
    rewarded = [c for c in sorted(index.referred) if "referral_reward" in explain(index, rs, c)[1]]
    assert rewarded


def test_bench_explain_prints_json_figures():
    script = Path(__file__).resolve().parents[1] / "bench" / "explain.py"
    result = children.run([sys.executable, str(script), "--customers", "300", "--samples", "5",
                           "--baseline-samples", "1"])
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert figures["customers"] == 300 and figures["explained"] >= 5
    assert figures["ratio"] == pytest.approx(figures["baseline_mean_seconds"] / figures["indexed_mean_seconds"], rel=0.01, abs=0.1)
    assert figures["under_one_second"] is True
