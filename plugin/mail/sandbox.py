"""The Jinja sandbox email templates render in, with limits: templates are merchant data, and a
template must not be able to stall a worker or fill its memory.

Jinja's sandbox already refuses unsafe attributes and ranges over 100,000 items. On top of it:
- no value a template builds may exceed MAX_TEXT characters (string/list ``*`` and ``+``, ``~``,
  ``%`` and ``format`` widths, ``replace``, ``join``, ``center``/``ljust``... widths);
- ``**`` exponents stay small;
- all loops of one render together iterate at most MAX_LOOP_ITEMS times;
- the output of a render is cut off (and refused) past the caller's limit.
A breach raises jinja2.sandbox.SecurityError, which the caller reports as a TemplateError.
"""
from __future__ import annotations

import contextvars
import functools
import re
from typing import Any

from jinja2 import nodes
from jinja2.compiler import CodeGenerator
from jinja2.filters import FILTERS
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

MAX_TEXT = 512 * 1024  # characters in any one value a template builds
MAX_LOOP_ITEMS = 100_000  # iterations of all loops of one render together
MAX_EXPONENT = 64
_WIDE = re.compile(r"\d{7,}|[1-9]\d{5}")  # a width or precision of 100,000 or more in a format spec
_budget: contextvars.ContextVar[list[int]] = contextvars.ContextVar("keepwell_template_loop_budget")


def _size(value: Any) -> int:
    return len(value) if isinstance(value, (str, bytes, list, tuple)) else 0


def _refuse_big(size: int, what: str) -> None:
    if size > MAX_TEXT:
        raise SecurityError(f"{what} would make a value of {size} items; templates are limited to {MAX_TEXT}")


def _refuse_wide(fmt: Any, what: str) -> None:
    if isinstance(fmt, str) and _WIDE.search(fmt):
        raise SecurityError(f"{what}: a width or precision this large is not allowed in a template")


def _count(iterable):
    """Iterate ``iterable`` while the render's loop budget lasts."""
    budget = _budget.get(None)
    for item in iterable:
        if budget is not None:
            budget[0] -= 1
            if budget[0] < 0:
                raise SecurityError(f"the template's loops ran more than {MAX_LOOP_ITEMS} times")
        yield item


def _replace_size(s: str, old: str, new: str, count: int = -1) -> int:
    hits = s.count(old) if old else len(s) + 1
    if count is not None and count >= 0:
        hits = min(hits, count)
    return len(s) + hits * (len(new) - len(old))


def _guard(name: str, check):
    """FILTERS[name], refusing arguments that ``check`` finds too big before it runs. An iterable
    first argument (``range(n)|map(...)``) is read into a list first, so it can be measured."""
    original = FILTERS[name]
    skip = 1 if getattr(original, "jinja_pass_arg", None) is not None else 0

    @functools.wraps(original)
    def guarded(*args, **kwargs):
        if len(args) > skip and not isinstance(args[skip], (str, list, tuple, dict)) and hasattr(args[skip], "__iter__"):
            args = (*args[:skip], list(_count(args[skip])), *args[skip + 1:])
        check(*args[skip:], **kwargs)
        return original(*args, **kwargs)

    return guarded


def _check_width(value=None, width=80, *_, **kw) -> None:
    width = kw.get("width", width)
    if isinstance(width, int) and width > 10_000:
        raise SecurityError(f"a width of {width} is not allowed in a template")


def _check_indent(s="", width=4, *_, **kw) -> None:
    width = kw.get("width", width)
    if isinstance(width, str):
        _refuse_big(len(width) * (str(s).count("\n") + 1) + len(str(s)), "indent")
    else:
        _check_width(s, width)


def _check_replace(s="", old="", new="", count=None, *_, **__) -> None:
    if isinstance(s, str) and isinstance(old, str) and isinstance(new, str):
        _refuse_big(_replace_size(s, old, new, count if isinstance(count, int) else -1), "replace")


def _check_join(value=(), d="", *_, **__) -> None:
    if isinstance(value, (list, tuple)) and isinstance(d, str):
        _refuse_big(len(d) * max(len(value) - 1, 0) + sum(len(str(x)) for x in value[:MAX_TEXT]), "join")


