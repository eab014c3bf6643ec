"""Links carry opaque tokens, an admin link opens one session only, and every admin response says
who may frame it (the shop's own Shopify admin, else nobody) and how browsers must treat it."""
from __future__ import annotations

import base64
import time
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest

from live import SHOPIFY_SECRET, start, stop
from plugin import mail
from plugin.admin_auth import admin_link

API_KEY = "sec-api-key"
SHOPIFY = "frame-test.myshopify.com"


@pytest.fixture
def live(redis_server, smtp, tmp_path):
    live = start(redis_server, f"sqlite:///{tmp_path}/keepwell.db", smtp, shopify_api_key=API_KEY)
    yield live
    stop(live)


def path(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def readable(token: str) -> str:
    """Everything a token shows without the key: its text and any base64 inside it, decoded."""
    shown = [token]
    for part in token.replace("?", ".").replace("&", ".").replace("=", ".").split("."):
        try:
            shown.append(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)).decode("latin-1"))
        except ValueError:
            pass
    return "\n".join(shown)


def session_token(domain: str) -> str:
    now = int(time.time())
    return jwt.encode({"iss": f"https://{domain}/admin", "dest": f"https://{domain}", "aud": API_KEY, "sub": "42",
                       "exp": now + 60, "nbf": now - 5, "iat": now - 5, "jti": "j1", "sid": "s1"},
                      SHOPIFY_SECRET, algorithm="HS256")


# --- opaque links --------------------------------------------------------------------------------

def test_admin_links_do_not_show_the_shop_id(live):
    shop_id, _ = live.add_shop("woocommerce", "https://a.example", consumer_key="ck", consumer_secret="cs")
    link = admin_link(live.config, shop_id, 60)
    assert shop_id not in readable(link) and "shop=" not in link


def test_unsubscribe_links_do_not_show_the_shop_or_customer_id(live):
    token = mail.unsubscribe_token(live.config.secret_key, "wo_3f9a1c2b7d4e", "7421852987654321123")
    assert "wo_3f9a1c2b7d4e" not in readable(token) and "7421852987654321123" not in readable(token)
    assert mail.verify_unsubscribe_token(live.config.secret_keys, token) == ("wo_3f9a1c2b7d4e", "7421852987654321123")


def test_unsubscribe_links_in_emails_already_sent_keep_working(live):
    from plugin.mail.unsubscribe import legacy_token

    old = legacy_token(live.config.secret_key, "wo_3f9a1c2b7d4e", "25")  # the readable format of earlier emails
    assert mail.verify_unsubscribe_token(live.config.secret_keys, old) == ("wo_3f9a1c2b7d4e", "25")
    tampered = old[:-2] + ("AA" if not old.endswith("AA") else "BB")
    with pytest.raises(mail.UnsubscribeTokenError):
        mail.verify_unsubscribe_token(live.config.secret_keys, tampered)


# --- single use ----------------------------------------------------------------------------------

def test_an_admin_link_opens_one_session_only(live):
    shop_id, _ = live.add_shop("woocommerce", "https://a.example", consumer_key="ck", consumer_secret="cs")
    link = path(admin_link(live.config, shop_id, 60))
    first = live.app.test_client()
    assert first.get(link).status_code == 302
    assert first.get("/admin").status_code == 200

    second = live.app.test_client()  # someone who found the link in a browser history or a log
    r = second.get(link)
    assert r.status_code == 401 and "already been used" in r.get_data(as_text=True)
    assert "Set-Cookie" not in r.headers
    assert second.get("/admin").status_code == 401
    assert first.get("/admin").status_code == 200  # the session it opened goes on


def test_a_tampered_admin_link_is_refused(live):
    shop_id, _ = live.add_shop("woocommerce", "https://a.example", consumer_key="ck", consumer_secret="cs")
    token = parse_qs(urlsplit(admin_link(live.config, shop_id, 60)).query)["link"][0]
    flipped = token[:20] + ("A" if token[20] != "A" else "B") + token[21:]
    assert live.app.test_client().get(f"/admin?link={flipped}").status_code == 401
    expired = path(admin_link(live.config, shop_id, -10))
    r = live.app.test_client().get(expired)
    assert r.status_code == 401 and "expired" in r.get_data(as_text=True)


# --- headers on every admin response ---------------------------------------------------------------

def assert_strict(r, ancestors: str):
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert r.headers["Referrer-Policy"] == "no-referrer"
    assert f"frame-ancestors {ancestors}" in r.headers["Content-Security-Policy"]


def test_shopify_admin_pages_may_be_framed_by_that_shops_admin_only(live):
    live.add_shop("shopify", SHOPIFY, access_token="shpat_x")
    client = live.app.test_client()
    r = client.get(f"/admin?id_token={session_token(SHOPIFY)}")
    assert r.status_code == 200
    assert_strict(r, f"https://{SHOPIFY} https://admin.shopify.com")
    r = client.get("/admin/api/report", headers={"Authorization": f"Bearer {session_token(SHOPIFY)}"})
    assert r.status_code == 200
    assert_strict(r, f"https://{SHOPIFY} https://admin.shopify.com")


def test_other_admin_pages_may_not_be_framed(live):
    shop_id, _ = live.add_shop("woocommerce", "https://a.example", consumer_key="ck", consumer_secret="cs")
    client = live.app.test_client()
    assert_strict(client.get(path(admin_link(live.config, shop_id, 60))), "'none'")
    for page in ("/admin", "/admin/rules", "/admin/activity", "/admin/static/admin.css"):
        r = client.get(page)
        assert r.status_code == 200, page
        assert_strict(r, "'none'")
    assert_strict(live.app.test_client().get("/admin"), "'none'")  # the 401 page too


def test_frame_ancestors_can_be_configured_for_other_shops(redis_server, smtp, tmp_path):
    live = start(redis_server, f"sqlite:///{tmp_path}/keepwell.db", smtp,
                 frame_ancestors="https://a.example")
    try:
        shop_id, _ = live.add_shop("woocommerce", "https://a.example", consumer_key="ck", consumer_secret="cs")
        client = live.app.test_client()
        client.get(path(admin_link(live.config, shop_id, 60)))
        assert_strict(client.get("/admin"), "https://a.example")
    finally:
        stop(live)


def test_customer_and_connect_pages_send_the_headers_too(live):
    token = mail.unsubscribe_token(live.config.secret_key, "wo_1", "25")
    for r in (live.app.test_client().get(f"/unsubscribe/{token}"), live.app.test_client().get("/woocommerce/connect")):
        assert_strict(r, "'none'")
