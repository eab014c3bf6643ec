"""A/B variants: stable weighted assignment, recorded on the decision, validated at lint time."""
from collections import Counter
from datetime import datetime, timezone

from plugin.engine import Kind, apply, decide, new_state
from plugin.engine.decide import pick_variant
from plugin.events import event_from_dict
from plugin.rulefile import RULES_DIR, lint

TEMPLATES = RULES_DIR / "templates"
RULE = """rules:
  - id: thanks
    trigger: order.paid
    actions:
      - coupon: {discount: 10%, expires_in: 30d}
      - email: {template: icebreaker, subject: "10% off"}
    variants:
      - name: ten
      - name: fifteen
        weight: 3
        coupon: {discount: 15%}
        email: {subject: "15% off, {{ customer.first_name }}"}
"""


def ruleset(tmp_path, text=RULE):
    path = tmp_path / "rules.yaml"
    path.write_text(text)
    rs, problems = lint([path], TEMPLATES)
    return rs, [str(p).replace(str(tmp_path) + "/", "") for p in problems]


def test_assignment_is_stable_and_follows_the_weights(tmp_path):
    rule = ruleset(tmp_path)[0].rules[0]
    first = [pick_variant(rule, "shop.myshopify.com", str(i)).name for i in range(20000)]
    again = [pick_variant(rule, "shop.myshopify.com", str(i)).name for i in range(20000)]
    assert first == again
    share = Counter(first)["fifteen"] / len(first)
    assert 0.73 < share < 0.77
    # another shop draws its own groups
    other = [pick_variant(rule, "other.myshopify.com", str(i)).name for i in range(20000)]
    assert other != first


def test_the_touch_uses_and_records_the_variant(tmp_path):
    rs = ruleset(tmp_path)[0]
    t = datetime(2026, 3, 1, tzinfo=timezone.utc)
    seen = {}
    for cid in map(str, range(7000000001, 7000000041)):
        event = event_from_dict({"id": f"o{cid}", "type": "order.paid", "shop": "s", "customer_id": cid,
                                 "occurred_at": t.isoformat(), "customer": {"id": cid, "accepts_marketing": True},
                                 "order": {"id": f"9{cid}", "total": "40.00 USD"}})
        state = apply(new_state("s", cid), event)
        touch, = [d for d in decide(event, state, rs, t) if d.kind == Kind.TOUCH]
        coupon, email = touch.actions
        seen[touch.variant] = (coupon.value, email.subject)
        assert touch.to_dict()["variant"] == touch.variant
    assert seen == {"ten": (10, "10% off"), "fifteen": (15, "15% off, {{ customer.first_name }}")}


def test_variant_problems_are_reported_with_their_line(tmp_path):
    text = RULE.replace("      - coupon: {discount: 10%, expires_in: 30d}\n", "").replace("name: ten", "name: fifteen")
    _, problems = ruleset(tmp_path, text)
    assert problems == [
        "rules.yaml:8:9: [thanks] duplicate variant name 'fifteen'",
    ]
    text = RULE.replace("      - coupon: {discount: 10%, expires_in: 30d}\n", "")
    _, problems = ruleset(tmp_path, text)
    assert problems == ["rules.yaml:10:9: [thanks] the variant changes the coupon, but the rule has no coupon action"]


def test_a_single_variant_is_refused(tmp_path):
    text = RULE.split("      - name: fifteen")[0]
    _, problems = ruleset(tmp_path, text)
    assert len(problems) == 1 and "variants" in problems[0] and "[thanks]" in problems[0]
