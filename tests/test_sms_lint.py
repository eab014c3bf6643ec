"""`rules lint` on text messages: a missing SMS template with a did-you-mean, unknown variables at
their file, line and column, the length in segments (a warning above 3 with the count and the
price, a problem above 10), a message whose channel says nothing, and a text before its coupon."""
from __future__ import annotations

from plugin.rulefile import lint

RULES = """\
settings:
  sms:
    price_per_segment: 0.05 ILS
rules:
  - id: thanks_sms
    name: Thanks by text
    trigger: order.paid
    holdout: 0%
    actions:
      - coupon: {discount: 15%, expires_in: 30d}
      - sms: {template: %(template)s}
"""
HEBREW = ("שלום {{ customer.first_name }}! תודה על ההזמנה. קוד ההנחה שלך: {{ coupon.code }} ({{ coupon.discount }}), "
          "בתוקף עד {{ coupon.expires_at }}.\nלהסרה השיבו STOP\n")


def run(tmp_path, text: str, templates: dict[str, str], template: str = "thanks"):
    (tmp_path / "templates").mkdir(exist_ok=True)
    for name, body in templates.items():
        (tmp_path / "templates" / name).write_text(body, encoding="utf-8")
    (tmp_path / "rules.yaml").write_text(text.replace("%(template)s", template), encoding="utf-8")
    ruleset, problems = result = lint([tmp_path / "rules.yaml"])
    return ruleset, [str(p).replace(str(tmp_path) + "/", "") for p in problems], \
        [str(w).replace(str(tmp_path) + "/", "") for w in result.warnings]


def test_a_hebrew_text_of_two_segments_lints_clean(tmp_path):
    ruleset, problems, warnings = run(tmp_path, RULES, {"thanks.sms.txt": HEBREW})
    assert problems == [] and warnings == [] and ruleset is not None


def test_a_missing_template_is_named_with_the_folder_and_a_suggestion(tmp_path):
    _, problems, _ = run(tmp_path, RULES, {"thanks.sms.txt": HEBREW}, template="thank")
    assert problems == ["rules.yaml:11:15: [thanks_sms] SMS template 'thank' not found (did you mean 'thanks'?) "
                        f"(templates are {tmp_path}/templates/NAME.sms.txt for texts)".replace(str(tmp_path) + "/", "")]


def test_an_unknown_variable_is_a_problem_at_its_place(tmp_path):
    _, problems, _ = run(tmp_path, RULES, {"thanks.sms.txt": "Hi {{ customer.frist_name }}, {{ coupon.code }}"})
    assert len(problems) == 1 and problems[0].startswith("templates/thanks.sms.txt:1:16: [thanks_sms] unknown variable "
                                                         "'customer.frist_name' (did you mean 'customer.first_name'?)")


def test_long_texts_warn_with_their_segments_and_price_and_very_long_ones_are_refused(tmp_path):
    _, problems, warnings = run(tmp_path, RULES, {"thanks.sms.txt": "תודה רבה! " * 25 + "{{ coupon.code }}"})
    assert problems == []
    assert warnings == ["rules.yaml:11:15: [thanks_sms] warning: thanks.sms.txt is 4 SMS segments for a sample customer "
                        "(266 UCS-2 units, 70 fit in one), 0.20 ILS per text"]
    _, problems, _ = run(tmp_path, RULES, {"thanks.sms.txt": "x" * 1600})
    assert problems == ["rules.yaml:11:15: [thanks_sms] thanks.sms.txt is 11 SMS segments for a sample customer "
                        "(1600 GSM-7 units, 160 fit in one); at most 10: shorten it"]


def test_a_text_before_its_coupon_and_a_message_without_its_part(tmp_path):
    def with_actions(actions: str) -> str:
        return RULES.replace("      - coupon: {discount: 15%, expires_in: 30d}\n      - sms: {template: %(template)s}\n", actions)

    _, problems, _ = run(tmp_path, with_actions("      - message: {channel: preferred, sms: {template: thanks}}\n"
                                                "      - coupon: {discount: 15%, expires_in: 30d}\n"), {"thanks.sms.txt": HEBREW})
    assert problems == ["rules.yaml:9:5: [thanks_sms] the message comes before the coupon it should show; "
                        "list the coupon first"]
    _, problems, _ = run(tmp_path, with_actions("      - coupon: {discount: 15%, expires_in: 30d}\n"
                                                "      - message: {channel: [sms, email], sms: {template: thanks}}\n"),
                         {"thanks.sms.txt": HEBREW})
    assert problems == ["rules.yaml:11:19: [thanks_sms] the message names email but says nothing to send there: "
                        "add email:"]
