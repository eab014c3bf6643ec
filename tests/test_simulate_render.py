"""`simulate` renders every email it counts (a template that fails for some customers is reported,
not counted as sent) and reports each A/B variant on its own; `preview` renders a rule's email."""
import json
import re
from datetime import datetime, timedelta, timezone

import pytest
from click.testing import CliRunner

from plugin.cli import main
from plugin.engine import new_state
from plugin.mail import TemplateError
from plugin.mail.preview import preview
from plugin.rulefile import RULES_DIR, load_rules, read_templates

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=timezone.utc)
RULES = """rules:
  - id: thanks
    trigger: order.paid
    holdout: 0%
    actions:
      - coupon: {discount: 10%, expires_in: 30d, code_prefix: THANKS}
      - email: {template: thanks, subject: "Thank you"}
    variants:
      - name: ten
      - name: twenty
        coupon: {discount: 20%}
        email: {subject: "20% for you"}
"""


def order(n: int, first_name: str | None) -> dict:
    cid = str(7000 + n)
    customer = {"id": cid, "email": f"c{n}@example.com", "accepts_marketing": True}
    if first_name:
        customer["first_name"] = first_name
    return {"id": f"o{n}", "type": "order.paid", "shop": "s.myshopify.com", "customer_id": cid,
            "occurred_at": (T0 + timedelta(minutes=n)).isoformat(), "customer": customer,
            "order": {"id": str(9000 + n), "total": "40.00 USD"}}


@pytest.fixture
def folder(tmp_path):
    (tmp_path / "templates").mkdir()
    # lints clean (the sample customer has a first name) but fails for a customer without one
    (tmp_path / "templates" / "thanks.html").write_text("<p>Hi {{ customer.first_name.upper() }}</p>")
    (tmp_path / "templates" / "thanks.txt").write_text("Hi {{ customer.first_name }}")
    (tmp_path / "rules.yaml").write_text(RULES)
    history = tmp_path / "history.jsonl"
    history.write_text("".join(json.dumps(order(n, "Ana" if n % 4 else None)) + "\n" for n in range(40)))
    return tmp_path


def simulate(folder, *args):
    result = CliRunner().invoke(main, ["simulate", str(folder / "history.jsonl"), "--rules", str(folder), *args])
    assert result.exit_code == 0, result.output
    return result.output


def test_render_failures_are_counted_and_named(folder):
    report = json.loads(simulate(folder, "--format", "json"))
    thanks = report["rules"]["thanks"]
    assert thanks["emails"] == 40 and thanks["render_failures"] == 10
    failure, = report["render_failures"]
    assert failure["rule"] == "thanks" and failure["emails"] == 10 and failure["first_customer"] == "7000"
    assert "thanks.html, line 1" in failure["error"] and "upper" in failure["error"]
    table = simulate(folder)
    assert "emails that would fail to render (not sent):" in table
    assert "  thanks: 10 emails, e.g. to customer 7000: email template thanks.html, line 1:" in table


def test_each_variant_is_reported_on_its_own(folder):
    (folder / "templates" / "thanks.html").write_text("<p>Hi {{ customer.first_name or 'friend' }}</p>")
    report = json.loads(simulate(folder, "--format", "json"))
    thanks = report["rules"]["thanks"]
    variants = thanks["variants"]
    assert set(variants) == {"ten", "twenty"}
    assert sum(v["touches"] for v in variants.values()) == thanks["touches"] == 40
    assert variants["ten"]["average_percent"] == "10.0" and variants["twenty"]["average_percent"] == "20.0"
    assert all(v["render_failures"] == 0 for v in variants.values()) and report["render_failures"] == []
    table = simulate(folder)
    ten, twenty = variants["ten"]["touches"], variants["twenty"]["touches"]
    assert re.search(rf"^  variant ten +{ten} +{ten} +{ten} +{ten}  {ten} x ~10.0%$", table, re.M)
    assert re.search(rf"^  variant twenty +{twenty} +{twenty} +{twenty} +{twenty}  {twenty} x ~20.0%$", table, re.M)


def test_preview_renders_a_rule_for_a_sample_or_a_real_customer(folder):
    ruleset = load_rules(folder / "rules.yaml")
    templates = read_templates(folder / "templates")
    rule = ruleset.by_id["thanks"]
    sample = preview(rule, templates=templates)
    assert (sample.subject, sample.html, sample.text) == ("Thank you", "<p>Hi ANA</p>", "Hi Ana")
    state = new_state("s.myshopify.com", "7001")
    assert preview(rule, {"first_name": "דנה", "locale": "he"}, templates, variant="twenty").subject == "20% for you"
    with pytest.raises(TemplateError, match="upper"):
        preview(rule, state, templates)  # a customer without a first name
    with pytest.raises(LookupError, match="no variant 'thirty'"):
        preview(rule, variant="thirty", templates=templates)


def test_preview_of_shipped_rules_with_the_shipped_templates():
    ruleset = load_rules(RULES_DIR)
    birthday = preview(ruleset.by_id["occasion_reminder"])
    assert "Birthday" in birthday.subject or "birthday" in birthday.text
    with pytest.raises(LookupError, match="sends no email"):
        preview(ruleset.by_id["vip_gold_tier"])
