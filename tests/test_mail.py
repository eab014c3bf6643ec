"""plugin/mail: templates render in a sandbox, messages are well-formed UTF-8 with one-click
unsubscribe, tokens are tamper-proof, and send() talks to a real SMTP server (aiosmtpd)."""
from __future__ import annotations

import contextlib
import email
import hashlib
import ipaddress
import socket
import ssl
import threading
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from email import policy

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from plugin.engine.state import CustomerState
from plugin.errors import DeliveryError
from plugin.events import Money
from plugin.mail import (TEMPLATES_DIR, Rendered, TemplateError, UnsubscribeTokenError, build_message,
                         email_context, parse_smtp_url, render, send, unsubscribe_token,
                         verify_unsubscribe_token)

SHOP = {"name": "Café Lumière", "url": "https://cafe-lumiere.example", "access_token": "shpat_secret"}
UNSUB = "https://keepwell.example.com/unsubscribe/" + "x" * 120  # long enough to need folding
FROM = "Café Lumière <hello@cafe-lumiere.example>"
KEY = "cafe-lumiere.myshopify.com:icebreaker:1001:order.paid:5001:1"

# a coupon action as the worker reads it back from the ledger (Decision.to_dict)
COUPON_JSON = {
    "type": "coupon", "key": KEY[:-1] + "0", "code": "THANKS-MFRGGZDFMZ", "title": "Icebreaker THANKS-MFRGGZDFMZ",
    "discount_type": "percent", "value": "15", "currency": None,
    "expires_at": "2026-12-24T15:37:00+00:00", "starts_at": "2026-12-10T15:37:00+00:00",
    "minimum_subtotal": {"amount": "30", "currency": "USD"}, "products": [], "collections": [],
    "customer_id": "1001", "email": "yamada@example.jp", "usage_limit": 1, "once_per_customer": True,
}


def customer(first="Taro", last="Yamada", locale="ja", mail="yamada@example.jp"):
    return {"first_name": first, "last_name": last, "email": mail, "locale": locale}


def shipped_templates():
    names = {p.stem for p in TEMPLATES_DIR.glob("*.html") if not p.name.startswith("_")}
    return sorted(n for n in names if (TEMPLATES_DIR / f"{n}.txt").exists())


# --- rendering ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name", shipped_templates())
@pytest.mark.parametrize("coupon", [COUPON_JSON, None], ids=["coupon", "no-coupon"])
def test_every_shipped_template_renders(name, coupon):
    ctx = email_context(customer(), coupon, SHOP, UNSUB, "https://cafe-lumiere.example/?ref=REF3F9K2A7")
    out = render(name, "{{ customer.first_name or 'friend' }}, hello from {{ shop.name }}", ctx)
    assert out.subject == "Taro, hello from Café Lumière"
    for body in (out.html, out.text):
        assert "Café Lumière" in body and UNSUB in body
        assert ("THANKS-MFRGGZDFMZ" in body) == (coupon is not None)
        assert ("24 December 2026" in body) == (coupon is not None)
    assert out.html.lstrip().startswith("<!doctype html>")
    assert "<title>Taro, hello from Café Lumière</title>" in out.html
    if coupon:
        assert "15% off orders over 30.00 USD, valid until 24 December 2026." in out.text


def test_shipped_subjects_render():
    ctx = email_context(customer(first=None), None, SHOP, UNSUB)
    assert render("winback", "It has been a while, {{ customer.first_name or 'friend' }}: 20% off", ctx).subject \
        == "It has been a while, friend: 20% off"
    assert render("welcome", "Welcome{% if customer.first_name %}, {{ customer.first_name }}{% endif %}!", ctx).subject \
        == "Welcome!"


@pytest.mark.parametrize("locale, direction", [("ar", "rtl"), ("he-IL", "rtl"), ("ja", "ltr"), (None, "ltr")])
def test_right_to_left_locales(locale, direction):
    ctx = email_context(customer(first="محمد", locale=locale), COUPON_JSON, SHOP, UNSUB)
    out = render("icebreaker", "{{ customer.first_name }}", ctx)
    assert f'dir="{direction}"' in out.html
    assert f'lang="{locale or "en"}"' in out.html


