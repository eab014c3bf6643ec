"""Rule files are linted like code: every problem as ``file:line:col: [rule-id] message``."""
import time

import pytest
from click.testing import CliRunner

from plugin.cli import main
from plugin.errors import RuleError
from plugin.rulefile import MAX_BYTES, RULES_DIR, lint, load_rules, rule_files

TEMPLATES = RULES_DIR / "templates"
SHIPPED = {"icebreaker", "cross_sell_brewing", "referral_invite", "referral_qualified", "referral_reward", "winback",
           "welcome", "welcome_on_opt_in", "birthday", "anniversary", "vip_gold_tier", "vip_gold_welcome",
           "vip_silver_tier", "occasion_reminder", "first_order_anniversary"}


def lint_text(tmp_path, text, name="rules.yaml", templates=TEMPLATES):
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    ruleset, problems = lint([path], templates)
    return ruleset, [str(p).replace(str(path), name).replace(str(templates), "TEMPLATES") for p in problems]


def test_shipped_rules_lint_clean():
    ruleset, problems = lint(rule_files([RULES_DIR]))
    assert problems == []
    assert {r.id for r in ruleset.rules} == SHIPPED
    assert ruleset.version


def test_load_rules_returns_the_shipped_rule_set():
    assert {r.id for r in load_rules().rules} == SHIPPED


def rule_file(**fields):
    """A one-rule file; ``fields`` are raw YAML lines after the id (in order)."""
    lines = ["rules:", "  - id: thanks"] + [f"    {k}: {v}" for k, v in fields.items()]
    return "\n".join(lines) + "\n"


TAG = "[{tag: buyer}]"