def _check_format(value="", *_, **__) -> None:
    _refuse_wide(value, "format")


_FILTER_CHECKS = {"center": _check_width, "wordwrap": _check_width, "truncate": _check_width,
                  "indent": _check_indent, "replace": _check_replace, "join": _check_join, "format": _check_format}
_STR_WIDTH_METHODS = frozenset({"center", "ljust", "rjust", "zfill"})


class _BoundedCodeGenerator(CodeGenerator):
    def visit_Concat(self, node: nodes.Concat, frame) -> None:
        # ``a ~ b`` is not a binop the sandbox intercepts: check the result's size as it is built
        self.write("environment.checked_concat(")
        super().visit_Concat(node, frame)
        self.write(")")


class BoundedSandbox(ImmutableSandboxedEnvironment):
    """ImmutableSandboxedEnvironment with the size, exponent and loop limits above."""

    code_generator_class = _BoundedCodeGenerator
    intercepted_binops = frozenset({"*", "+", "%", "**"})

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.filters.update({name: _guard(name, check) for name, check in _FILTER_CHECKS.items()})
        self.globals["_keepwell_loop"] = _count
        self.globals.pop("lipsum", None)  # lipsum(n) writes n paragraphs

    def _parse(self, source, name, filename):
        tree = super()._parse(source, name, filename)
        for loop in tree.find_all(nodes.For):  # every loop draws from the render's budget
            loop.iter = nodes.Call(nodes.Name("_keepwell_loop", "load"), [loop.iter], [], None, None)
        return tree

    def checked_concat(self, value):
        _refuse_big(len(value), "~")
        return value

    def call_binop(self, context, operator: str, left: Any, right: Any) -> Any:
        if operator == "*":
            for seq, n in ((left, right), (right, left)):
                if _size(seq) and isinstance(n, int):
                    _refuse_big(_size(seq) * n, "*")
        elif operator == "+":
            _refuse_big(_size(left) + _size(right), "+")
        elif operator == "%":
            _refuse_wide(left, "%")
        elif operator == "**" and isinstance(right, (int, float)) and abs(right) > MAX_EXPONENT \
                and isinstance(left, (int, float)) and abs(left) > 1:
            raise SecurityError(f"exponents above {MAX_EXPONENT} are not allowed in a template")
        return super().call_binop(context, operator, left, right)

    def call(__self, __context, __obj, *args, **kwargs):  # noqa: N805 (the sandbox's own signature)
        target = getattr(__obj, "__wrapped__", __obj)
        owner, name = getattr(target, "__self__", None), getattr(target, "__name__", "")
        if isinstance(owner, str):
            if name in _STR_WIDTH_METHODS and args and isinstance(args[0], int):
                _refuse_big(args[0], name)
            elif name == "expandtabs" and args and isinstance(args[0], int):
                _refuse_big(len(owner) * args[0], name)
            elif name == "replace" and len(args) >= 2:
                _check_replace(owner, *args[:3])
            elif name in ("format", "format_map"):
                _refuse_wide(owner, name)
            elif name == "join" and args and isinstance(args[0], (list, tuple, str)):
                _check_join(list(args[0]), owner)
        elif isinstance(owner, (list, tuple)) and name in ("__mul__", "__rmul__") and args and isinstance(args[0], int):
            _refuse_big(len(owner) * args[0], name)
        return super().call(__context, __obj, *args, **kwargs)


def render_limited(template, context: dict, limit_bytes: int, what: str) -> str:
    """Render ``template`` with a fresh loop budget; SecurityError once its output passes ``limit_bytes``."""
    token = _budget.set([MAX_LOOP_ITEMS])
    try:
        parts, size = [], 0
        for chunk in template.generate(context):
            size += len(chunk.encode("utf-8"))
            if size > limit_bytes:
                raise SecurityError(f"{what} is over {limit_bytes} bytes")
            parts.append(chunk)
        return "".join(parts)
    finally:
        _budget.reset(token)
