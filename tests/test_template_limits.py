"""Email templates are merchant data: a render has size, exponent and loop limits, so a template
bomb is a TemplateError in milliseconds (a failed touch), never a stalled worker or a full memory.
`rules lint` renders every email against a sample customer, so these fail at lint time."""
from __future__ import annotations

import time

import pytest

from plugin.mail import TemplateError, render
from plugin.mail.render import MAX_BODY_BYTES, MAX_SUBJECT_BYTES
from plugin.mail.sandbox import MAX_LOOP_ITEMS, MAX_TEXT
from plugin.rulefile import lint

CONTEXT = {"customer": {"first_name": "Ana", "last_name": None, "email": "ana@example.com", "locale": "en"},
           "coupon": {"code": "WELCOME-7K2Q9M", "discount": "10%", "expires_at": "24 December 2026"},
           "shop": {"name": "Keepwell Coffee", "url": "https://shop.example"}, "referral_link": None,
           "unsubscribe_url": "https://keepwell.example/unsubscribe/t"}

BOMBS = {
    "string times a billion": ("{{ 'x' * 1000000000 }}", "limited to"),
    "list times a billion": ("{{ ([1] * 1000000000)|length }}", "limited to"),
    "a billion times a string": ("{{ 1000000000 * 'x' }}", "limited to"),
    "huge power": ("{{ 10 ** 100000 }}", "exponents above"),
    "doubling with ~": ("{% set ns = namespace(s='x') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}"
                        "{% endfor %}{{ ns.s|length }}", "limited to"),
    "doubling with +": ("{% set ns = namespace(s=['x']) %}{% for i in range(64) %}{% set ns.s = ns.s + ns.s %}"
                        "{% endfor %}{{ ns.s|length }}", "limited to"),
    "nested ranges": ("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
                      f"more than {MAX_LOOP_ITEMS} times"),
    "nested loops over strings": ("{% set s = 'x' * 500000 %}{% for a in s %}{% for b in s %}{% endfor %}{% endfor %}",
                                  f"more than {MAX_LOOP_ITEMS} times"),
    "center filter": ("{{ 'x'|center(1000000000) }}", "width"),
    "indent filter": ("{{ ('x\n' * 100000)|indent(100000) }}", "width"),
    "ljust method": ("{{ 'x'.ljust(1000000000) }}", "limited to"),
    "format method width": ("{{ '{:>1000000000}'.format(1) }}", "width or precision"),
    "percent width": ("{{ '%1000000000s' % 1 }}", "width or precision"),
    "format filter width": ("{{ '%.1000000000f'|format(1) }}", "width or precision"),
    "replace filter": ("{{ ('x' * 100000)|replace('', 'y' * 100000) }}", "limited to"),
    "replace method": ("{{ ('x' * 100000).replace('x', 'y' * 100000) }}", "limited to"),
    "join method": ("{{ ('y' * 100000).join(range(100000)|map('string')|list) }}", "limited to"),
    "join filter": ("{{ range(100000)|map('string')|join('y' * 100000) }}", "limited to"),
    "expandtabs": ("{{ ('\t' * 100000).expandtabs(100000) }}", "limited to"),
    "output over the body limit": ("{% for i in range(10000) %}{{ 'x' * 100 }}{% endfor %}", f"over {MAX_BODY_BYTES} bytes"),
    "lipsum": ("{{ lipsum(100000) }}", "'lipsum' is undefined"),
}


def templates(html: str, text: str = "Hi {{ customer.first_name }}") -> dict[str, str]:
    return {"t.html": html, "t.txt": text}


@pytest.mark.parametrize("body, problem", BOMBS.values(), ids=BOMBS.keys())
def test_a_template_bomb_is_a_template_error_in_milliseconds(body, problem):
    started = time.monotonic()
    with pytest.raises(TemplateError, match=problem) as caught:
        render("t", "Hi", CONTEXT, templates=templates(body))
    assert time.monotonic() - started < 5  # milliseconds; the bound leaves room for a loaded machine
    assert caught.value.template == "t.html"


