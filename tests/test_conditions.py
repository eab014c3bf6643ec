"""The condition language: every operator on every field type, nesting, compile problems, trace."""
from dataclasses import replace
from datetime import date, timedelta
from decimal import Decimal

import pytest

from engine_helpers import HOUSE_BLEND, DRIPPER, SHOP, T0, customer_updated, order_paid
from plugin.engine.conditions import ConditionProblem, compile_condition, trace
from plugin.engine.fields import Context
from plugin.engine.state import new_state
from plugin.events import Money

NOW = T0


def _regular(currency="USD"):
    """A returning customer paying for a 2-item order of 42.50 (coffee + brewing)."""
    state = replace(
        new_state(SHOP, "7001"),
        email="zoe.dubois@example.com",
        locale="fr",
        accepts_marketing=True,
        tags=frozenset({"vip", "wholesale"}),
        tier="silver",
        birthday=date(1990, 6, 14),
        orders_count=3,
        total_spent=Money(Decimal("250.00"), currency),
        last_order_at=NOW - timedelta(days=30),
        first_order_at=NOW - timedelta(days=200),
    )
    event = order_paid("7001", "5100000042", NOW, products=(HOUSE_BLEND, DRIPPER), total=f"42.50 {currency}",
                       currency=currency, codes=["Spring10"])
    return Context(event, state, NOW)


def _nobody():
    """A customer we know nothing about, on an event without an order."""
    return Context(customer_updated("7002", NOW, locale="en"), new_state(SHOP, "7002"), NOW)


CONTEXTS = {"regular": _regular(), "euro": _regular("EUR"), "nobody": _nobody()}


def holds(condition, who="regular") -> bool:
    return compile_condition(condition).test(CONTEXTS[who])


# (field, operator, value, context, expected)
NUMBER_CASES = [
    ("customer.orders_count", "equals", 3, "regular", True),
    ("customer.orders_count", "equals", 2, "regular", False),
    ("customer.orders_count", "equals", 0, "nobody", True),
    ("customer.orders_count", "not_equals", 2, "regular", True),
    ("customer.orders_count", "not_equals", 3, "regular", False),
    ("customer.orders_count", "greater_than", 2, "regular", True),
    ("customer.orders_count", "greater_than", 3, "regular", False),
    ("customer.orders_count", "at_least", 3, "regular", True),
    ("customer.orders_count", "at_least", 4, "regular", False),
    ("customer.orders_count", "less_than", 4, "regular", True),
    ("customer.orders_count", "less_than", 3, "regular", False),
    ("customer.orders_count", "at_most", 3, "regular", True),
    ("customer.orders_count", "at_most", 2, "regular", False),
    ("customer.orders_count", "between", [3, 5], "regular", True),
    ("customer.orders_count", "between", [1, 3], "regular", True),
    ("customer.orders_count", "between", [4, 9], "regular", False),
    ("customer.orders_count", "in", [1, 3], "regular", True),
    ("customer.orders_count", "in", [1, 2], "regular", False),
    ("customer.orders_count", "not_in", [1, 2], "regular", True),
    ("customer.orders_count", "not_in", [3], "regular", False),
    ("customer.orders_count", "exists", True, "nobody", True),
    ("order.item_count", "equals", 2, "regular", True),
    ("order.item_count", "at_least", 1.5, "regular", True),
    ("order.item_count", "less_than", 2.5, "regular", True),
    # no order: the value is missing, so no comparison holds (only "not equal" / "not in")
    ("order.item_count", "greater_than", 0, "nobody", False),
    ("order.item_count", "at_most", 5, "nobody", False),
    ("order.item_count", "between", [0, 10], "nobody", False),
    ("order.item_count", "in", [2], "nobody", False),
    ("order.item_count", "not_in", [2], "nobody", True),
    ("order.item_count", "not_equals", 2, "nobody", True),
    ("order.item_count", "exists", True, "nobody", False),
    ("order.item_count", "exists", False, "nobody", True),
]

