"""`keepwell simulate` on a rule set that texts: each text rendered for its customer as it would be
sent, its segments and their cost at the shop's price shown per rule (table and JSON), the
message's channel choice made as live (the customer who prefers texts gets one, the other an
email), and a text whose template fails counted as a render failure, not as sent."""
from __future__ import annotations

import json

from click.testing import CliRunner

from plugin.cli import main

RULES = """\
settings:
  sms: {region: IL, price_per_segment: 0.05 ILS}
rules:
  - id: thanks
    trigger: order.paid
    holdout: 0%
    actions:
      - coupon: {discount: 15%, expires_in: 30d}
      - message:
          channel: preferred
          sms: {template: thanks}
          email: {template: thanks, subject: "Thanks {{ customer.first_name }}"}
"""
TEXT = "שלום {{ customer.first_name }}! קוד ההנחה שלך: {{ coupon.code }} ({{ coupon.discount }}), בתוקף עד {{ coupon.expires_at }}."


def history() -> str:
    lines = [
        {"id": "c1", "type": "customer.created", "shop": "s", "customer_id": "1", "occurred_at": "2026-12-10T10:00:00Z",
         "customer": {"id": "1", "first_name": "דנה", "email": "d@example.co.il", "accepts_marketing": True,
                      "phone": "052-555-1234", "sms_consent": True}},
        {"id": "c2", "type": "customer.created", "shop": "s", "customer_id": "2", "occurred_at": "2026-12-10T10:00:00Z",
         "customer": {"id": "2", "first_name": "Eli", "email": "e@example.co.il", "accepts_marketing": True}},
        {"id": "p1", "type": "customer.preference_changed", "shop": "s", "customer_id": "1",
         "occurred_at": "2026-12-10T10:01:00Z", "data": {"preferred_channel": "sms"}},
    ]
    for cid in ("1", "2"):
        for n in range(3):
            at = f"2026-12-1{n + 1}T10:00:00Z"
            lines.append({"id": f"o{cid}{n}", "type": "order.paid", "shop": "s", "customer_id": cid, "occurred_at": at,
                          "order": {"id": f"{cid}{n}", "total": "100.00 ILS", "created_at": at, "line_items": []}})
    return "\n".join(json.dumps(line, ensure_ascii=False) for line in lines) + "\n"


def simulate(tmp_path, text: str, fmt: str = "table"):
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "thanks.sms.txt").write_text(text, encoding="utf-8")
    (tmp_path / "templates" / "thanks.html").write_text("<p>{{ coupon.code }}</p>", encoding="utf-8")
    (tmp_path / "templates" / "thanks.txt").write_text("{{ coupon.code }}", encoding="utf-8")
    (tmp_path / "rules.yaml").write_text(RULES, encoding="utf-8")
    (tmp_path / "history.jsonl").write_text(history(), encoding="utf-8")
    result = CliRunner().invoke(main, ["simulate", str(tmp_path / "history.jsonl"), "--rules", str(tmp_path / "rules.yaml"),
                                       "--format", fmt])
    assert result.exit_code == 0, result.output
    return result.output


def test_segments_and_cost_per_rule(tmp_path):
    out = simulate(tmp_path, TEXT)
    assert "  by SMS                                3 texts, 6 segments, 0.30 ILS" in out.splitlines()
    rule = next(line for line in out.splitlines() if line.startswith("thanks "))
    assert rule.split()[1:6] == ["6", "6", "2", "6", "3"]  # triggered, touches, reached, coupons, emails


def test_json_and_a_text_that_fails_to_render(tmp_path):
    d = json.loads(simulate(tmp_path, "{{ customer.last_name.upper() }}", "json"))  # nobody here has one
    r = d["rules"]["thanks"]
    assert (r["texts"], r["segments"], r["sms_cost"], r["render_failures"], d["sms_currency"]) == (3, 0, "0", 3, "ILS")
    (failure,) = d["render_failures"]
    assert "thanks.sms.txt" in failure["error"] and failure["first_customer"] == "1"
