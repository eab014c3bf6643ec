"""The shop's currency as data: amounts written without a currency mean the shop's, amounts in
two currencies are never compared, the shipped packs name no currency, lint warns about a rule
that names another currency, and Shopify orders are read in ``shop_money``."""
from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner

from connectors.base import Shop
from connectors.shopify.payloads import _order_events, refund_amount
from plugin.cli import main as cli
from plugin.engine.ruleset import with_currency
from plugin.events import Money
from plugin.rulefile import RULES_DIR, currency_warnings, rule_files
from engine_helpers import Shell, action, customer_created, day, order_paid, rules_from, shipped_rules

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "shopify"
GOLD_AT_500 = {"id": "gold", "trigger": "order.paid", "when": {"customer.total_spent": {"at_least": 500}},
               "actions": [{"tag": "gold"}]}


def _fired(rules, currency: str, total: str) -> bool:
    shell = Shell(rules)
    shell.handle(customer_created("3001", day(0), first_name="נועה"))
    return any(d.kind == "touch" and d.rule_id == "gold"
               for d in shell.handle(order_paid("3001", "9001", day(1), total=f"{total} {currency}", currency=currency)))


@pytest.mark.parametrize("currency", ["USD", "EUR", "ILS"])
def test_an_amount_without_a_currency_means_the_shops(currency):
    rules = with_currency(rules_from([GOLD_AT_500]), currency)
    assert _fired(rules, currency, "612.40")
    assert not _fired(rules, currency, "499.99")


def test_amounts_in_two_currencies_are_never_compared():
    eur_store = with_currency(rules_from([GOLD_AT_500]), "EUR")
    assert not _fired(eur_store, "USD", "9000.00")  # an order in another currency than the shop's
    named = {**GOLD_AT_500, "when": {"customer.total_spent": {"at_least": "500 USD"}}}
    assert not _fired(with_currency(rules_from([named]), "EUR"), "EUR", "9000.00")
    # Before the shop's currency is known, amounts are read in whatever currency the store reports.
    assert _fired(rules_from([GOLD_AT_500]), "ILS", "612.40")


def test_the_settings_currency_is_used_until_the_store_says_otherwise():
    rules = rules_from([GOLD_AT_500], settings={"currency": "eur"})
    assert rules.settings.currency == "EUR"
    assert with_currency(rules, "ILS").settings.currency == "ILS"
    assert with_currency(rules, None) is rules


@pytest.mark.parametrize("currency", ["EUR", "ILS"])
def test_the_shipped_vip_pack_runs_unchanged_in_the_shops_currency(currency):
    shell = Shell(shipped_rules(currency))
    shell.handle(customer_created("3002", day(0), first_name="דנה"))
    decisions = shell.handle(order_paid("3002", "9002", day(1), total=f"640.00 {currency}", currency=currency))
    assert only(decisions, "vip_gold_tier").kind == "touch"
    welcome = only(decisions, "vip_gold_welcome")
    coupon = action(welcome, "coupon")
    assert (coupon.discount_type, coupon.value, coupon.currency) == ("fixed", Decimal("25"), currency)


def test_a_coupon_minimum_without_a_currency_is_in_the_shops():
    rule = {"id": "thanks", "trigger": "order.paid", "actions": [{"coupon": {"discount": "10%", "minimum_subtotal": 30}}]}
    shell = Shell(with_currency(rules_from([rule]), "ILS"))
    shell.handle(customer_created("3003", day(0)))
    coupon = action(only(shell.handle(order_paid("3003", "9003", day(1), currency="ILS")), "thanks"), "coupon")
    assert (coupon.currency, coupon.minimum_subtotal) == (None, Money(Decimal("30"), "ILS"))


def test_the_shipped_packs_name_no_currency():
    files = rule_files([RULES_DIR])
    assert currency_warnings([(str(f), f.read_bytes()) for f in files]) == []
    for f in files:
        assert not any(code in f.read_text() for code in ("USD", "EUR", "ILS")), f


def test_lint_warns_about_a_rule_in_another_currency(tmp_path):
    text = ("rules:\n  - id: big\n    trigger: order.paid\n    holdout: 10%\n"
            "    when:\n      order.total: {at_least: \"100 USD\"}\n"
            "    actions:\n      - coupon: {discount: \"5 EUR\", minimum_subtotal: 20}\n"
            "      - tag: big-spender\n")
    sources = [("rules.yaml", text.encode())]
    assert [str(w) for w in currency_warnings(sources, "EUR")] == [
        "rules.yaml:6:21: [big] warning: '100 USD' names USD, but the shop's currency is EUR; "
        "write the amount without a currency to mean the shop's"]
    assert [w.line for w in currency_warnings(sources, None)] == [6, 8]  # shop unknown: any named currency
    (tmp_path / "rules.yaml").write_text(text.replace("- tag: big-spender", "- tag: 10 EUR"))
    (tmp_path / "settings.yaml").write_text("settings:\n  currency: ILS\n")
    result = CliRunner().invoke(cli, ["rules", "lint", str(tmp_path)])
    assert result.exit_code == 0, result.output  # a warning, not an error; a tag's text is not an amount
    assert result.output.count("warning:") == 3 and "the shop's currency is ILS" in result.output
    assert "this coupon never expires" in result.output


def only(decisions, rule_id):
    (found,) = [d for d in decisions if d.rule_id == rule_id]
    return found


SHOP = Shop(id="sh_ils", platform="shopify", domain="hanut.myshopify.com", api_url="https://hanut.myshopify.com",
            credentials={"access_token": "shpat_x"}, settings={"currency": "ILS"})


def test_a_multi_currency_shopify_order_is_read_in_shop_money():
    payload = json.loads((FIXTURES / "order_paid_multicurrency.json").read_text())
    # What a buyer saw (EUR) must not leak in even where a plain amount is missing.
    del payload["total_price"], payload["line_items"][0]["price"]
    event = _order_events(SHOP, "orders/paid", payload)[0]
    assert event.order.total == Money(Decimal("652.80"), "ILS")
    assert event.order.subtotal == Money(Decimal("587.52"), "ILS")
    assert event.order.line_items[0].price == Money(Decimal("195.84"), "ILS")
    assert event.customer.first_name == "דנה"


def test_a_refund_paid_back_in_the_buyers_currency_is_counted_in_the_shops():
    refund = json.loads((FIXTURES / "refund_create.json").read_text())
    for li in refund["refund_line_items"]:
        li["subtotal_set"] = {"shop_money": {"amount": "156.67", "currency_code": "ILS"},
                              "presentment_money": {"amount": "38.40", "currency_code": "EUR"}}
    assert refund_amount(refund) == (Decimal("156.67"), "ILS")