def test_html_is_escaped_text_and_subject_are_not():
    ctx = email_context(customer(first='<b>Tom & "Jerry"</b>'), None, SHOP, UNSUB)
    out = render("winback", "Hi {{ customer.first_name }}", ctx)
    assert "&lt;b&gt;Tom &amp; &#34;Jerry&#34;&lt;/b&gt;" in out.html and "<b>Tom" not in out.html
    assert '<b>Tom & "Jerry"</b>' in out.text
    assert out.subject == 'Hi <b>Tom & "Jerry"</b>'


def test_subject_cannot_inject_headers():
    ctx = email_context(customer(first="Eve\r\nBcc: victim@example.com\n"), None, SHOP, UNSUB)
    out = render("welcome", "Welcome, {{ customer.first_name }}\n", ctx)
    assert out.subject == "Welcome, Eve Bcc: victim@example.com"


def test_typo_names_template_and_line(tmp_path):
    (tmp_path / "_coupon.html").write_text("{% if coupon %}\n<p>{{ coupon.cod }}</p>{% endif %}\n")
    (tmp_path / "promo.html").write_text("<p>Hi</p>\n<p>{{ custmer.first_name }}</p>\n")
    (tmp_path / "promo.txt").write_text("Hi\n{% include '_coupon.html' %}\n")
    ctx = email_context(customer(), COUPON_JSON, SHOP, UNSUB)
    with pytest.raises(TemplateError) as err:
        render("promo", "Hi", ctx, templates_dir=tmp_path)
    assert (err.value.template, err.value.line) == ("promo.html", 2)
    assert "custmer" in str(err.value) and "promo.html, line 2" in str(err.value)

    (tmp_path / "promo.html").write_text("<p>Hi</p>\n")
    with pytest.raises(TemplateError) as err:  # the mistake is in the included partial
        render("promo", "Hi", ctx, templates_dir=tmp_path)
    assert (err.value.template, err.value.line) == ("_coupon.html", 2)


def test_syntax_error_names_template_and_line(tmp_path):
    (tmp_path / "promo.html").write_text("<p>Hi</p>\n\n{% if customer.first_name %}oops\n")
    (tmp_path / "promo.txt").write_text("Hi\n")
    with pytest.raises(TemplateError) as err:
        render("promo", "Hi", email_context(customer(), None, SHOP, UNSUB), templates_dir=tmp_path)
    assert err.value.template == "promo.html" and err.value.line == 3


def test_subject_typo_and_missing_template():
    ctx = email_context(customer(), None, SHOP, UNSUB)
    with pytest.raises(TemplateError, match="subject of welcome, line 1: 'custmer' is undefined"):
        render("welcome", "Hi {{ custmer.first_name }}", ctx)
    with pytest.raises(TemplateError, match="no_such_template.html"):
        render("no_such_template", "Hi", ctx)


@pytest.mark.parametrize("subject", ["{{ ''.__class__.__mro__ }}", "{{ shop.update({'name': 'x'}) }}",
                                     "{{ customer.__init__.__globals__ }}"])
def test_templates_run_in_a_sandbox(subject):
    with pytest.raises(TemplateError):
        render("welcome", subject, email_context(customer(), None, SHOP, UNSUB))


# --- context -----------------------------------------------------------------------------------

def test_context_from_json_coupon_and_customer_state():
    state = CustomerState(shop="cafe-lumiere.myshopify.com", customer_id="1001", email="salma@example.com",
                          first_name="سلمى", last_name="الحسيني", locale="ar")
    ctx = email_context(state, COUPON_JSON, SHOP, UNSUB, None)
    assert ctx["customer"] == {"first_name": "سلمى", "last_name": "الحسيني", "email": "salma@example.com", "locale": "ar"}
    assert ctx["coupon"] == {"code": "THANKS-MFRGGZDFMZ", "title": "Icebreaker THANKS-MFRGGZDFMZ", "discount": "15%",
                             "expires_at": "24 December 2026", "minimum_subtotal": "30.00 USD"}
    assert ctx["shop"] == {"name": "Café Lumière", "url": "https://cafe-lumiere.example", "postal_address": None}  # no access token
    assert ctx["referral_link"] is None and ctx["unsubscribe_url"] == UNSUB


