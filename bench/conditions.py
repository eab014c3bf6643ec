"""Evaluations/s of one compiled Keepwell condition beside a hand-written lambda and two rule engines.

The condition is "first paid order, at least 50 USD, customer tagged newsletter, opted in".
Contenders, all on the same customer data:

- keepwell:       compile_condition(...).test(ctx), ctx built from a real Event and folded state
- lambda:         the same test written by hand in Python on the same Context (the limit)
- business_rules: venmo business-rules, run_all() with a recording action, on a flat dict
- rule_engine:    zeroSteiner rule-engine, Rule.matches() on a flat dict (default and typed context)

Timing is interleaved (A, B, C, D, A, B, ...) over a few rounds so machine noise hits all of
them alike; each contender's best round counts. Targets: keepwell >= 10x business-rules and
>= 0.15 of the lambda. The "true" case runs all four tests; the "mix" case cycles through the
true case and four false ones, each failing at a different test.

The last line printed is one JSON object with the figures.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import rule_engine  # noqa: E402
from business_rules import run_all  # noqa: E402
from business_rules.actions import BaseActions, rule_action  # noqa: E402
from business_rules.variables import (  # noqa: E402
    BaseVariables,
    boolean_rule_variable,
    numeric_rule_variable,
    select_rule_variable,
)

from plugin.engine import apply, new_state  # noqa: E402
from plugin.engine.conditions import compile_condition  # noqa: E402
from plugin.engine.fields import Context  # noqa: E402
from plugin.events import event_from_dict  # noqa: E402

CONDITION = {"all": [
    {"order.is_first": {"equals": True}},
    {"order.total": {"at_least": "50 USD"}},
    {"customer.tags": {"contains": "newsletter"}},
    {"customer.accepts_marketing": {"equals": True}},
]}
RULE_TEXT = 'is_first == true and total >= 50 and "newsletter" in tags and accepts_marketing == true'
TARGETS = {"ratio": 10, "ratio_vs_lambda": 0.15}
SHOP = "coffee.example"
T0 = datetime(2025, 3, 1, 14, 0, tzinfo=timezone.utc)


# --- the data: real events folded into customer state -----------------------------------------

def _customer(cid, tags, accepts_marketing):
    return {"id": cid, "email": f"{cid}@example.com", "first_name": "Ana", "locale": "en",
            "accepts_marketing": accepts_marketing, "tags": tags, "created_at": T0.isoformat()}


def _order_paid(cid, oid, at, total, customer):
    return {
        "id": f"evt-{oid}-paid", "type": "order.paid", "shop": SHOP, "customer_id": cid,
        "occurred_at": (at + timedelta(minutes=3)).isoformat(),
        "order": {
            "id": oid, "number": f"#{oid}", "created_at": at.isoformat(),
            "total": {"amount": total, "currency": "USD"},
            "subtotal": {"amount": total, "currency": "USD"},
            "line_items": [
                {"product_id": "p-ethiopia", "variant_id": "v-ethiopia-500", "sku": "ETH-500", "quantity": 2,
                 "price": {"amount": "18.50", "currency": "USD"}, "title": "Ethiopia Guji 500g",
                 "product_tags": ["single-origin"], "collections": ["coffee"]},
                {"product_id": "p-v60", "variant_id": "v-v60-02", "sku": "V60-02", "quantity": 1,
                 "price": {"amount": "27.90", "currency": "USD"}, "title": "Hario V60 dripper",
                 "collections": ["brewing"]},
            ],
            "discount_codes": [],
        },
        "customer": customer,
    }


def case(name, tags=("newsletter", "coffee-club"), accepts_marketing=True, total="64.90", repeat=False):
    """A Context for an order.paid event, with the state folded from the customer's history."""
    cid = f"c-{name}"
    customer = _customer(cid, list(tags), accepts_marketing)
    history = [{"id": f"evt-{cid}-created", "type": "customer.created", "shop": SHOP, "customer_id": cid,
                "occurred_at": T0.isoformat(), "customer": customer}]
    if repeat:
        history.append(_order_paid(cid, f"{cid}-1", T0 + timedelta(days=1), "41.00", customer))
    paid = _order_paid(cid, f"{cid}-2", T0 + timedelta(days=40), total, customer)
    history.append(paid)
    state = new_state(SHOP, cid)
    events = [event_from_dict(d) for d in history]
    for e in events:
        state = apply(state, e)
    return Context(events[-1], state, events[-1].occurred_at + timedelta(minutes=1))


def cases():
    """The true case first, then false cases failing at the 1st, 2nd, 3rd and 4th test."""
    return [
        case("true"),
        case("repeat", repeat=True),
        case("small", total="30.00"),
        case("untagged", tags=("coffee-club",)),
        case("opted-out", accepts_marketing=False),
    ]


def flat(c: Context) -> dict:
    """The same facts as a flat dict, the shape the other engines read."""
    return {
        "is_first": c.state.first_order_id == c.order.id,
        "total": c.order.total.amount,
        "tags": set(c.state.tags),
        "accepts_marketing": c.state.accepts_marketing,
    }


# --- the contenders ---------------------------------------------------------------------------

def keepwell():
    return compile_condition(CONDITION).test


