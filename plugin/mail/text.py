"""Render a text message (SMS) from its template (``NAME.sms.txt``) in the same sandbox, with the same
variables, as emails (plugin.mail): ``{{ coupon.code }}``, ``{{ customer.first_name }}``, ... The
text is plain: no HTML escaping; runs of spaces and blank lines at its ends are trimmed."""
from __future__ import annotations

from pathlib import Path

from plugin.mail.render import TEMPLATES_DIR, _dict_environment, _environment, _template_error
from plugin.mail.sandbox import render_limited

#: The longest text Twilio takes (characters); longer bodies are refused by the provider.
MAX_BODY_CHARS = 1600


def template_file(name: str) -> str:
    return f"{name}.sms.txt"


def render_sms(name: str, context: dict, templates: dict[str, str] | None = None,
               templates_dir: Path | str = TEMPLATES_DIR) -> str:
    """The message ``NAME.sms.txt`` renders to; plugin.mail.TemplateError names the file and line."""
    env = _dict_environment(tuple(sorted(templates.items()))) if templates is not None else _environment(str(templates_dir))
    file = template_file(name)
    try:
        text = render_limited(env.get_template(file), context, MAX_BODY_CHARS * 4, file)
    except Exception as exc:  # templates are merchant data: any failure is theirs to fix
        raise _template_error(exc, file) from exc
    return "\n".join(line.rstrip() for line in text.strip().splitlines())