def test_context_from_native_coupon():
    native = {**COUPON_JSON, "discount_type": "fixed", "value": Decimal("10"), "currency": "USD",
              "expires_at": datetime(2027, 1, 5, 23, 30, tzinfo=timezone(timedelta(hours=-5))),
              "minimum_subtotal": Money(Decimal("49.9"), "USD")}
    coupon = email_context(customer(), native, SHOP, UNSUB)["coupon"]
    assert (coupon["discount"], coupon["expires_at"], coupon["minimum_subtotal"]) == \
        ("10.00 USD", "6 January 2027", "49.90 USD")  # expiry shown as its UTC date


@pytest.mark.parametrize("value, currency, shown", [("12.50", None, "12.5%"), ("100", None, "100%"),
                                                    ("500", "JPY", "500 JPY"), ("5.5", "eur", "5.50 EUR")])
def test_discount_formats(value, currency, shown):
    action = {**COUPON_JSON, "discount_type": "fixed" if currency else "percent", "value": value,
              "currency": currency, "expires_at": None, "minimum_subtotal": None}
    coupon = email_context(customer(), action, SHOP, UNSUB)["coupon"]
    assert coupon["discount"] == shown and coupon["expires_at"] is None and coupon["minimum_subtotal"] is None


# --- messages ----------------------------------------------------------------------------------

def rendered_for(first, last, locale, mail):
    ctx = email_context(customer(first, last, locale, mail), COUPON_JSON, SHOP, UNSUB)
    return render("icebreaker", "{{ customer.first_name or 'Hello' }}, 15% off your next order", ctx)


def expected_id(key=KEY):
    return f"<{hashlib.sha256(key.encode()).hexdigest()[:32]}@cafe-lumiere.example>"


def parse(raw: bytes):
    return email.message_from_bytes(raw, policy=policy.default)


def check_message(msg, first, last, mail):
    assert msg["Subject"] == f"{first}, 15% off your next order"
    assert msg["To"].addresses[0].display_name == f"{first} {last}"
    assert msg["To"].addresses[0].addr_spec == mail
    assert msg["Message-ID"] == expected_id()
    assert msg["List-Unsubscribe"] == f"<{UNSUB}>, <mailto:unsubscribe@keepwell.example.com?subject=1001>"
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert msg["Date"].datetime.tzinfo is not None
    assert msg.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in msg.iter_parts()] == ["text/plain", "text/html"]  # the last is preferred
    for part in msg.iter_parts():
        assert part.get_content_charset() == "utf-8"
        body = part.get_content()
        assert first in body and "THANKS-MFRGGZDFMZ" in body and "24 December 2026" in body


@pytest.mark.parametrize("first, last, locale, mail", [("محمد", "الأحمد", "ar", "m.alahmad@example.com"),
                                                       ("太郎", "山田", "ja", "yamada@example.jp")])
def test_build_message_utf8(first, last, locale, mail):
    msg = build_message(rendered_for(first, last, locale, mail), (f"{first} {last}", mail), FROM, KEY, UNSUB,
                        "mailto:unsubscribe@keepwell.example.com?subject=1001")
    raw = msg.as_bytes()
    assert raw.isascii()  # 7-bit clean: any relay takes it
    assert max(len(line) for line in raw.splitlines()) <= 998
    assert b"List-Unsubscribe: <https://" in raw  # a URL, not an encoded word
    check_message(parse(raw), first, last, mail)
    if locale == "ar":
        assert 'dir="rtl"' in parse(raw).get_body(("html",)).get_content()


def test_message_id_is_stable_across_retries():
    r = rendered_for("Taro", "Yamada", "ja", "yamada@example.jp")
    a = build_message(r, "yamada@example.jp", FROM, KEY, UNSUB)
    b = build_message(r, "yamada@example.jp", FROM, KEY, UNSUB)
    c = build_message(r, "yamada@example.jp", FROM, KEY + "x", UNSUB)
    assert a["Message-ID"] == b["Message-ID"] == expected_id() != c["Message-ID"]


def test_display_name_cannot_inject_headers():
    msg = build_message(Rendered("Hi", "<p>Hi</p>", "Hi"), ("Eve\r\nBcc: victim@example.com", "eve@example.com"),
                        FROM, KEY, UNSUB)
    parsed = parse(msg.as_bytes())
    assert parsed["Bcc"] is None and parsed["To"].addresses[0].addr_spec == "eve@example.com"


@pytest.mark.parametrize("url, mailto", [("javascript:alert(1)", None), ("https://x.example/u/a b", None),
                                         (UNSUB, "https://not-a-mailto.example")])