MONEY_CASES = [
    ("order.total", "equals", "42.50 USD", "regular", True),
    ("order.total", "equals", "42.5 usd", "regular", True),
    ("order.total", "equals", "42.50 EUR", "regular", False),
    ("order.total", "not_equals", "42.50 USD", "regular", False),
    ("order.total", "not_equals", "42.50 EUR", "regular", True),
    ("order.total", "not_equals", "42.50 USD", "nobody", True),
    ("order.total", "greater_than", "42.49 USD", "regular", True),
    ("order.total", "greater_than", "42.50 USD", "regular", False),
    ("order.total", "greater_than", "10 USD", "euro", False),
    ("order.total", "at_least", "42.50 USD", "regular", True),
    ("order.total", "at_least", "42.51 USD", "regular", False),
    ("order.total", "at_least", "10 USD", "euro", False),
    ("order.total", "at_least", "10 EUR", "euro", True),
    ("order.total", "at_least", "0 USD", "nobody", False),
    ("order.total", "less_than", "42.51 USD", "regular", True),
    ("order.total", "less_than", "42.50 USD", "regular", False),
    ("order.total", "less_than", "100 EUR", "regular", False),
    ("order.total", "at_most", "42.50 USD", "regular", True),
    ("order.total", "at_most", "42.49 USD", "regular", False),
    ("order.total", "at_most", "100 USD", "nobody", False),
    ("order.total", "between", ["40 USD", "42.50 USD"], "regular", True),
    ("order.total", "between", ["42.50 USD", "50 USD"], "regular", True),
    ("order.total", "between", ["42.51 USD", "50 USD"], "regular", False),
    ("order.total", "between", ["40 EUR", "50 EUR"], "regular", False),
    ("order.total", "between", ["40 EUR", "50 EUR"], "euro", True),
    ("order.total", "between", ["0 USD", "50 USD"], "nobody", False),
    ("order.total", "exists", True, "regular", True),
    ("order.total", "exists", True, "nobody", False),
    ("order.total", "exists", False, "nobody", True),
    ("customer.total_spent", "at_least", "250 USD", "regular", True),
    ("customer.total_spent", "at_least", "200 USD", "euro", False),
    ("customer.total_spent", "less_than", "1 USD", "nobody", False),
]

TEXT_CASES = [
    ("customer.tier", "equals", "silver", "regular", True),
    ("customer.tier", "equals", "gold", "regular", False),
    ("customer.tier", "equals", "silver", "nobody", False),
    ("customer.tier", "not_equals", "gold", "regular", True),
    ("customer.tier", "not_equals", "silver", "regular", False),
    ("customer.tier", "not_equals", "gold", "nobody", True),
    ("customer.tier", "in", ["silver", "gold"], "regular", True),
    ("customer.tier", "in", ["gold"], "regular", False),
    ("customer.tier", "in", ["gold"], "nobody", False),
    ("customer.tier", "not_in", ["gold"], "regular", True),
    ("customer.tier", "not_in", ["silver", "gold"], "regular", False),
    ("customer.tier", "not_in", ["silver", "gold"], "nobody", True),
    ("customer.tier", "exists", True, "regular", True),
    ("customer.tier", "exists", True, "nobody", False),
    ("customer.tier", "exists", False, "nobody", True),
    ("customer.locale", "in", ["fr", "de"], "regular", True),
    ("customer.id", "equals", 7001, "regular", True),  # ids are text: a YAML number is read as text
    ("order.currency", "equals", "EUR", "euro", True),
    ("order.currency", "in", ["USD"], "euro", False),
]

