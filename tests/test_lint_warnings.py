"""Warnings for legal but unwise rules: shown by `rules lint` (exit 0) and returned by the lint
function (``.warnings``) for the dashboard's editor; they never reject a rule set."""
import pytest
from click.testing import CliRunner

from plugin.cli import main
from plugin.rulefile import RULES_DIR, lint, lint_sources, read_templates

TEMPLATES = RULES_DIR / "templates"
NO_HOLDOUT = ("warning: a marketing rule without a holdout: nobody can tell what it earns. Add holdout: 10% "
              "(or write holdout: 0% to reach everyone on purpose)")


def rule(when="", coupon="{discount: 10%, expires_in: 30d}", holdout="    holdout: 10%\n", extra=""):
    return ("rules:\n  - id: thanks\n    trigger: order.paid\n" + when + holdout +
            f"    actions:\n      - coupon: {coupon}\n" + extra)


CASES = [
    ("a coupon that never expires", rule(coupon="{discount: 10%}"),
     ["rules.yaml:6:9: [thanks] warning: this coupon never expires: add expires_in (e.g. 30d), or a code sent once "
      "stays good for ever and a deadline is what brings customers back"]),
    ("a discount over 50%", rule(coupon="{discount: 60%, expires_in: 30d}"),
     ["rules.yaml:6:18: [thanks] warning: a 60% discount is over half the price: check it is not a typo"]),
    ("a variant's discount over 50%",
     rule(extra="    variants:\n      - name: a\n      - name: b\n        coupon: {discount: 75%}\n"),
     ["rules.yaml:10:18: [thanks] warning: variant 'b': a 75% discount is over half the price: check it is not a typo"]),
    ("a marketing rule without holdout", rule(holdout=""), [f"rules.yaml:2:5: [thanks] {NO_HOLDOUT}"]),
    ("first order and not first",
     rule(when="    when:\n      all:\n        - customer.orders_count: {equals: 1}\n        - order.is_first: {equals: false}\n"),
     ["rules.yaml:4:5: [thanks] warning: this rule can never fire: order.is_first: {equals: false} and "
      "customer.orders_count: {equals: 1} cannot both hold"]),
    ("first order with two orders",
     rule(when="    when:\n      all:\n        - order.is_first: {equals: true}\n"
               "        - customer.orders_count: {at_least: 2}\n"),
     ["rules.yaml:4:5: [thanks] warning: this rule can never fire: customer.orders_count: {at_least: 2} and "
      "order.is_first: {equals: true} cannot both hold"]),
    ("an empty range", rule(when="    when:\n      order.total: {at_least: 100, less_than: 50}\n"),
     ["rules.yaml:4:5: [thanks] warning: this rule can never fire: order.total: {at_least: 100} and "
      "order.total: {less_than: 50} cannot both hold"]),
    ("the same flag both ways",
     rule(when="    when:\n      all:\n        - order.cancelled: {equals: true}\n"
               "        - all: [{order.cancelled: {equals: false}}]\n"),
     ["rules.yaml:4:5: [thanks] warning: this rule can never fire: order.cancelled: {equals: true} and "
      "order.cancelled: {equals: false} cannot both hold"]),
    ("missing and compared", rule(when="    when:\n      all:\n        - customer.tier: {exists: false}\n"
                                       "        - customer.tier: {equals: gold}\n"), []),
    ("either is fine", rule(when="    when:\n      any:\n        - order.is_first: {equals: true}\n"
                                 "        - customer.orders_count: {at_least: 2}\n"), []),
    ("a range that holds", rule(when="    when:\n      order.total: {between: [50, 100], at_least: 100}\n"), []),
]


@pytest.mark.parametrize("text, expected", [pytest.param(t, e, id=n) for n, t, e in CASES])
def test_warning(tmp_path, text, expected):
    path = tmp_path / "rules.yaml"
    path.write_text(text)
    result = lint([path], TEMPLATES)
    assert result.problems == [] and result.ruleset is not None  # still a valid rule set
    assert [str(w).replace(str(path), "rules.yaml") for w in result.warnings] == expected
    assert all(w.warning for w in result.warnings)


def test_the_lint_function_still_unpacks_as_ruleset_and_problems():
    sources = [("rules.yaml", rule(coupon="{discount: 10%}").encode())]
    ruleset, problems = result = lint_sources(sources, read_templates(TEMPLATES))
    assert ruleset is not None and problems == []
    assert [w.rule_id for w in result.warnings] == ["thanks"]


def test_holdout_zero_on_purpose_is_no_warning(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text(rule(holdout="    holdout: 0%\n"))
    assert lint([path], TEMPLATES).warnings == []


def test_the_cli_shows_warnings_and_exits_0(tmp_path):
    (tmp_path / "rules.yaml").write_text(rule(coupon="{discount: 90%}", holdout=""))
    result = CliRunner().invoke(main, ["rules", "lint", str(tmp_path / "rules.yaml"), "--templates", str(TEMPLATES)])
    assert result.exit_code == 0, result.output
    assert result.output.count("warning:") == 3
    assert "a 90% discount is over half the price" in result.output


def test_shipped_packs_have_no_warnings():
    assert lint(sorted(RULES_DIR.glob("*.yaml"))).warnings == []