def test_bad_unsubscribe_links_are_refused(url, mailto):
    with pytest.raises(ValueError):
        build_message(Rendered("Hi", "<p>Hi</p>", "Hi"), "a@example.com", FROM, KEY, url, mailto)


# --- unsubscribe tokens ------------------------------------------------------------------------

def test_unsubscribe_token_round_trip_and_rotation():
    token = unsubscribe_token("old-secret", "cafe-lumiere.myshopify.com", "gid://shopify/Customer/1001")
    assert all(c.isalnum() or c in "-_." for c in token)  # safe in a URL path as is
    assert verify_unsubscribe_token("old-secret", token) == ("cafe-lumiere.myshopify.com", "gid://shopify/Customer/1001")
    assert verify_unsubscribe_token(["new-secret", "old-secret"], token)[1] == "gid://shopify/Customer/1001"
    unicode = unsubscribe_token("s", "shop.example", "عميل-1")
    assert verify_unsubscribe_token(["s"], unicode) == ("shop.example", "عميل-1")


def test_unsubscribe_token_refuses_foreign_and_tampered_tokens():
    from plugin.mail.unsubscribe import legacy_token  # the readable format of emails already sent

    token = legacy_token("secret", "cafe-lumiere.myshopify.com", "1001")
    other = legacy_token("secret", "cafe-lumiere.myshopify.com", "1002")
    payload, _, signature = token.partition(".")
    forged = [
        unsubscribe_token("someone-elses-secret", "cafe-lumiere.myshopify.com", "1001"),
        other.partition(".")[0] + "." + signature,  # another customer's payload, this signature
        payload + "." + signature[:-2] + ("AA" if not signature.endswith("AA") else "BB"),
        payload, payload + ".", "", "not a token", "é.é", token + "x",
        unsubscribe_token("secret", "cafe-lumiere.myshopify.com", "1001")[:-3] + "xyz",
    ]
    for bad in forged:
        with pytest.raises(UnsubscribeTokenError):
            verify_unsubscribe_token(["secret"], bad)
    with pytest.raises(ValueError):
        unsubscribe_token("", "shop", "1")


# --- sending over real SMTP --------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Collector:
    """An aiosmtpd handler that keeps what it receives, or answers ``rcpt``/``data`` replies."""

    def __init__(self, rcpt: str | None = None, data: str | None = None):
        self.rcpt, self.data, self.envelopes = rcpt, data, []

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.rcpt:
            return self.rcpt
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.data:
            return self.data
        self.envelopes.append(envelope)
        return "250 Message accepted"


class Logins:
    def __init__(self):
        self.seen = []

    def __call__(self, server, session, envelope, mechanism, auth_data):
        self.seen.append((auth_data.login.decode(), auth_data.password.decode()))
        # handled=False: let the server answer 535 itself on a wrong password
        return AuthResult(success=self.seen[-1] == ("shop@example.com", "p@ss:w/rd%1"), handled=False)