BOOL_CASES = [
    ("customer.accepts_marketing", "equals", True, "regular", True),
    ("customer.accepts_marketing", "equals", True, "nobody", False),
    ("customer.accepts_marketing", "equals", False, "nobody", True),
    ("customer.accepts_marketing", "not_equals", True, "nobody", True),
    ("customer.accepts_marketing", "not_equals", True, "regular", False),
    ("customer.accepts_marketing", "exists", True, "nobody", True),  # false is a value, not a missing one
    ("order.is_first", "equals", False, "regular", True),  # the state has no order summary for it
    ("order.is_first", "equals", True, "nobody", False),
    ("order.is_first", "equals", False, "nobody", False),  # no order: neither first nor not first
    ("order.is_first", "exists", True, "nobody", False),
]

LIST_CASES = [
    ("customer.tags", "contains", "vip", "regular", True),
    ("customer.tags", "contains", "retail", "regular", False),
    ("customer.tags", "contains", "vip", "nobody", False),
    ("customer.tags", "not_contains", "retail", "regular", True),
    ("customer.tags", "not_contains", "vip", "regular", False),
    ("customer.tags", "not_contains", "vip", "nobody", True),
    ("customer.tags", "contains_any", ["retail", "vip"], "regular", True),
    ("customer.tags", "contains_any", ["retail", "press"], "regular", False),
    ("customer.tags", "contains_any", ["vip"], "nobody", False),
    ("customer.tags", "exists", True, "regular", True),
    ("customer.tags", "exists", True, "nobody", False),  # an empty list counts as missing
    ("customer.tags", "exists", False, "nobody", True),
    ("customer.tags", "exists", False, "regular", False),
    ("order.collections", "contains", "brewing", "regular", True),
    ("order.collections", "contains", "coffee", "nobody", False),
    ("order.collections", "not_contains", "coffee", "nobody", True),
    ("order.collections", "contains_any", ["tea", "coffee"], "regular", True),
    ("order.product_ids", "contains", 8400000001, "regular", True),  # a YAML number is read as text
    ("order.skus", "contains", "KW-BRW-V60", "regular", True),
    # discount codes are compared case-insensitively (WooCommerce lower-cases them)
    ("order.discount_codes", "contains", "SPRING10", "regular", True),
    ("order.discount_codes", "contains_any", ["Spring10", "SUMMER10"], "regular", True),
    ("order.discount_codes", "not_contains", "spring10", "regular", False),
]

DURATION_CASES = [
    ("customer.since_last_order", "equals", "30d", "regular", True),
    ("customer.since_last_order", "equals", "29d", "regular", False),
    ("customer.since_last_order", "not_equals", "30d", "regular", False),
    ("customer.since_last_order", "not_equals", "29d", "regular", True),
    ("customer.since_last_order", "not_equals", "29d", "nobody", True),
    ("customer.since_last_order", "greater_than", "29d", "regular", True),
    ("customer.since_last_order", "greater_than", "30d", "regular", False),
    ("customer.since_last_order", "at_least", "30d", "regular", True),
    ("customer.since_last_order", "at_least", "4w", "regular", True),
    ("customer.since_last_order", "at_least", "721h", "regular", False),
    ("customer.since_last_order", "less_than", "31d", "regular", True),
    ("customer.since_last_order", "less_than", "720h", "regular", False),
    ("customer.since_last_order", "at_most", "43200m", "regular", True),
    ("customer.since_last_order", "at_most", "29d", "regular", False),
    ("customer.since_last_order", "between", ["4w", "30d"], "regular", True),
    ("customer.since_last_order", "between", ["30d", "60d"], "regular", True),
    ("customer.since_last_order", "between", ["31d", "60d"], "regular", False),
    # never ordered: neither long ago nor recently
    ("customer.since_last_order", "at_least", "1d", "nobody", False),
    ("customer.since_last_order", "at_most", "1000d", "nobody", False),
    ("customer.since_last_order", "exists", True, "nobody", False),
    ("customer.since_last_order", "exists", False, "nobody", True),
    ("customer.since_first_order", "greater_than", "28w", "regular", True),
]