def test_the_subject_is_limited_to_1_kb_and_the_text_part_like_the_html_part():
    with pytest.raises(TemplateError, match=f"the subject is over {MAX_SUBJECT_BYTES} bytes"):
        render("t", "{{ 'é' * 513 }}", CONTEXT, templates=templates("<p>Hi</p>"))  # 1,026 bytes in UTF-8
    assert render("t", "{{ 'é' * 512 }}", CONTEXT, templates=templates("<p>Hi</p>")).subject == "é" * 512
    with pytest.raises(TemplateError, match=f"t.txt is over {MAX_BODY_BYTES} bytes") as caught:
        render("t", "Hi", CONTEXT, templates=templates("<p>Hi</p>", "{{ 'x' * 500000 }}{{ 'y' * 30000 }}"))
    assert caught.value.template == "t.txt"


def test_ordinary_templates_still_render():
    html = ("{% for i in range(3) %}{{ loop.index }}/{{ loop.length }}{% if loop.last %}!{% endif %}{% endfor %} "
            "{{ ['a', 'b']|join(', ') }} {{ '%5.2f' % 3.14159 }} {{ '{:>6}'.format('x') }} {{ 'ab' * 3 }} "
            "{{ 2 ** 10 }} {{ customer.first_name|center(9) }} {{ ('x' ~ 'y') }} "
            "{% for k, v in {'a': 1}.items() %}{{ k }}={{ v }}{% endfor %} {{ 'a-b'.replace('-', '+') }}")
    out = render("t", "Hello {{ customer.first_name }}", CONTEXT, templates=templates(html)).html
    assert out == "1/32/33/3! a, b  3.14      x ababab 1024    Ana    xy a=1 a+b"
    big = "{{ 'x' * %d }}" % MAX_TEXT
    assert len(render("t", "Hi", CONTEXT, templates=templates(big)).html) == MAX_TEXT


def _rule(subject: str, template: str = "thanks") -> str:
    return ("rules:\n  - id: thanks\n    trigger: order.paid\n    actions:\n"
            "      - coupon: {discount: 10%, expires_in: 14d, code_prefix: THANKS}\n"
            f"      - email:\n          template: {template}\n          subject: \"{subject}\"\n")


def test_lint_renders_every_email_against_a_sample_customer(tmp_path):
    folder = tmp_path / "templates"
    folder.mkdir()
    (folder / "thanks.html").write_text("<p>Hi {{ customer.first_name }}, use {{ coupon.code }}</p>\n"
                                        "<p>{{ 'x' * 1000000000 }}</p>\n")
    (folder / "thanks.txt").write_text("Hi {{ customer.nickname }}\n")
    path = tmp_path / "rules.yaml"
    path.write_text(_rule("{{ 'y' * 2000 }}"))
    ruleset, problems = lint([path], folder)
    assert ruleset is None
    assert [str(p) for p in problems] == [
        f"{path}:8:11: [thanks] subject: the subject is over {MAX_SUBJECT_BYTES} bytes",
        f"{folder}/thanks.html:2:1: [thanks] renders with an error: * would make a value of 1000000000 items; "
        f"templates are limited to {MAX_TEXT}",
        f"{folder}/thanks.txt:1:16: [thanks] unknown variable 'customer.nickname'; customer has customer.first_name, "
        "customer.last_name, customer.email, customer.locale",
    ]
    (folder / "thanks.html").write_text("<p>Hi {{ customer.first_name }}, use {{ coupon.code }}</p>\n")
    path.write_text(_rule("Thanks, {{ customer.first_name }}"))
    _, problems = lint([path], folder)
    assert [str(p) for p in problems] == [
        f"{folder}/thanks.txt:1:16: [thanks] unknown variable 'customer.nickname'; customer has customer.first_name, "
        "customer.last_name, customer.email, customer.locale"]
    (folder / "thanks.txt").write_text("Hi {{ customer.first_name }}, use {{ coupon.code }} by {{ coupon.expires_at }}\n")
    ruleset, problems = lint([path], folder)
    assert problems == [] and ruleset is not None
