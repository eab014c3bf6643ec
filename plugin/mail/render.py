"""Render an email's subject, HTML and text from merchant-editable Jinja templates, in a sandbox."""
from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import jinja2

from plugin.errors import KeepwellError
from plugin.mail.sandbox import BoundedSandbox, render_limited

TEMPLATES_DIR = Path(__file__).resolve().parents[2] / "rules" / "templates"  # the shipped ones
MAX_SUBJECT_BYTES = 1024
MAX_BODY_BYTES = 512 * 1024  # each of the HTML and the text part


class TemplateError(KeepwellError):
    """An email template failed to render; names the template and line."""

    def __init__(self, template: str, line: int | None, message: str):
        self.template = template
        self.line = line
        self.message = message
        where = f"{template}, line {line}" if line else template
        super().__init__(f"email template {where}: {message}")


@dataclass(frozen=True, slots=True)
class Rendered:
    """A rendered email: one-line subject, HTML body, plain-text body."""

    subject: str
    html: str
    text: str


@functools.lru_cache(maxsize=32)
def _environment(templates_dir: str) -> BoundedSandbox:
    return BoundedSandbox(
        loader=jinja2.FileSystemLoader(templates_dir),
        # escape HTML bodies only: the subject and text part are plain text, "O'Brien" stays as is
        autoescape=jinja2.select_autoescape(enabled_extensions=("html",), default_for_string=False),
        undefined=jinja2.StrictUndefined,  # a typo in a template fails loudly instead of sending a blank
    )


@functools.lru_cache(maxsize=32)
def _dict_environment(items: tuple) -> BoundedSandbox:
    env = _environment.__wrapped__(".")
    env.loader = jinja2.DictLoader(dict(items))
    return env


@functools.lru_cache(maxsize=256)
def _subject(env: BoundedSandbox, subject: str) -> jinja2.Template:
    """A compiled subject: a rule's subject is compiled once, not once per email."""
    return env.from_string(subject)


def _template_error(exc: Exception, name: str) -> TemplateError:
    """Locate ``exc`` in the template that raised it (Jinja rewrites tracebacks into template lines)."""
    if isinstance(exc, jinja2.TemplateSyntaxError):
        return TemplateError(exc.name or name, exc.lineno, exc.message or str(exc))
    line = None
    tb = exc.__traceback__
    while tb is not None:
        if "__jinja_exception__" in tb.tb_frame.f_globals:  # a frame standing for a template line
            filename = tb.tb_frame.f_code.co_filename
            name = name if filename == "<template>" else Path(filename).name
            line = tb.tb_lineno
        tb = tb.tb_next
    return TemplateError(name, line, str(exc) or type(exc).__name__)


def render(template: str, subject: str, context: dict, templates_dir: Path | str = TEMPLATES_DIR,
           templates: dict[str, str] | None = None) -> Rendered:
    """Render NAME.html, NAME.txt and the subject template in a sandbox; TemplateError on any problem,
    including a subject over MAX_SUBJECT_BYTES or a part over MAX_BODY_BYTES (see plugin.mail.sandbox
    for the limits inside a render). ``templates`` (file name -> text, e.g. a shop's stored rule set)
    takes precedence over the folder."""
    env = _dict_environment(tuple(sorted(templates.items()))) if templates is not None else _environment(str(templates_dir))
    try:
        subject_text = render_limited(_subject(env, subject), context, MAX_SUBJECT_BYTES, "the subject")
    except Exception as exc:  # templates are merchant data: any failure is theirs to fix
        raise _template_error(exc, f"subject of {template}") from exc
    # a subject spanning lines would inject headers; collapse all whitespace runs to one space
    subject_text = " ".join(subject_text.split())
    context = {**context, "subject": subject_text}
    parts = []
    for suffix in (".html", ".txt"):
        name = f"{template}{suffix}"
        try:
            parts.append(render_limited(env.get_template(name), context, MAX_BODY_BYTES, name))
        except Exception as exc:
            raise _template_error(exc, name) from exc
    return Rendered(subject=subject_text, html=parts[0], text=parts[1])