DATE_CASES = [
    ("customer.birthday", "exists", True, "regular", True),
    ("customer.birthday", "exists", False, "regular", False),
    ("customer.birthday", "exists", True, "nobody", False),
    ("customer.birthday", "exists", False, "nobody", True),
]

ALL_CASES = NUMBER_CASES + MONEY_CASES + TEXT_CASES + BOOL_CASES + LIST_CASES + DURATION_CASES + DATE_CASES


@pytest.mark.parametrize("field, op, value, who, expected", ALL_CASES,
                         ids=[f"{f}-{op}-{v}-{w}" for f, op, v, w, _ in ALL_CASES])
def test_operator(field, op, value, who, expected):
    assert holds({field: {op: value}}, who) is expected


def test_every_operator_is_covered():
    from plugin.engine.conditions import OPERATORS

    assert {op for _, op, _, _, _ in ALL_CASES} == set(OPERATORS)


@pytest.mark.parametrize("count, expected", [(1, False), (2, True), (5, True), (6, False)])
def test_several_operators_on_one_field_must_all_hold(count, expected):
    ctx = _regular()
    ctx = Context(ctx.event, replace(ctx.state, orders_count=count), NOW)
    assert compile_condition({"customer.orders_count": {"at_least": 2, "at_most": 5}}).test(ctx) is expected


T = {"customer.orders_count": {"at_least": 2}}  # holds for the regular customer
F = {"customer.tier": {"equals": "gold"}}  # does not


@pytest.mark.parametrize("condition, expected", [
    ({"all": [T]}, True),
    ({"all": [T, T]}, True),
    ({"all": [T, F]}, False),
    ({"all": [F, T, T]}, False),
    ({"any": [F, T]}, True),
    ({"any": [F, F]}, False),
    ({"any": [F, F, T]}, True),
    ({"not": T}, False),
    ({"not": F}, True),
    ({"not": {"not": T}}, True),
    ({"any": [{"all": [T, {"not": F}]}, F]}, True),
    ({"all": [{"any": [F, {"not": T}]}, T]}, False),
])
def test_all_any_not(condition, expected):
    assert holds(condition) is expected


