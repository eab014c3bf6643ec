"""The merchant dashboard with Flask's test client: who may see which shop, and RTL mode."""
import re
import time
from datetime import datetime, timedelta, timezone
from urllib.parse import urlsplit

import jwt
import pytest
import responses
from click.testing import CliRunner

from plugin.admin_auth import admin_link
from plugin.db import DecisionRow
from sqlalchemy import select
from live import SHOPIFY_SECRET, start, stop

API_KEY = "dash-api-key"


@pytest.fixture
def live(redis_server, smtp, tmp_path):
    live = start(redis_server, f"sqlite:///{tmp_path}/keepwell.db", smtp, shopify_api_key=API_KEY)
    yield live
    stop(live)


def path(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def session_token(domain: str, exp_in: int = 60, secret: str = SHOPIFY_SECRET) -> str:
    now = int(time.time())
    return jwt.encode({"iss": f"https://{domain}/admin", "dest": f"https://{domain}", "aud": API_KEY, "sub": "42",
                       "exp": now + exp_in, "nbf": now - 5, "iat": now - 5, "jti": "j1", "sid": "s1"},
                      secret, algorithm="HS256")


def add_decision(live, shop_id, rule_id="welcome", customer_id="c1"):
    now = datetime.now(timezone.utc)
    with live.rt.sessions.begin() as s:
        row = DecisionRow(shop_id=shop_id, key=f"{shop_id}:{rule_id}:{customer_id}:e1:touch", rule_id=rule_id,
                          customer_id=customer_id, kind="touch", status="done", event_id="e1",
                          decision={"kind": "touch", "at": now.isoformat(), "rule_id": rule_id,
                                    "actions": [{"type": "coupon", "code": "WELCOME-ABC123"}]})
        s.add(row)
        s.flush()
        return row.id


def test_admin_link_opens_a_session_scoped_to_its_shop(live):
    a, _ = live.add_shop("woocommerce", "https://a.example", consumer_key="ck", consumer_secret="cs")
    b, _ = live.add_shop("woocommerce", "https://b.example", consumer_key="ck", consumer_secret="cs")
    decision_a = add_decision(live, a)
    client = live.app.test_client()
    r = client.get(path(admin_link(live.config, a, 60)))
    assert r.status_code == 302 and r.headers["Location"] in ("/admin", "/admin/")
    cookie = r.headers["Set-Cookie"]  # plain-http localhost: Lax, not Secure
    assert "HttpOnly" in cookie and "Path=/admin" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie
    r = live.app.test_client().get(path(admin_link(live.config, a, 60)), base_url="https://keepwell.test")
    cookie = r.headers["Set-Cookie"]  # inside the store admin's iframe: cross-site
    assert "HttpOnly" in cookie and "SameSite=None" in cookie and "Secure" in cookie
    r = client.get("/admin")
    assert "https://a.example" in r.get_data(as_text=True)
    assert r.headers["Content-Security-Policy"] == "frame-ancestors 'none'"  # a WooCommerce dashboard is never framed
    assert client.get(f"/admin/activity/{decision_a}").status_code == 200

    other = live.app.test_client()
    assert other.get(path(admin_link(live.config, b, 60))).status_code == 302
    page = other.get("/admin/activity").get_data(as_text=True)
    assert "https://b.example" in page and "WELCOME-ABC123" not in page
    r = other.get(f"/admin/activity/{decision_a}")
    assert r.status_code == 404 and "WELCOME-ABC123" not in r.get_data(as_text=True)
    # naming the other shop without its signature is refused, and does not switch the session
    assert other.get(f"/admin?shop={a}").status_code == 401
    assert other.get("/admin/roi/welcome").status_code == 200
    assert "https://b.example" in other.get("/admin").get_data(as_text=True)


def test_forged_expired_and_unknown_links_are_refused(live):
    a, _ = live.add_shop("woocommerce", "https://a.example", consumer_key="ck", consumer_secret="cs")
    client = live.app.test_client()
    good = path(admin_link(live.config, a, 60))
    forged = re.sub(r"link=[^&]+", "link=" + "gAAAAA" + "0" * 80, good)
    assert client.get(forged).status_code == 401
    old_format = f"/admin?shop={a}&exp={int(time.time()) + 60}&sig={'0' * 64}"
    assert client.get(old_format).status_code == 401
    expired = path(admin_link(live.config, a, -10))
    r = client.get(expired)
    assert r.status_code == 401 and "expired" in r.get_data(as_text=True)
    wrong_key = path(admin_link(type(live.config)(secret_keys=("another-key",), app_url="https://x.test"), a, 60))
    assert client.get(wrong_key).status_code == 401
    for page in ("/admin", "/admin/rules", "/admin/activity", "/admin/rules/edit/welcome.yaml", "/admin/roi/welcome"):
        assert client.get(page).status_code == 401, page
    assert client.get("/admin/api/report").status_code == 401
    # a session cookie signed with another key is no session
    client.set_cookie("keepwell_admin", "eyJzaG9wIjoid29fMSJ9.forged.sig", path="/admin")
    assert client.get("/admin").status_code == 401


def test_shopify_session_token_header_and_id_token(live):
    shop_id, _ = live.add_shop("shopify", "dash-test.myshopify.com", access_token="shpat_x")
    client = live.app.test_client()
    r = client.get("/admin/api/report", headers={"Authorization": f"Bearer {session_token('dash-test.myshopify.com')}"})
    assert r.status_code == 200 and "store" in r.get_json()
    assert r.headers["Content-Security-Policy"] == ("frame-ancestors https://dash-test.myshopify.com "
                                                    "https://admin.shopify.com")
    r = client.get(f"/admin?id_token={session_token('dash-test.myshopify.com')}")
    assert r.status_code == 200 and "dash-test.myshopify.com" in r.get_data(as_text=True)
    assert r.headers["Content-Security-Policy"] == ("frame-ancestors https://dash-test.myshopify.com "
                                                    "https://admin.shopify.com")
    assert "Set-Cookie" not in r.headers
    # not signed in: only the shop's admin that its query (or a stale token) names may frame the sign-in page
    assert client.get("/admin").headers["Content-Security-Policy"] == "frame-ancestors 'none'"
    assert client.get("/admin?shop=Dash-Test.myshopify.com").headers["Content-Security-Policy"] == (
        "frame-ancestors https://dash-test.myshopify.com https://admin.shopify.com")
    stale = session_token("dash-test.myshopify.com", -600)
    assert client.get(f"/admin/rules?id_token={stale}").headers["Content-Security-Policy"] == (
        "frame-ancestors https://dash-test.myshopify.com https://admin.shopify.com")
    assert client.get("/admin?shop=evil.example%20https://evil.example").headers["Content-Security-Policy"] == (
        "frame-ancestors 'none'")
    assert live.app.test_client().get(f"/admin?id_token={session_token('dash-test.myshopify.com', -600)}").status_code == 401
    forged = session_token("dash-test.myshopify.com", secret="not-the-secret")
    assert live.app.test_client().get(f"/admin?id_token={forged}").status_code == 401
    # a shop Keepwell does not know is installed by token exchange; here Shopify refuses it
    with responses.RequestsMock() as rsps:
        rsps.post("https://other.myshopify.com/admin/oauth/access_token", status=400,
                  json={"error": "invalid_subject_token", "error_description": "The session token is invalid"})
        assert live.app.test_client().get(f"/admin?id_token={session_token('other.myshopify.com')}").status_code == 401


def test_rtl_mode(live):
    a, _ = live.add_shop("woocommerce", "https://a.example", consumer_key="ck", consumer_secret="cs")
    h, _ = live.add_shop("woocommerce", "https://h.example", consumer_key="ck", consumer_secret="cs",
                         settings={"locale": "he-IL"})
    client = live.app.test_client()
    client.get(path(admin_link(live.config, a, 60)))
    assert '<html lang="en" dir="ltr">' in client.get("/admin").get_data(as_text=True)
    page = client.get("/admin/rules?dir=rtl").get_data(as_text=True)
    assert 'dir="rtl"' in page and 'href="/admin/activity?dir=rtl"' in page
    hebrew = live.app.test_client()
    hebrew.get(path(admin_link(live.config, h, 60)))
    assert 'lang="he-IL" dir="rtl"' in hebrew.get("/admin").get_data(as_text=True)


def test_cli_prints_a_working_admin_link(live, monkeypatch):
    from plugin.cli import main

    a, _ = live.add_shop("woocommerce", "https://a.example", consumer_key="ck", consumer_secret="cs")
    monkeypatch.setenv("DATABASE_URL", live.config.database_url)
    monkeypatch.setenv("KEEPWELL_SECRET_KEY", ",".join(live.config.secret_keys))
    monkeypatch.setenv("KEEPWELL_APP_URL", live.config.app_url)
    result = CliRunner().invoke(main, ["shop", "admin-link", a])
    assert result.exit_code == 0, result.output
    link = result.output.strip()
    assert link.startswith("https://keepwell.test/admin?link=")
    assert live.app.test_client().get(path(link)).status_code == 302
    assert CliRunner().invoke(main, ["shop", "admin-link", "wo_nope"]).exit_code != 0


def test_editor_lints_refuses_and_simulates(live):
    a, _ = live.add_shop("woocommerce", "https://a.example", consumer_key="ck", consumer_secret="cs")
    client = live.app.test_client()
    client.get(path(admin_link(live.config, a, 60)))
    page = client.get("/admin/rules/edit/welcome.yaml").get_data(as_text=True)
    csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
    original = client.get("/admin/rules/edit/welcome.yaml")
    text = re.search(r'<textarea[^>]*>(.*?)</textarea>', page, re.S).group(1)
    import html
    text = html.unescape(text)
    broken = text.replace("delay: 1h", "delay: soon", 1)
    r = client.post("/admin/rules/edit/welcome.yaml", data={"csrf": csrf, "source": broken, "action": "save"})
    assert r.status_code == 422 and "welcome.yaml:" in r.get_data(as_text=True)
    assert client.post("/admin/rules/edit/welcome.yaml",
                       data={"csrf": "stale", "source": text, "action": "save"}).status_code == 400
    r = client.post("/admin/rules/edit/welcome.yaml", data={"csrf": csrf, "source": text, "action": "simulate"})
    body = r.get_data(as_text=True)
    assert r.status_code == 200 and "sample store" in body and 'id="simulation"' in body
    # an unchanged edit: the same figures before and after, per rule by name
    assert re.search(r'<tr data-rule="welcome"><th scope="row"><bdi>Welcome new subscribers</bdi></th>\s*'
                     r'<td data-label="Triggered">(\d+) → <strong>\1</strong></td>', body)
    assert "Period used:" in body
    assert client.get("/admin/rules/edit/templates/welcome.html").status_code == 404
    assert client.get("/admin/rules/edit/nope.yaml").status_code == 404
    assert original.status_code == 200


def test_simulate_replays_the_shops_own_history(live):
    from live import woo_customer, woo_order

    a, secret = live.add_shop("woocommerce", "https://a.example", consumer_key="ck", consumer_secret="cs",
                              settings={"consent_meta_key": "_keepwell_marketing_opt_in"})
    now = live.clock.now.strftime("%Y-%m-%dT%H:%M:%S")
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.get("https://a.example/wp-json/wc/v3/products", json=[])  # the orders' products, deleted since
        for n in range(3):
            live.post_woocommerce(a, secret, "customer.created", woo_customer(100 + n, email=f"c{n}@example.com",
                                                                              modified=now))
            live.post_woocommerce(a, secret, "order.created", woo_order(900 + n, 100 + n, email=f"c{n}@example.com",
                                                                         modified=now))
        live.work()
    client = live.app.test_client()
    client.get(path(admin_link(live.config, a, 60)))
    page = client.get("/admin/rules/edit/icebreaker.yaml").get_data(as_text=True)
    csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
    import html
    text = html.unescape(re.search(r'<textarea[^>]*>(.*?)</textarea>', page, re.S).group(1))
    r = client.post("/admin/rules/edit/icebreaker.yaml", data={"csrf": csrf, "source": text, "action": "simulate"})
    body = r.get_data(as_text=True)
    assert r.status_code == 200 and "your store, last 90 days" in body and "sample store" not in body
    assert "3 customers, 6 events" in body
    # the three first orders trigger the icebreaker in the replay
    assert re.search(r'<tr data-rule="icebreaker"><th scope="row"><bdi>Second-purchase icebreaker</bdi></th>\s*'
                     r'<td data-label="Triggered">3 → <strong>3</strong></td>', body)


def test_a_decision_shows_its_conditions_with_the_values_seen(live):
    from live import woo_customer, woo_order
    from plugin.pipeline import sweep_timers

    a, secret = live.add_shop("woocommerce", "https://a.example", consumer_key="ck", consumer_secret="cs",
                              settings={"consent_meta_key": "_keepwell_marketing_opt_in"})
    now = live.clock.now.strftime("%Y-%m-%dT%H:%M:%S")
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.get("https://a.example/wp-json/wc/v3/products", json=[])  # the order's products, deleted since
        live.post_woocommerce(a, secret, "customer.created", woo_customer(100, email="c@example.com", modified=now))
        live.post_woocommerce(a, secret, "order.created", woo_order(900, 100, email="c@example.com", modified=now))
        live.work()
        live.clock.now += timedelta(hours=1, minutes=5)  # the welcome's delay ends: it re-checks and stands down
        sweep_timers(live.rt)
        live.work()
    with live.rt.sessions() as s:
        welcome = s.scalar(select(DecisionRow).where(DecisionRow.shop_id == a, DecisionRow.rule_id == "welcome"))
    assert (welcome.kind, welcome.reason) == ("suppressed", "cancelled")
    client = live.app.test_client()
    client.get(path(admin_link(live.config, a, 60)))
    body = client.get(f"/admin/activity/{welcome.id}").get_data(as_text=True)
    assert 'id="trace"' in body and "welcome: triggered by customer.created" in body
    assert "PASS customer.orders_count equals 0 (saw 0)" in body  # true at signup; the order came later


def test_editor_shows_lint_warnings_and_still_saves(live):
    """A legal but unwise rule (a 60% welcome discount) is saved, with the warning shown."""
    import html

    a, _ = live.add_shop("woocommerce", "https://a.example", consumer_key="ck", consumer_secret="cs")
    client = live.app.test_client()
    client.get(path(admin_link(live.config, a, 60)))
    page = client.get("/admin/rules/edit/welcome.yaml").get_data(as_text=True)
    csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
    text = html.unescape(re.search(r'<textarea[^>]*>(.*?)</textarea>', page, re.S).group(1))
    assert "discount: 10%\n" in text
    unwise = text.replace("discount: 10%\n", "discount: 60%\n", 1)
    r = client.post("/admin/rules/edit/welcome.yaml", data={"csrf": csrf, "source": unwise, "action": "check"})
    body = r.get_data(as_text=True)
    assert r.status_code == 200 and "No problems found." in body
    assert "1 warning: allowed, but worth a look" in body and "discount is over half the price" in body
    r = client.post("/admin/rules/edit/welcome.yaml", data={"csrf": csrf, "source": unwise, "action": "save"})
    assert r.status_code == 302