CASES = [
    # YAML syntax, in a marketer's words, at the line to fix
    ("yaml: bad indentation", "rules:\n  - id: thanks\n    trigger: order.paid\n   actions: [}\n",
     ["rules.yaml:4:4: [-] this line's indentation does not line up with the lines above: indent it like the other "
      "keys at its level"]),
    ("yaml: indented too far", "rules:\n  - id: thanks\n    trigger: order.paid\n      delay: 3d\n",
     ["rules.yaml:4:12: [-] this line is indented more than the line above: line its key up with the keys above it"]),
    ("yaml: a list item among keys", "rules:\n  - id: thanks\n    - trigger: x\n",
     ["rules.yaml:3:5: [-] a list item (-) where a key was expected: check this line's indentation"]),
    ("yaml: unclosed list", "rules:\n  - id: thanks\n    trigger: [order.paid\n",
     ["rules.yaml:3:14: [-] the [ opened here is never closed: add ] at the end of the value, or put the text in "
      "quotes if the [ is part of it"]),
    ("yaml: unclosed mapping", "rules:\n  - id: thanks\n    trigger: {lapsed: 3d\n    x: 1\n",
     ["rules.yaml:3:14: [-] the { opened here is never closed: add } at the end of the value, or put the text in "
      "quotes if the { is part of it"]),
    ("yaml: tab", "rules:\n\t- id: thanks\n",
     ["rules.yaml:2:1: [-] a tab is not allowed in YAML's indentation or between a key and its value: use spaces"]),
    ("yaml: unquoted colon", "rules:\n  - id: thanks\n    name: Sale: 20% off\n    trigger: order.paid\n",
     ['rules.yaml:3:15: [-] this text contains a colon: put the whole value in quotes, e.g. subject: "Sale: 20% off"']),
    ("yaml: unquoted colon in braces",
     "rules:\n  - id: thanks\n    trigger: order.paid\n    actions:\n      - email: {template: a, subject: Hi: you}\n",
     ['rules.yaml:5:41: [-] this text contains a colon: put the whole value in quotes, e.g. subject: "Sale: 20% off"']),
    ("yaml: unquoted template", "rules:\n  - id: thanks\n    subject: {{ customer.first_name }}, hi\n",
     ['rules.yaml:3:14: [-] a value starting with {{ must be in quotes: write "..." around the whole text']),
    ("yaml: unquoted template alone", "rules:\n  - id: thanks\n    subject: {{ customer.first_name }}\n",
     ['rules.yaml:3:14: [-] a value starting with {{ must be in quotes: write "..." around the whole text']),
    ("yaml: unclosed quote", 'rules:\n  - id: thanks\n    name: "Hello\n    x: 1\n',
     ['rules.yaml:3:11: [-] the " opened here is never closed: end the text with "']),
    ("yaml: apostrophe in single quotes", "rules:\n  - id: thanks\n    name: 'it's here'\n",
     ['rules.yaml:3:15: [-] a quote inside the value ends it early: put the whole value in double quotes, '
      'e.g. name: "it\'s here"']),
    ("yaml: a value starting with @", "rules:\n  - id: thanks\n    name: @home\n",
     ['rules.yaml:3:11: [-] a value cannot start with @: put the whole value in quotes, e.g. "@home"']),
    ("yaml: undefined alias", "rules:\n  - id: *x\n",
     ["rules.yaml:2:9: [-] * starts a reference to an &anchor that is not defined: put the value in quotes if * is "
      "part of it"]),
    ("yaml: duplicate key", rule_file(trigger="order.paid", actions=TAG) + "    trigger: order.created\n",
     ["rules.yaml:5:5: [-] duplicate key 'trigger'"]),
    ("not a mapping", "- id: thanks\n- id: other\n",
     ["rules.yaml:1:1: [-] a rule file is a mapping with 'rules:' (and optionally 'settings:')"]),
    # schema
    ("missing actions", rule_file(trigger="order.paid"), ["rules.yaml:2:5: [thanks] missing required field 'actions'"]),
    ("bad rule id", "rules:\n  - id: Thanks-1\n    trigger: order.paid\n    actions: [{tag: a}]\n",
     ["rules.yaml:2:5: [Thanks-1] 'Thanks-1' is not valid here: Unique id: lower case letters, digits and underscores."]),
    ("unknown rule field", rule_file(trigger="order.paid", dealy="3d", actions=TAG),
     ["rules.yaml:4:5: [thanks] unknown field 'dealy' (did you mean 'delay'?); allowed: id, name, description, enabled, "
      "trigger, when, delay, window, priority, holdout, limit, actions, variants, survey"]),
    ("unknown top-level field", "rule:\n  - id: thanks\n",
     ["rules.yaml:1:1: [-] unknown field 'rule' (did you mean 'rules'?); allowed: settings, rules"]),
    ("unknown action", rule_file(trigger="order.paid", actions="\n      - emial: {template: icebreaker, subject: Hi}"),
     ["rules.yaml:5:9: [thanks] unknown action 'emial' (did you mean 'email'?); allowed: coupon, email, sms, message, tag, tier, signal"]),
    ("unknown operator", rule_file(trigger="order.paid", when="\n      customer.orders_count: {at_leest: 2}", actions=TAG),
     ["rules.yaml:5:31: [thanks] unknown operator 'at_leest' (did you mean 'at_least'?); allowed: equals, not_equals, "
      "greater_than, at_least, less_than, at_most, between, in, not_in, contains, not_contains, contains_any, exists"]),
    ("bad trigger shape", rule_file(trigger="{lapsed: 90d, occasion: birthday}", actions=TAG),
     ["rules.yaml:3:5: [thanks] bad trigger {'lapsed': '90d', 'occasion': 'birthday'}: write an event (e.g. order.paid), "
      "{lapsed: 90d}, or {occasion: birthday, before: 7d}"]),
    ("not a field name", rule_file(trigger="order.paid", when="\n      orders_count: {at_least: 2}", actions=TAG),
     ["rules.yaml:4:5: [thanks] 'orders_count' is not valid here: must match ^(all|any|not|[a-z_]+\\.[a-z_]+|event\\.data(\\.[A-Za-z0-9_-]+)+)$"]),
    ("two tests in one condition",
     rule_file(trigger="order.paid", when="\n      customer.orders_count: {at_least: 2}\n      order.total: {at_least: 50 USD}",
               actions=TAG),
     ["rules.yaml:4:5: [thanks] expected exactly one key here, got customer.orders_count, order.total"]),
    ("duration as words", rule_file(trigger="order.paid", delay="2 weeks", actions=TAG),
     ["rules.yaml:4:5: [thanks] '2 weeks' is not valid here: A duration: a whole number and a unit (s, m, h, d, w), e.g. '30d'."]),
    ("settings: cap", "settings:\n  frequency_cap: {touches: 0, per: 7 days, when_capped: delay}\n",
     ["rules.yaml:2:19: [-] 0 is less than the minimum of 1",
      "rules.yaml:2:31: [-] '7 days' is not valid here: A duration: a whole number and a unit (s, m, h, d, w), e.g. '30d'.",
      "rules.yaml:2:44: [-] 'delay' is not one of skip, defer"]),
    ("settings: cap window over a year", "settings:\n  frequency_cap: {touches: 2, per: 400d}\n",
     ["rules.yaml:2:31: [-] per can be at most 366d (touches are remembered for a year)"]),
    # semantic checks
    ("unknown trigger event", rule_file(trigger="order.payed", actions=TAG),
     ["rules.yaml:3:5: [thanks] unknown trigger event 'order.payed' (did you mean 'order.paid'?)"]),
    ("trigger by meaning", rule_file(trigger="customer.signup", actions=TAG),
     ["rules.yaml:3:5: [thanks] unknown trigger event 'customer.signup' (did you mean 'customer.created'?)"]),
    ("trigger by meaning, another word", rule_file(trigger="order.placed", actions=TAG),
     ["rules.yaml:3:5: [thanks] unknown trigger event 'order.placed' (did you mean 'order.created'?)"]),
    ("a purchase", rule_file(trigger="purchase", actions=TAG),
     ["rules.yaml:3:5: [thanks] unknown trigger event 'purchase' (did you mean 'order.paid'?)"]),
    ("a yearly date as an event", rule_file(trigger="customer.birthday", actions=TAG),
     ["rules.yaml:3:5: [thanks] unknown trigger event 'customer.birthday' (a yearly date is an occasion trigger: "
      "trigger: {occasion: birthday, before: 7d})"]),
    ("no trigger like it", rule_file(trigger="foo.bar", actions=TAG),
     ["rules.yaml:3:5: [thanks] unknown trigger event 'foo.bar'; trigger events are customer.created, "
      "customer.updated, customer.consent_changed, order.created, order.paid, order.refunded, order.cancelled, "
      "occasion.captured, customer.preference_changed, survey.answered, page.opened, referral.converted"]),
    ("unknown occasion", rule_file(trigger="{occasion: birthdya}", actions=TAG),
     ["rules.yaml:3:15: [thanks] unknown occasion 'birthdya' (did you mean 'birthday'?)"]),
    ("field that does not exist", rule_file(trigger="order.paid", when="\n      customer.order_count: {at_least: 2}", actions=TAG),
     ["rules.yaml:5:7: [thanks] unknown field 'customer.order_count' (did you mean 'customer.orders_count'?)"]),
    ("nested field that does not exist",
     rule_file(trigger="order.paid",
               when="\n      all:\n        - customer.orders_count: {at_least: 2}\n        - order.totl: {at_least: 50 USD}",
               actions=TAG),
     ["rules.yaml:7:11: [thanks] unknown field 'order.totl' (did you mean 'order.total'?)"]),
    ("operator on a list field", rule_file(trigger="order.paid", when="\n      customer.tags: {equals: vip}", actions=TAG),
     ["rules.yaml:5:23: [thanks] operator 'equals' does not apply to customer.tags, which is a list field (use contains)"]),
    ("operator on a date field", rule_file(trigger="order.paid", when="\n      customer.birthday: {at_least: 2000-01-01}",
                                           actions=TAG),
     ["rules.yaml:5:27: [thanks] operator 'at_least' does not apply to customer.birthday, which is a date field "
      "(a date field only supports exists; compare customer.since_first_order or customer.since_last_order instead)"]),
    ("bad amount", rule_file(trigger="order.paid", when="\n      order.total: {at_least: fifty dollars}", actions=TAG),
     ["rules.yaml:5:21: [thanks] bad amount 'fifty dollars': write a number (in the shop's currency), e.g. 50 or 49.90"]),
    ("bad duration in a condition",
     rule_file(trigger="order.paid", when="\n      customer.since_last_order: {at_least: 3 months}", actions=TAG),
     ["rules.yaml:5:35: [thanks] bad duration '3 months': write a whole number and a unit, e.g. '30d', '12h', '2w', '90m'"]),
    ("between upside down", rule_file(trigger="order.paid", when='\n      order.total: {between: ["100 USD", "50 USD"]}',
                                      actions=TAG),
     ["rules.yaml:5:21: [thanks] between: the lower bound 100 USD is above the upper bound 50 USD"]),
    ("empty in list", rule_file(trigger="order.paid", when="\n      customer.tier: {in: []}", actions=TAG),
     ["rules.yaml:5:23: [thanks] in takes a non-empty list, e.g. ['gold']"]),
    ("zero delay", rule_file(trigger="order.paid", delay="0d", actions=TAG),
     ["rules.yaml:4:5: [thanks] delay must be longer than zero"]),
    ("delay on a lapse", rule_file(trigger="{lapsed: 90d}", delay="1d", actions=TAG),
     ["rules.yaml:4:5: [thanks] delay only applies to event triggers; a lapsed trigger already fires at its own time"]),
    ("bad discount", rule_file(trigger="order.paid", actions="\n      - coupon: {discount: 15 percent}"),
     ["rules.yaml:5:18: [thanks] bad discount '15 percent': write a percentage ('15%') or an amount in the shop's currency (5)"]),
    ("discount over 100%", rule_file(trigger="order.paid", actions="\n      - coupon: {discount: 150%}"),
     ["rules.yaml:5:18: [thanks] percentage '150%' must be above 0% and at most 100%"]),
    ("bad minimum subtotal", rule_file(trigger="order.paid", actions="\n      - coupon: {discount: 10%, minimum_subtotal: thirty}"),
     ["rules.yaml:5:33: [thanks] minimum_subtotal: bad amount 'thirty': write a number (in the shop's currency), "
      "e.g. 50 or 49.90"]),
    ("holdout of everyone", rule_file(trigger="order.paid", holdout="100%", actions="\n      - coupon: {discount: 10%}"),
     ["rules.yaml:4:5: [thanks] holdout '100%' must be at least 0% and below 100%"]),
    ("holdout without marketing", rule_file(trigger="order.paid", holdout="10%", actions=TAG),
     ["rules.yaml:4:5: [thanks] holdout only applies to rules with a coupon or email action"]),
    ("missing template", rule_file(trigger="order.paid", actions="\n      - email: {template: icebreakr, subject: Hi}"),
     ["rules.yaml:5:17: [thanks] email template 'icebreakr' not found (did you mean 'icebreaker'?) "
      "(templates are TEMPLATES/NAME.html and NAME.txt)"]),
    ("email before its coupon",
     rule_file(trigger="order.paid", actions="\n      - email: {template: icebreaker, subject: Hi}\n      - coupon: {discount: 10%}"),
     ["rules.yaml:4:5: [thanks] the email comes before the coupon it should show; list the coupon first"]),
    ("signal with marketing",
     rule_file(trigger="order.paid",
               actions="\n      - signal: {event: referral.converted, to: referrer}\n      - email: {template: icebreaker, subject: Hi}"),
     ["rules.yaml:4:5: [thanks] a signal rule only passes the event on; put coupons and emails in the rule that receives it"]),
    ("several problems, in line order",
     "rules:\n  - id: first\n    trigger: order.payed\n    actions: [{tag: a}]\n"
     "  - id: second\n    trigger: order.paid\n    delay: 0d\n    actions: [{tag: b}]\n",
     ["rules.yaml:3:5: [first] unknown trigger event 'order.payed' (did you mean 'order.paid'?)",
      "rules.yaml:7:5: [second] delay must be longer than zero"]),
    # unsafe or oversized input
    ("python object tag", rule_file(trigger="!!python/object:plugin.events.Money {amount: 1, currency: USD}", actions=TAG),
     ["rules.yaml:3:14: [-] custom YAML tag 'tag:yaml.org,2002:python/object:plugin.events.Money' is not allowed in rule files"]),
    ("python apply tag", rule_file(trigger="!!python/object/apply:os.system [echo hi]", actions=TAG),
     ["rules.yaml:3:14: [-] custom YAML tag 'tag:yaml.org,2002:python/object/apply:os.system' is not allowed in rule files"]),
    ("local tag", "rules: !rules\n  - id: thanks\n",
     ["rules.yaml:1:8: [-] custom YAML tag '!rules' is not allowed in rule files"]),
    ("not UTF-8", b"rules: []\n# caf\xe9\n", ["rules.yaml:1:1: [-] not UTF-8 text: invalid continuation byte at byte 15"]),
]