# (condition, path of the problem, message)
PROBLEMS = [
    ({"customer.order_count": {"at_least": 2}}, ("customer.order_count",),
     "unknown field 'customer.order_count' (did you mean 'customer.orders_count'?)"),
    ({"all": [T, {"customer.totl_spent": {"at_least": "50 USD"}}]}, ("all", 1, "customer.totl_spent"),
     "unknown field 'customer.totl_spent' (did you mean 'customer.total_spent'?)"),
    ({"zzz.qqq": {"equals": 1}}, ("zzz.qqq",), "unknown field 'zzz.qqq'"),
    ({"customer.orders_count": {"at_leest": 2}}, ("customer.orders_count", "at_leest"),
     "unknown operator 'at_leest' (did you mean 'at_least'?)"),
    ({"not": {"customer.tags": {"equals": "vip"}}}, ("not", "customer.tags", "equals"),
     "operator 'equals' does not apply to customer.tags, which is a list field (use contains)"),
    ({"customer.orders_count": {"contains": 2}}, ("customer.orders_count", "contains"),
     "operator 'contains' does not apply to customer.orders_count, which is a number field"),
    ({"customer.tier": {"greater_than": "gold"}}, ("customer.tier", "greater_than"),
     "operator 'greater_than' does not apply to customer.tier, which is a text field"),
    ({"customer.accepts_marketing": {"between": [False, True]}}, ("customer.accepts_marketing", "between"),
     "operator 'between' does not apply to customer.accepts_marketing, which is a yes/no field"),
    ({"order.total": {"in": ["10 USD"]}}, ("order.total", "in"),
     "operator 'in' does not apply to order.total, which is a money field"),
    ({"customer.birthday": {"at_least": "2000-01-01"}}, ("customer.birthday", "at_least"),
     "operator 'at_least' does not apply to customer.birthday, which is a date field "
     "(a date field only supports exists; compare customer.since_first_order or customer.since_last_order instead)"),
    ({"order.total": {"at_least": "fifty"}}, ("order.total", "at_least"),
     "bad amount 'fifty': write a number (in the shop's currency), e.g. 50 or 49.90"),
    ({"order.total": {"at_least": "50 dollars"}}, ("order.total", "at_least"),
     "bad amount '50 dollars': write a number (in the shop's currency), e.g. 50 or 49.90"),
    ({"order.total": {"at_least": True}}, ("order.total", "at_least"),
     "bad amount True: write a number such as 50 or 49.90"),
    ({"order.total": {"between": [10, "20 USD"]}}, ("order.total", "between"),
     "between: both amounts need the same currency, got 10 and 20 USD"),
    ({"customer.since_last_order": {"at_least": "3 months"}}, ("customer.since_last_order", "at_least"),
     "bad duration '3 months': write a whole number and a unit, e.g. '30d', '12h', '2w', '90m'"),
    ({"customer.since_last_order": {"at_least": "1.5d"}}, ("customer.since_last_order", "at_least"),
     "bad duration '1.5d': write a whole number and a unit, e.g. '30d', '12h', '2w', '90m'"),
    ({"customer.orders_count": {"at_least": "2"}}, ("customer.orders_count", "at_least"),
     "at_least compares numbers: write a number such as 2, not '2'"),
    ({"customer.orders_count": {"equals": True}}, ("customer.orders_count", "equals"),
     "equals compares numbers: write a number such as 2, not True"),
    ({"customer.accepts_marketing": {"equals": "yes"}}, ("customer.accepts_marketing", "equals"),
     "equals is yes/no: write true or false, not 'yes'"),
    ({"customer.tier": {"equals": ["gold"]}}, ("customer.tier", "equals"), "expected a single value, not list"),
    # YAML reads a bare no/on/yes as a boolean: in a text test that is a mistake
    ({"customer.tier": {"equals": True}}, ("customer.tier", "equals"),
     "equals compares text but got true: put words such as 'no' or 'on' in quotes"),
    ({"customer.locale": {"in": ["fr", False]}}, ("customer.locale", "in", 1),
     "in compares text but got false: put words such as 'no' or 'on' in quotes"),
    ({"customer.orders_count": {"between": [5, 2]}}, ("customer.orders_count", "between"),
     "between: the lower bound 5 is above the upper bound 2"),
    ({"order.total": {"between": ["100 USD", "50 USD"]}}, ("order.total", "between"),
     "between: the lower bound 100 USD is above the upper bound 50 USD"),
    ({"order.total": {"between": ["10 USD", "20 EUR"]}}, ("order.total", "between"),
     "between: both amounts need the same currency, got 10 USD and 20 EUR"),
    ({"customer.since_last_order": {"between": ["60d", "30d"]}}, ("customer.since_last_order", "between"),
     "between: the lower bound 60d is above the upper bound 30d"),
    ({"order.total": {"between": ["10 USD", "lots"]}}, ("order.total", "between", 1),
     "bad amount 'lots': write a number (in the shop's currency), e.g. 50 or 49.90"),
    ({"customer.orders_count": {"between": [1, 2, 3]}}, ("customer.orders_count", "between"),
     "between takes a list of two values, e.g. [2, 2]"),
    ({"order.total": {"between": "10 USD"}}, ("order.total", "between"),
     "between takes a list of two values, e.g. [50, 50]"),
    ({"customer.tier": {"in": []}}, ("customer.tier", "in"), "in takes a non-empty list, e.g. ['gold']"),
    ({"customer.orders_count": {"not_in": []}}, ("customer.orders_count", "not_in"),
     "not_in takes a non-empty list, e.g. [2]"),
    ({"customer.tier": {"in": "gold"}}, ("customer.tier", "in"), "in takes a non-empty list, e.g. ['gold']"),
    ({"customer.orders_count": {"in": [1, "two"]}}, ("customer.orders_count", "in", 1),
     "in compares numbers: write a number such as 2, not 'two'"),
    ({"customer.tags": {"contains_any": []}}, ("customer.tags", "contains_any"),
     "contains_any takes a non-empty list, e.g. ['summer', 'beach']"),
    ({"customer.tags": {"contains": ["a", "b"]}}, ("customer.tags", "contains"), "expected a single value, not list"),
    ({"customer.tier": {"exists": "yes"}}, ("customer.tier", "exists"), "exists takes true or false, not 'yes'"),
    ({"all": []}, ("all",), "all takes a non-empty list of conditions"),
    ({"any": [T, {"any": "x"}]}, ("any", 1, "any"), "any takes a non-empty list of conditions"),
    ({"not": []}, ("not",), "a condition is a mapping: all, any, not, or a field with an operator"),
    ("customer.orders_count", (), "a condition is a mapping: all, any, not, or a field with an operator"),
    ({}, (), "a condition is a mapping: all, any, not, or a field with an operator"),
    ({"customer.orders_count": {"at_least": 2}, "order.total": {"at_least": "50 USD"}}, (),
     "a condition has exactly one key (all, any, not or a field), got customer.orders_count, order.total; "
     "wrap several in 'all:'"),
    ({"customer.orders_count": {}}, ("customer.orders_count",), "customer.orders_count needs an operator, e.g. {equals: ...}"),
    ({"customer.tags": 3}, ("customer.tags",), "customer.tags needs an operator, e.g. {contains: ...}"),
]