def by_hand():
    fifty = Decimal(50)
    return lambda c: (c.state.first_order_id == c.order.id and c.order.total.currency == "USD"
                      and c.order.total.amount >= fifty and "newsletter" in c.state.tags
                      and c.state.accepts_marketing)


class OrderVariables(BaseVariables):
    def __init__(self, facts):
        self.facts = facts

    @boolean_rule_variable
    def is_first(self):
        return self.facts["is_first"]

    @numeric_rule_variable
    def total(self):
        return self.facts["total"]

    @select_rule_variable()
    def tags(self):
        return self.facts["tags"]

    @boolean_rule_variable
    def accepts_marketing(self):
        return self.facts["accepts_marketing"]


class Recorder(BaseActions):
    def __init__(self):
        self.fired = 0

    @rule_action()
    def record(self):
        self.fired += 1


BR_RULES = [{
    "conditions": {"all": [
        {"name": "is_first", "operator": "is_true", "value": True},
        {"name": "total", "operator": "greater_than_or_equal_to", "value": 50},
        {"name": "tags", "operator": "contains", "value": "newsletter"},
        {"name": "accepts_marketing", "operator": "is_true", "value": True},
    ]},
    "actions": [{"name": "record"}],
}]


def business_rules():
    actions = Recorder()

    def evaluate(variables):
        return run_all(rule_list=BR_RULES, defined_variables=variables, defined_actions=actions,
                       stop_on_first_trigger=True)
    return evaluate


def rule_engine_rule(typed: bool):
    if not typed:
        return rule_engine.Rule(RULE_TEXT).matches
    t = rule_engine.DataType
    context = rule_engine.Context(type_resolver=rule_engine.type_resolver_from_dict({
        "is_first": t.BOOLEAN, "total": t.FLOAT, "tags": t.SET(t.STRING), "accepts_marketing": t.BOOLEAN}))
    return rule_engine.Rule(RULE_TEXT, context=context).matches


# --- timing -----------------------------------------------------------------------------------

def run_for(fn, batch, seconds: float) -> float:
    """Evaluations per second of ``fn`` over ``batch``, repeated for about ``seconds``."""
    n = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        for x in batch:
            fn(x)
        n += len(batch)
        now = time.perf_counter()
        if now >= deadline:
            return n / (now - start)


def measure(contenders: dict, seconds: float, rounds: int) -> dict:
    """name -> list of per-round rates; contenders take turns within each round."""
    rates = {name: [] for name in contenders}
    for _ in range(rounds):
        for name, (fn, batch) in contenders.items():
            rates[name].append(run_for(fn, batch, seconds / rounds))
    return rates


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=2.0, help="time budget per contender and case")
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args(argv)

    ctxs = cases()
    facts = [flat(c) for c in ctxs]
    variables = [OrderVariables(f) for f in facts]
    contenders = {
        "keepwell": (keepwell(), ctxs),
        "lambda": (by_hand(), ctxs),
        "business_rules": (business_rules(), variables),
        "rule_engine": (rule_engine_rule(typed=False), facts),
        "rule_engine_typed": (rule_engine_rule(typed=True), facts),
    }

    expected = [True, False, False, False, False]
    for name, (fn, inputs) in contenders.items():
        got = [bool(fn(x)) for x in inputs]
        if got != expected:
            sys.exit(f"{name} disagrees: {got}, expected {expected}")
    print(f"all {len(contenders)} contenders agree on {len(expected)} cases: {expected}")

    reps = 200
    true_case = {name: (fn, [inputs[0]] * reps * len(inputs)) for name, (fn, inputs) in contenders.items()}
    mix_case = {name: (fn, list(inputs) * reps) for name, (fn, inputs) in contenders.items()}
    results = {}
    for label, runs in (("true", true_case), ("mix", mix_case)):
        rates = measure(runs, args.seconds, args.rounds)
        results[label] = {name: max(r) for name, r in rates.items()}
        print(f"\n{label} case ({'all four tests run' if label == 'true' else '1 true + 4 false, round robin'}):")
        print(f"  {'contender':<18} {'best evals/s':>14} {'median':>14} {'vs business_rules':>18} {'vs lambda':>10}")
        best = results[label]
        for name, r in rates.items():
            print(f"  {name:<18} {best[name]:>14,.0f} {statistics.median(r):>14,.0f} "
                  f"{best[name] / best['business_rules']:>17.1f}x {best[name] / best['lambda']:>10.3f}")

    best = results["true"]
    ratio = best["keepwell"] / best["business_rules"]
    ratio_vs_lambda = best["keepwell"] / best["lambda"]
    print(json.dumps({
        "keepwell": round(best["keepwell"]),
        "lambda": round(best["lambda"]),
        "business_rules": round(best["business_rules"]),
        "rule_engine": round(best["rule_engine"]),
        "rule_engine_typed": round(best["rule_engine_typed"]),
        "ratio": round(ratio, 2),
        "ratio_vs_lambda": round(ratio_vs_lambda, 3),
        "mix": {name: round(r) for name, r in results["mix"].items()},
        "targets": TARGETS,
        "pass": ratio >= TARGETS["ratio"] and ratio_vs_lambda >= TARGETS["ratio_vs_lambda"],
    }))


if __name__ == "__main__":
    main()
