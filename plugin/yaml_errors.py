"""YAML syntax errors in a marketer's words, pointing at the line to fix: "a tab is not allowed
for indentation: use spaces", "this text contains a colon: put it in quotes", not the parser's
"mapping values are not allowed here"."""
from __future__ import annotations

import re

import yaml

JINJA_UNQUOTED = 'a value starting with {{ must be in quotes: write "..." around the whole text'
_CLOSERS = {"flow sequence": ("[", "]"), "flow mapping": ("{", "}")}


def _line(text: str, n: int) -> str:
    lines = text.split("\n")
    return lines[n] if 0 <= n < len(lines) else ""


def _at(mark) -> tuple[int, int]:
    return (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)


def explain(exc: yaml.MarkedYAMLError, text: str) -> tuple[int, int, str]:
    """(line, column, message) for a YAML syntax error in ``text``."""
    problem, context = exc.problem or "", exc.context or ""
    mark, start = exc.problem_mark, exc.context_mark
    line, col = _at(mark or start)
    here = _line(text, line - 1)
    jinja = re.search(r":\s+(\{\{)", here)
    if jinja:
        return line, jinja.start(1) + 1, JINJA_UNQUOTED
    if "'\\t'" in problem:
        return line, col, "a tab is not allowed in YAML's indentation or between a key and its value: use spaces"
    for what, (opener, closer) in _CLOSERS.items():
        if what in context and start is not None and ("<stream end>" in problem or start.line != mark.line):
            sline, scol = _at(start)
            return sline, scol, (f"the {opener} opened here is never closed: add {closer} at the end of the value, "
                                 f"or put the text in quotes if the {opener} is part of it")
    if "mapping values are not allowed" in problem or ("flow mapping" in context and "':'" in problem):
        before = here[:col - 1]
        if "flow mapping" in context or ": " in before or before.rstrip().endswith(":"):
            return line, col, ('this text contains a colon: put the whole value in quotes, e.g. '
                               'subject: "Sale: 20% off"')
        return line, col, "this line is indented more than the line above: line its key up with the keys above it"
    if "quoted scalar" in context and start is not None:
        sline, scol = _at(start)
        quote = _line(text, start.line)[start.column:start.column + 1] or '"'
        return sline, scol, f"the {quote} opened here is never closed: end the text with {quote}"
    if "cannot start any token" in problem:
        char = problem.split("'")[1] if "'" in problem else "this character"
        return line, col, f"a value cannot start with {char}: put the whole value in quotes, e.g. \"{here[col - 1:].strip()}\""
    if "undefined alias" in problem:
        return line, col, "* starts a reference to an &anchor that is not defined: put the value in quotes if * is part of it"
    if "<block end>" in problem or "expected key" in problem or "expected ':'" in problem:
        if "'<scalar>'" in problem and ("'" in here or '"' in here):
            return line, col, ("a quote inside the value ends it early: put the whole value in double quotes, "
                               "e.g. name: \"it's here\"")
        if "'-'" in problem:
            return line, col, "a list item (-) where a key was expected: check this line's indentation"
        return line, col, "this line's indentation does not line up with the lines above: indent it like the other keys at its level"
    return line, col, f"this is not valid YAML here ({problem or exc})"
