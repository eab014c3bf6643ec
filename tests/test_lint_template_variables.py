"""Lint knows every variable an email can use, per rule: a typo in a subject or a template file is
a problem at its file, line and column with a suggestion, not a failed send later."""
import pytest

from plugin.rulefile import RULES_DIR, lint

CUSTOMER = "customer has customer.first_name, customer.last_name, customer.email, customer.locale"


def lint_folder(tmp_path, rules: str, templates: dict[str, str]):
    folder = tmp_path / "templates"
    folder.mkdir(exist_ok=True)
    for name, text in templates.items():
        (folder / name).write_text(text)
    path = tmp_path / "rules.yaml"
    path.write_text(rules)
    ruleset, problems = lint([path], folder)
    return ruleset, [str(p).replace(str(tmp_path) + "/", "") for p in problems]


def rule(subject="Hello", trigger="order.paid", coupon=True, extra=""):
    actions = "      - coupon: {discount: 10%, expires_in: 30d}\n" if coupon else ""
    return (f"rules:\n  - id: thanks\n    trigger: {trigger}\n    actions:\n{actions}"
            f"      - email: {{template: thanks, subject: \"{subject}\"}}\n{extra}")


GOOD = {"thanks.html": "<p>Hi {{ customer.first_name }}</p>\n", "thanks.txt": "Hi {{ customer.first_name }}\n"}

CASES = [
    ("misspelled field in the subject", rule("Hi {{ customer.frist_name }}"), GOOD,
     [f"rules.yaml:6:60: [thanks] subject: unknown variable 'customer.frist_name' (did you mean 'customer.first_name'?); "
      f"{CUSTOMER}"]),
    ("misspelled field in a template file", rule(),
     {**GOOD, "thanks.txt": "Hello,\nHi {{ customer.frist_name }}\n"},
     [f"templates/thanks.txt:2:16: [thanks] unknown variable 'customer.frist_name' (did you mean 'customer.first_name'?); "
      f"{CUSTOMER}"]),
    ("item syntax is read too", rule(), {**GOOD, "thanks.html": "<p>{{ shop['nmae'] }}</p>"},
     ["templates/thanks.html:1:13: [thanks] unknown variable 'shop.nmae' (did you mean 'shop.name'?); "
      "shop has shop.name, shop.url, shop.postal_address"]),
    ("misspelled variable", rule(), {**GOOD, "thanks.txt": "{{ custmer.first_name }}"},
     ["templates/thanks.txt:1:4: [thanks] unknown variable 'custmer' (did you mean 'customer'?); emails see customer, "
      "coupon, shop, occasion, referral_link, unsubscribe_url, page_url, subject"]),
    ("a variable no email has", rule("Your order {{ order.name }}"), GOOD,
     ["rules.yaml:6:59: [thanks] subject: unknown variable 'order'; emails see customer, coupon, shop, occasion, "
      "referral_link, unsubscribe_url, page_url"]),
    ("the subject inside the subject", rule("{{ subject }}"), GOOD,
     ["rules.yaml:6:48: [thanks] subject: the subject cannot use {{ subject }} (it is the subject): use it in the "
      "email's body"]),
    ("a coupon field on a rule without a coupon", rule(coupon=False), {**GOOD, "thanks.txt": "Code: {{ coupon.code }}"},
     ["templates/thanks.txt:1:17: [thanks] coupon is empty here: this rule has no coupon action, so 'coupon.code' "
      "fails to render: put it inside {% if coupon %}...{% endif %}"]),
    ("an occasion field on an order rule", rule(), {**GOOD, "thanks.txt": "{{ occasion.title }}"},
     ["templates/thanks.txt:1:13: [thanks] occasion is empty here: this rule's trigger is order.paid, not an occasion, "
      "so 'occasion.title' fails to render: put it inside {% if occasion %}...{% endif %}"]),
    ("unknown filter", rule(), {**GOOD, "thanks.txt": "{{ customer.first_name | uper }}"},
     ["templates/thanks.txt:1:26: [thanks] unknown filter 'uper' (did you mean 'upper'?)"]),
    ("a typo in an included template is placed there", rule(),
     {**GOOD, "thanks.html": '{% include "_footer.html" %}', "_footer.html": "\n{{ shop.adress }}"},
     ["templates/_footer.html:2:9: [thanks] unknown variable 'shop.adress' (did you mean 'shop.postal_address'?); shop has shop.name, shop.url, "
      "shop.postal_address"]),
    ("a variant's own subject", rule(extra="    variants:\n      - name: a\n      - name: b\n"
                                           "        email: {subject: \"{{ coupon.discont }} off\"}\n"), GOOD,
     ["rules.yaml:10:37: [thanks] subject: unknown variable 'coupon.discont' (did you mean 'coupon.discount'?); "
      "coupon has coupon.code, coupon.title, coupon.discount, coupon.expires_at, coupon.minimum_subtotal"]),
]


@pytest.mark.parametrize("rules, templates, expected", [pytest.param(r, t, e, id=n) for n, r, t, e in CASES])
def test_unknown_variables_are_problems(tmp_path, rules, templates, expected):
    ruleset, problems = lint_folder(tmp_path, rules, templates)
    assert problems == expected
    assert ruleset is None


GUARDED = [
    ("if", "{% if coupon %}{{ coupon.code }}{% endif %}"),
    ("if not / else", "{% if not coupon %}none{% else %}{{ coupon.code }}{% endif %}"),
    ("and", "{{ coupon and coupon.code }}"),
    ("conditional expression", "{{ coupon.code if coupon else '' }}"),
    ("default", "{{ coupon.code | default('') }}"),
    ("local variables", "{% set c = {'a': 1} %}{{ c.a }}{% for x in [customer] %}{{ loop.index }}{{ x.email }}{% endfor %}"),
]


@pytest.mark.parametrize("body", [pytest.param(b, id=n) for n, b in GUARDED])
def test_guarded_and_local_uses_are_clean(tmp_path, body):
    ruleset, problems = lint_folder(tmp_path, rule(coupon=False), {**GOOD, "thanks.txt": body})
    assert problems == []
    assert ruleset is not None


def test_an_occasion_rule_sees_the_occasion(tmp_path):
    text = "{{ occasion.title }} for {{ occasion.recipient or 'you' }} on {{ occasion.date }}"
    _, problems = lint_folder(tmp_path, rule("{{ occasion.title }}", trigger="{occasion: birthday}"),
                              {**GOOD, "thanks.txt": text})
    assert problems == []


def test_shipped_templates_use_only_known_variables():
    ruleset, problems = lint(sorted(RULES_DIR.glob("*.yaml")))
    assert problems == [] and ruleset is not None
