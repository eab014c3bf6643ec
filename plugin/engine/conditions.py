"""Conditions: compiled once at load time into plain closures, evaluated many times.

A condition is ``{all: [...]}``, ``{any: [...]}``, ``{not: condition}`` or a field test
``{customer.orders_count: {at_least: 2}}``. Compiling checks every field, operator and value
and reports problems with the path to the offending node, so the linter can name its line.
"""
from __future__ import annotations

import difflib
import operator
from dataclasses import dataclass
from decimal import Decimal
from collections.abc import Iterable
from typing import Any, Callable

from plugin.engine.fields import BOOL, DATA_PREFIX, DATE, DURATION, FIELDS, LIST, MONEY, NUMBER, TEXT, Context, data_field
from plugin.engine.values import format_duration, parse_duration, parse_money
from plugin.errors import KeepwellError

Path = tuple[Any, ...]  # keys and indexes from the rule down to a node

Test = Callable[[Context], bool]

_ORDERED = (NUMBER, MONEY, DURATION)
OPERATORS: dict[str, tuple[str, ...]] = {
    "equals": (NUMBER, MONEY, TEXT, BOOL, DURATION),
    "not_equals": (NUMBER, MONEY, TEXT, BOOL, DURATION),
    "greater_than": _ORDERED,
    "at_least": _ORDERED,
    "less_than": _ORDERED,
    "at_most": _ORDERED,
    "between": _ORDERED,
    "in": (TEXT, NUMBER),
    "not_in": (TEXT, NUMBER),
    "contains": (LIST,),
    "not_contains": (LIST,),
    "contains_any": (LIST,),
    "exists": (NUMBER, MONEY, TEXT, BOOL, LIST, DURATION, DATE),
}
_CMP: dict[str, Callable[[Any, Any], bool]] = {
    "equals": operator.eq,
    "not_equals": operator.ne,
    "greater_than": operator.gt,
    "at_least": operator.ge,
    "less_than": operator.lt,
    "at_most": operator.le,
}
_EXAMPLE = {NUMBER: "2", MONEY: "50", DURATION: "'30d'", TEXT: "'gold'", BOOL: "true", LIST: "'summer'"}


class ConditionProblem(KeepwellError):
    def __init__(self, path: Path, message: str):
        self.path = path
        self.message = message
        super().__init__(message)