@pytest.mark.parametrize("text, expected", [pytest.param(t, e, id=n) for n, t, e in CASES])
def test_problem(tmp_path, text, expected):
    ruleset, problems = lint_text(tmp_path, text)
    assert problems == expected
    assert ruleset is None


def test_alias_bomb_is_refused_quickly(tmp_path):
    levels = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for n in range(1, 9):
        levels.append(f"a{n}: &a{n} [" + ", ".join([f"*a{n - 1}"] * 10) + "]")
    started = time.monotonic()
    ruleset, problems = lint_text(tmp_path, "\n".join(levels) + "\nrules: []\n")
    assert time.monotonic() - started < 5
    assert problems == ["rules.yaml:1:34: [-] too many YAML nodes (over 20000): alias expansion is limited"]


def test_oversize_file_is_refused(tmp_path):
    text = "rules: []\n" + "# padding\n" * (MAX_BYTES // 10)
    ruleset, problems = lint_text(tmp_path, text)
    assert problems == [f"rules.yaml:1:1: [-] file is {len(text)} bytes; rule files are limited to {MAX_BYTES}"]


def test_merge_keys_are_refused(tmp_path):
    text = "defaults: &d {tag: buyer}\nrules:\n  - id: thanks\n    trigger: order.paid\n    actions:\n      - <<: *d\n"
    ruleset, problems = lint_text(tmp_path, text)
    assert problems == ["rules.yaml:6:9: [-] YAML merge keys (<<) are not supported in rule files; repeat the fields"]


def test_a_subject_with_a_template_syntax_error_is_reported(tmp_path):
    text = rule_file(trigger="order.paid", actions="\n      - email:\n          template: icebreaker\n"
                                                   "          subject: \"{{ customer.first_name\"")
    path = tmp_path / "rules.yaml"
    path.write_text(text)
    _, problems = lint([path], TEMPLATES)
    assert [(p.line, p.col, p.rule_id) for p in problems] == [(7, 11, "thanks")]
    assert "subject" in problems[0].message


def test_duplicate_rule_ids_across_files(tmp_path):
    a = tmp_path / "a.yaml"
    b = tmp_path / "b.yaml"
    a.write_text(rule_file(trigger="order.paid", actions=TAG))
    b.write_text("rules:\n  - id: other\n    trigger: order.paid\n    actions: [{tag: b}]\n"
                 "  - id: thanks\n    trigger: order.created\n    actions: [{tag: c}]\n")
    ruleset, problems = lint([a, b], TEMPLATES)
    assert [str(p) for p in problems] == [f"{b}:5:5: [thanks] duplicate rule id 'thanks' (first defined in {a})"]
    assert ruleset is None


def test_settings_defined_twice(tmp_path):
    a = tmp_path / "a.yaml"
    b = tmp_path / "b.yaml"
    a.write_text("settings:\n  referral_prefix: REF\n")
    b.write_text("settings:\n  frequency_cap: {touches: 2, per: 7d}\n")
    ruleset, problems = lint([a, b], TEMPLATES)
    assert [str(p) for p in problems] == [
        f"{b}:1:1: [-] settings are defined more than once in this rule set; keep one settings block"]


def test_template_syntax_errors_are_reported(tmp_path):
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "thanks.html").write_text("<p>{% if customer.first_name %}Hi{{ customer.first_name }}</p>\n")
    (templates / "thanks.txt").write_text("Hi\n")
    _, problems = lint_text(tmp_path, rule_file(trigger="order.paid", actions="\n      - email: {template: thanks, subject: Hi}"),
                            templates=templates)
    assert problems == ["TEMPLATES/thanks.html:1:1: [-] template syntax error: Unexpected end of template. "
                        "Jinja was looking for the following tags: 'elif' or 'else' or 'endif'. "
                        "The innermost block that needs to be closed is 'if'."]