@pytest.mark.parametrize("condition, path, message", PROBLEMS, ids=[m[:60] for _, _, m in PROBLEMS])
def test_compile_problem(condition, path, message):
    with pytest.raises(ConditionProblem) as exc:
        compile_condition(condition, ("rules", 0, "when"))
    assert exc.value.message == message
    assert exc.value.path == ("rules", 0, "when") + path


def test_trace_names_each_node_and_the_value_it_saw():
    condition = compile_condition({"all": [
        {"customer.orders_count": {"at_least": 2}},
        {"any": [{"customer.tags": {"contains": "vip"}}, {"order.total": {"at_least": "100 USD"}}]},
        {"not": {"customer.tier": {"in": ["gold", "platinum"]}}},
        {"customer.since_last_order": {"between": ["4w", "60d"]}},
    ]})
    ok, lines = trace(condition, _regular())
    assert ok is True
    assert lines == [
        "PASS all:",
        "  PASS customer.orders_count at_least 2 (saw 3)",
        "  PASS any:",
        "    PASS customer.tags contains vip (saw [vip, wholesale])",
        "    FAIL order.total at_least 100 USD (saw 42.50 USD)",
        "  PASS not:",
        "    FAIL customer.tier in [gold, platinum] (saw silver)",
        "  PASS customer.since_last_order between [28d, 60d] (saw 30d)",
    ]


def test_trace_shows_missing_values_and_depth():
    condition = compile_condition({"all": [{"customer.accepts_marketing": {"equals": True}},
                                           {"customer.tier": {"exists": True}}]})
    ok, lines = trace(condition, _nobody(), depth=1)
    assert ok is False
    assert lines == [
        "  FAIL all:",
        "    FAIL customer.accepts_marketing equals true (saw false)",
        "    FAIL customer.tier exists true (saw (none))",
    ]


def test_trace_agrees_with_test():
    for condition in ({"all": [T, F]}, {"any": [F, T]}, {"not": F}, T):
        compiled = compile_condition(condition)
        for ctx in CONTEXTS.values():
            assert trace(compiled, ctx)[0] is compiled.test(ctx)