def did_you_mean(word: object, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(str(word), list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


@dataclass(frozen=True)
class Leaf:
    field: str
    op: str
    expected: Any
    get: Callable[[Context], Any]
    test: Callable[[Context], bool]

    def describe(self) -> str:
        return f"{self.field} {self.op} {_show(self.expected)}"


@dataclass(frozen=True)
class Group:
    kind: str  # all | any | not
    children: tuple[Leaf | Group, ...]
    test: Callable[[Context], bool]


def _show(v: Any) -> str:
    if isinstance(v, (list, tuple, set, frozenset)):
        items = sorted(v, key=str) if isinstance(v, (set, frozenset)) else v
        return "[" + ", ".join(_show(x) for x in items) + "]"
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "(none)"
    if hasattr(v, "total_seconds"):
        return format_duration(v)
    return str(v)


def _literal(ftype: str, value: Any, path: Path, name: str) -> Any:
    """The typed literal for comparing with a field of ``ftype``; raises ConditionProblem."""
    try:
        if ftype == MONEY:
            return parse_money(value)
        if ftype == DURATION:
            return parse_duration(value)
        if ftype == NUMBER:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"{name} compares numbers: write a number such as 2, not {value!r}")
            return value if isinstance(value, int) else Decimal(str(value))
        if ftype == BOOL:
            if not isinstance(value, bool):
                raise ValueError(f"{name} is yes/no: write true or false, not {value!r}")
            return value
        if isinstance(value, (dict, list)):
            raise ValueError(f"expected a single value, not {type(value).__name__}")
        if isinstance(value, bool):  # YAML reads bare yes/no/on/off as true/false
            raise ValueError(f"{name} compares text but got {str(value).lower()}: put words such as 'no' or 'on' in quotes")
        return str(value)
    except ValueError as exc:
        raise ConditionProblem(path, str(exc)) from None


def _compare(get: Callable[[Context], Any], op: str, lit: Any, ftype: str) -> Test:
    cmp = _CMP[op]
    if ftype == MONEY:
        amount, currency = lit.amount, lit.currency

        def test(c: Context) -> bool:
            # Amounts in two currencies are never compared; one written without a currency means
            # the shop's (any, while the shop's currency is not known yet).
            m = get(c)
            if m is None or m.currency != (currency or c.currency or m.currency):
                return op == "not_equals"
            return cmp(m.amount, amount)
        return test
    if op == "not_equals":
        return lambda c: get(c) != lit
    if ftype == BOOL and op == "equals":
        return (lambda c: get(c) is True) if lit else (lambda c: get(c) is False)

    def present(c: Context) -> bool:
        v = get(c)
        return v is not None and cmp(v, lit)
    return present


def _check_applies(fname: str, ftype: str, op: str, path: Path) -> None:
    if ftype in OPERATORS[op]:
        return
    hint = " (use contains)" if ftype == LIST and op in ("equals", "in") else ""
    if ftype == DATE:
        hint = " (a date field only supports exists; compare customer.since_first_order or customer.since_last_order instead)"
    raise ConditionProblem(path, f"operator {op!r} does not apply to {fname}, which is a {ftype} field{hint}")


def _exists(fname: str, ftype: str, get: Callable[[Context], Any], value: Any, path: Path) -> Leaf:
    if not isinstance(value, bool):
        raise ConditionProblem(path, f"exists takes true or false, not {value!r}")
    if ftype == LIST:
        test: Test = (lambda c: bool(get(c))) if value else (lambda c: not get(c))
    else:
        test = (lambda c: get(c) is not None) if value else (lambda c: get(c) is None)
    return Leaf(fname, "exists", value, get, test)


def _data_type(op: str, value: Any) -> str:
    """The type an ``event.data.*`` field is read as: the one its value in the rule has."""
    if op in ("contains", "not_contains", "contains_any"):
        return LIST
    if op == "exists":
        return DATE  # any value
    if op in ("greater_than", "at_least", "less_than", "at_most", "between"):
        return NUMBER
    sample = value[0] if isinstance(value, list) and value else value
    if isinstance(sample, bool):
        return BOOL
    return NUMBER if isinstance(sample, (int, float)) else TEXT


def _leaf(fname: str, op: str, value: Any, path: Path) -> Leaf:
    f = FIELDS[fname] if fname in FIELDS else data_field(fname, _data_type(op, value))
    get = f.get
    _check_applies(fname, f.type, op, path)
    if op == "exists":
        return _exists(fname, f.type, get, value, path)
    if op == "between":
        if not isinstance(value, list) or len(value) != 2:
            raise ConditionProblem(path, f"between takes a list of two values, e.g. [{_EXAMPLE[f.type]}, {_EXAMPLE[f.type]}]")
        lo, hi = (_literal(f.type, v, path + (i,), op) for i, v in enumerate(value))
        if f.type == MONEY and lo.currency != hi.currency:
            raise ConditionProblem(path, f"between: both amounts need the same currency, got {lo} and {hi}")
        if (lo.amount > hi.amount) if f.type == MONEY else lo > hi:
            raise ConditionProblem(path, f"between: the lower bound {_show(lo)} is above the upper bound {_show(hi)}")
        t_lo, t_hi = _compare(get, "at_least", lo, f.type), _compare(get, "at_most", hi, f.type)
        return Leaf(fname, op, (lo, hi), get, lambda c: t_lo(c) and t_hi(c))
    if op in ("in", "not_in"):
        if not isinstance(value, list) or not value:
            raise ConditionProblem(path, f"{op} takes a non-empty list, e.g. [{_EXAMPLE[f.type]}]")
        members = frozenset(_literal(f.type, v, path + (i,), op) for i, v in enumerate(value))
        if op == "in":
            return Leaf(fname, op, tuple(value), get, lambda c: get(c) in members)
        return Leaf(fname, op, tuple(value), get, lambda c: get(c) not in members)
    fold = str.lower if fname == "order.discount_codes" else str  # stores lower-case codes
    if op in ("contains", "not_contains"):
        item = fold(_literal(TEXT, value, path, op))
        if op == "contains":
            return Leaf(fname, op, item, get, lambda c: item in (get(c) or ()))
        return Leaf(fname, op, item, get, lambda c: item not in (get(c) or ()))
    if op == "contains_any":
        if not isinstance(value, list) or not value:
            raise ConditionProblem(path, "contains_any takes a non-empty list, e.g. ['summer', 'beach']")
        items = frozenset(fold(_literal(TEXT, v, path + (i,), op)) for i, v in enumerate(value))
        return Leaf(fname, op, tuple(items), get, lambda c: not items.isdisjoint(get(c) or ()))
    lit = _literal(f.type, value, path, op)
    return Leaf(fname, op, lit, get, _compare(get, op, lit, f.type))


def _all(given: Iterable[Test]) -> Test:
    # Fixed-arity closures: a generator per evaluation would cost more than the tests themselves.
    tests = tuple(given)
    if len(tests) == 1:
        return tests[0]
    if len(tests) == 2:
        a, b = tests
        return lambda c: a(c) and b(c)
    if len(tests) == 3:
        a, b, d = tests
        return lambda c: a(c) and b(c) and d(c)
    if len(tests) == 4:
        a, b, d, e = tests
        return lambda c: a(c) and b(c) and d(c) and e(c)

    def test(c: Context) -> bool:
        for t in tests:
            if not t(c):
                return False
        return True
    return test


def _any(given: Iterable[Test]) -> Test:
    tests = tuple(given)
    if len(tests) == 1:
        return tests[0]
    if len(tests) == 2:
        a, b = tests
        return lambda c: a(c) or b(c)
    if len(tests) == 3:
        a, b, d = tests
        return lambda c: a(c) or b(c) or d(c)

    def test(c: Context) -> bool:
        for t in tests:
            if t(c):
                return True
        return False
    return test


def compile_condition(node: Any, path: Path = ()) -> Leaf | Group:
    """Compile a condition tree; raises ConditionProblem naming the bad node's path."""
    if not isinstance(node, dict) or not node:
        raise ConditionProblem(path, "a condition is a mapping: all, any, not, or a field with an operator")
    if len(node) != 1:
        raise ConditionProblem(path, f"a condition has exactly one key (all, any, not or a field), got {', '.join(map(str, node))}; wrap several in 'all:'")
    (key, body), = node.items()
    sub = path + (key,)
    if key in ("all", "any"):
        if not isinstance(body, list) or not body:
            raise ConditionProblem(sub, f"{key} takes a non-empty list of conditions")
        children = tuple(compile_condition(child, sub + (i,)) for i, child in enumerate(body))
        tests = [ch.test for ch in children]
        test = _all(tests) if key == "all" else _any(tests)
        return Group(key, children, test)
    if key == "not":
        child = compile_condition(body, sub)
        t = child.test
        return Group("not", (child,), lambda c: not t(c))
    if key.startswith(DATA_PREFIX) and len(key) > len(DATA_PREFIX):
        if not isinstance(body, dict) or not body:
            raise ConditionProblem(sub, f"{key} needs an operator, e.g. {{equals: 'mint'}} or {{at_least: 30}}")
    elif key not in FIELDS:
        raise ConditionProblem(sub, f"unknown field {key!r}{did_you_mean(key, list(FIELDS) + ['all', 'any', 'not'])}")
    if not isinstance(body, dict) or not body:
        raise ConditionProblem(sub, f"{key} needs an operator, e.g. {{{next(o for o, t in OPERATORS.items() if FIELDS[key].type in t)}: ...}}")
    leaves = []
    for op, value in body.items():
        if op not in OPERATORS:
            raise ConditionProblem(sub + (op,), f"unknown operator {op!r}{did_you_mean(op, OPERATORS)}")
        leaves.append(_leaf(key, op, value, sub + (op,)))
    if len(leaves) == 1:
        return leaves[0]
    return Group("all", tuple(leaves), _all([lf.test for lf in leaves]))


def data_path(node: Any, path: Path = ()) -> Path | None:
    """The path of the first ``event.data.*`` test in a condition tree (as written), else None."""
    if isinstance(node, list):
        return next((p for i, child in enumerate(node) if (p := data_path(child, path + (i,))) is not None), None)
    if not isinstance(node, dict):
        return None
    for key, body in node.items():
        if isinstance(key, str) and key.startswith(DATA_PREFIX):
            return path + (key,)
        if key in ("all", "any", "not") and (found := data_path(body, path + (key,))) is not None:
            return found
    return None


def trace(node: Leaf | Group, ctx: Context, depth: int = 0) -> tuple[bool, list[str]]:
    """Evaluate with a human-readable line per node: what was tested and the value seen."""
    pad = "  " * depth
    if isinstance(node, Leaf):
        ok = node.test(ctx)
        actual = node.get(ctx)
        return ok, [f"{pad}{'PASS' if ok else 'FAIL'} {node.describe()} (saw {_show(actual)})"]
    results = [trace(ch, ctx, depth + 1) for ch in node.children]
    ok = node.test(ctx)
    lines = [f"{pad}{'PASS' if ok else 'FAIL'} {node.kind}:"]
    for _, sub in results:
        lines.extend(sub)
    return ok, lines