def test_a_template_needs_both_html_and_text(tmp_path):
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "thanks.html").write_text("<p>Hi</p>\n")
    _, problems = lint_text(tmp_path, rule_file(trigger="order.paid", actions="\n      - email: {template: thanks, subject: Hi}"),
                            templates=templates)
    assert problems == ["rules.yaml:5:17: [thanks] email template 'thanks' not found "
                        "(templates are TEMPLATES/NAME.html and NAME.txt)"]


def test_an_empty_file_is_an_empty_rule_set(tmp_path):
    ruleset, problems = lint_text(tmp_path, "# nothing yet\n")
    assert problems == [] and ruleset.rules == ()


def test_load_rules_raises_with_every_problem(tmp_path):
    (tmp_path / "a.yaml").write_text(rule_file(trigger="order.payed", actions=TAG))
    (tmp_path / "b.yaml").write_text("rules:\n  - id: thanks\n    trigger: order.paid\n    actions: [{tag: b}]\n")
    (tmp_path / "notes.txt").write_text("not a rule file")
    with pytest.raises(RuleError) as exc:
        load_rules(tmp_path, TEMPLATES)
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    expected = [f"{a}:3:5: [thanks] unknown trigger event 'order.payed' (did you mean 'order.paid'?)",
                f"{b}:2:5: [thanks] duplicate rule id 'thanks' (first defined in {a})"]
    assert [str(p) for p in exc.value.problems] == expected
    assert str(exc.value) == "\n".join(expected)


def test_cli_lint(tmp_path):
    runner = CliRunner()
    ok = runner.invoke(main, ["rules", "lint", str(RULES_DIR)])
    assert (ok.exit_code, ok.output) == (0, "")
    bad = tmp_path / "rules.yaml"
    bad.write_text(rule_file(trigger="order.payed", actions=TAG))
    result = runner.invoke(main, ["rules", "lint", str(bad), "--templates", str(TEMPLATES)])
    assert result.exit_code == 1
    assert result.output == f"{bad}:3:5: [thanks] unknown trigger event 'order.payed' (did you mean 'order.paid'?)\n"


def test_the_missing_template_hint_names_the_folder_linted(tmp_path):
    folder = tmp_path / "my_templates"
    folder.mkdir()
    result = CliRunner().invoke(main, ["rules", "lint", str(write(tmp_path, rule_file(
        trigger="order.paid", actions="\n      - email: {template: thanks, subject: Hi}"))), "--templates", str(folder)])
    assert result.exit_code == 1
    assert f"email template 'thanks' not found (templates are {folder}/NAME.html and NAME.txt)" in result.output


def write(tmp_path, text):
    path = tmp_path / "rules.yaml"
    path.write_text(text)
    return path