@contextlib.contextmanager
def smtp_server(handler, **kwargs):
    controller = Controller(handler, hostname="127.0.0.1", port=free_port(), **kwargs)
    controller.start()
    try:
        yield controller.port
    finally:
        controller.stop()


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    """A server SSLContext with a fresh self-signed certificate for localhost / 127.0.0.1."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.now(timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    folder = tmp_path_factory.mktemp("tls")
    (folder / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                       serialization.NoEncryption()))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(folder / "cert.pem", folder / "key.pem")
    return context


def arabic_message():
    return build_message(rendered_for("محمد", "الأحمد", "ar", "m.alahmad@example.com"),
                         ("محمد الأحمد", "m.alahmad@example.com"), FROM, KEY, UNSUB,
                         "mailto:unsubscribe@keepwell.example.com?subject=1001")


CREDS = "shop%40example.com:p%40ss%3Aw%2Frd%251"


def test_send_plain_smtp():
    handler = Collector()
    japanese = build_message(rendered_for("太郎", "山田", "ja", "yamada@example.jp"), ("太郎 山田", "yamada@example.jp"),
                             FROM, KEY, UNSUB, "mailto:unsubscribe@keepwell.example.com?subject=1001")
    with smtp_server(handler) as port:
        assert send(arabic_message(), f"smtp://127.0.0.1:{port}", timeout=5) == expected_id()
        assert send(japanese, f"smtp://127.0.0.1:{port}", timeout=5) == expected_id()
    first, second = handler.envelopes
    assert first.mail_from == "hello@cafe-lumiere.example" and first.rcpt_tos == ["m.alahmad@example.com"]
    check_message(parse(first.content), "محمد", "الأحمد", "m.alahmad@example.com")
    check_message(parse(second.content), "太郎", "山田", "yamada@example.jp")


def test_send_starttls_with_login(tls):
    handler, logins = Collector(), Logins()
    with smtp_server(handler, tls_context=tls, require_starttls=True, authenticator=logins, auth_required=True) as port:
        send(arabic_message(), f"smtp+starttls://{CREDS}@127.0.0.1:{port}?verify=false", timeout=5)
        with pytest.raises(DeliveryError) as err:  # a self-signed certificate is refused unless told otherwise
            send(arabic_message(), f"smtp+starttls://{CREDS}@127.0.0.1:{port}", timeout=5)
        assert "CERTIFICATE_VERIFY_FAILED" in str(err.value)
    assert logins.seen == [("shop@example.com", "p@ss:w/rd%1")]  # percent-decoded
    check_message(parse(handler.envelopes[0].content), "محمد", "الأحمد", "m.alahmad@example.com")


def test_send_smtps_with_login(tls):
    handler, logins = Collector(), Logins()
    # aiosmtpd does not count implicit TLS as TLS for AUTH, hence auth_require_tls=False
    with smtp_server(handler, ssl_context=tls, authenticator=logins, auth_require_tls=False) as port:
        assert send(arabic_message(), f"smtps://{CREDS}@127.0.0.1:{port}?verify=false", timeout=5) == expected_id()
        with pytest.raises(DeliveryError) as err:  # a wrong password: our setup, so retried later
            send(arabic_message(), f"smtps://shop%40example.com:wrong@127.0.0.1:{port}?verify=false", timeout=5)
        assert err.value.retryable and "535" in str(err.value)
    assert len(handler.envelopes) == 1 and logins.seen[0] == ("shop@example.com", "p@ss:w/rd%1")


@pytest.mark.parametrize("handler, retryable, code", [
    (Collector(rcpt="550 5.1.1 No such user"), False, "550"),
    (Collector(rcpt="451 4.3.0 Try again later"), True, "451"),
    (Collector(data="554 5.7.1 Message rejected"), False, "554"),
    (Collector(data="452 4.3.1 Insufficient storage"), True, "452"),
])
def test_smtp_replies_decide_retry(handler, retryable, code):
    with smtp_server(handler) as port:
        with pytest.raises(DeliveryError) as err:
            send(arabic_message(), f"smtp://127.0.0.1:{port}", timeout=5)
    assert err.value.retryable is retryable and code in str(err.value)
    assert handler.envelopes == []


def test_server_down_is_retryable():
    with pytest.raises(DeliveryError) as err:
        send(arabic_message(), f"smtp://127.0.0.1:{free_port()}", timeout=2)
    assert err.value.retryable


def test_silent_server_times_out_retryable():
    with socket.socket() as listener:  # accepts connections (backlog) but never greets
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        with pytest.raises(DeliveryError) as err:
            send(arabic_message(), f"smtp://127.0.0.1:{listener.getsockname()[1]}", timeout=0.3)
    assert err.value.retryable


def test_server_hanging_up_is_retryable():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()

        def hang_up():
            conn, _ = listener.accept()
            conn.close()

        thread = threading.Thread(target=hang_up)
        thread.start()
        with pytest.raises(DeliveryError) as err:
            send(arabic_message(), f"smtp://127.0.0.1:{listener.getsockname()[1]}", timeout=2)
        thread.join()
    assert err.value.retryable


def test_parse_smtp_url():
    s = parse_smtp_url(f"smtp+starttls://{CREDS}@mail.example.com")
    assert (s.scheme, s.host, s.port, s.username, s.password, s.verify) == \
        ("smtp+starttls", "mail.example.com", 587, "shop@example.com", "p@ss:w/rd%1", True)
    s = parse_smtp_url("smtps://mail.example.com?verify=false")
    assert (s.port, s.username, s.password, s.verify) == (465, None, None, False)
    assert parse_smtp_url("smtp://127.0.0.1:8025").port == 8025
    for bad in ("http://mail.example.com", "smtp://", "mail.example.com:25"):
        with pytest.raises(ValueError, match="SMTP_URL"):
            parse_smtp_url(bad)
