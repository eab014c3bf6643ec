"""The merchant dashboard in a real browser: Playwright drives Debian's Chromium against the real
app served on 127.0.0.1 (no browser downloads, no network: the pages load nothing external)."""
import threading
import time
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from urllib.parse import urlsplit

import jwt
import pytest
from werkzeug.serving import make_server

from plugin.admin_auth import admin_link
from plugin.db import AttributionRow, CustomerRow, DecisionRow
from plugin.engine.state import new_state, state_to_dict
from live import SHOPIFY_SECRET, start, stop

playwright_api = pytest.importorskip("playwright.sync_api")
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
API_KEY = "dash-api-key"
pytestmark = pytest.mark.skipif(not __import__("os").path.exists(CHROMIUM), reason="needs /usr/bin/chromium")


@pytest.fixture(scope="module")
def browser():
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture
def served(redis_server, smtp, tmp_path):
    live = start(redis_server, f"sqlite:///{tmp_path}/keepwell.db", smtp, shopify_api_key=API_KEY)
    server = make_server("127.0.0.1", 0, live.app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield live, f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(5)
    stop(live)


def seed(live, shop_id: str, domain: str) -> None:
    """Buyers over the last months (some repeat), and welcome touches with a redeemed coupon."""
    now = datetime.now(timezone.utc)
    with live.rt.sessions.begin() as s:
        for i in range(12):
            state = state_to_dict(new_state(domain, f"c{i}"))
            first = now - timedelta(days=150 - i * 10)
            orders = [{"id": f"o{i}a", "at": first.isoformat(), "total": "50.00", "currency": "USD", "paid": True,
                       "cancelled": False, "refunds": []}]
            if i % 2 == 0:
                orders.append({"id": f"o{i}b", "at": (first + timedelta(days=20)).isoformat(), "total": "40.00",
                               "currency": "USD", "paid": True, "cancelled": False, "refunds": []})
            state["orders"] = orders
            s.add(CustomerRow(shop_id=shop_id, customer_id=f"c{i}", state=state))
            at = now - timedelta(days=5 + i)
            key = f"{shop_id}:welcome:c{i}:e{i}:touch"
            s.add(DecisionRow(shop_id=shop_id, key=key, rule_id="welcome", customer_id=f"c{i}", kind="touch",
                              status="done", event_id=f"e{i}",
                              decision={"kind": "touch", "at": at.isoformat(), "rule_id": "welcome",
                                        "actions": [{"type": "coupon", "code": f"WELCOME-{i:04d}"}]}))
            if i < 3:
                s.add(AttributionRow(shop_id=shop_id, order_id=f"o{i}b", customer_id=f"c{i}", decision_key=key,
                                     rule_id="welcome", coupon_code=f"WELCOME-{i:04d}", revenue=Decimal("40.00"),
                                     currency="USD", discount=Decimal("4.00"), ordered_at=at + timedelta(days=1)))


def local(url: str, base: str) -> str:
    parts = urlsplit(url)
    return f"{base}{parts.path}?{parts.query}"


def session_token(domain: str) -> str:
    now = int(time.time())
    return jwt.encode({"iss": f"https://{domain}/admin", "dest": f"https://{domain}", "aud": API_KEY, "sub": "42",
                       "exp": now + 60, "nbf": now - 5, "iat": now - 5, "jti": "j1", "sid": "s1"},
                      SHOPIFY_SECRET, algorithm="HS256")


def test_woocommerce_merchant_edits_a_rule_and_another_shop_sees_nothing(served, browser):
    live, base = served
    shop_a, _ = live.add_shop("woocommerce", "https://a.example", consumer_key="ck", consumer_secret="cs")
    shop_b, _ = live.add_shop("woocommerce", "https://b.example", consumer_key="ck", consumer_secret="cs")
    seed(live, shop_a, "https://a.example")
    requests = []
    ctx = browser.new_context(viewport={"width": 420, "height": 900})  # a narrow iframe
    page = ctx.new_page()
    page.on("request", lambda r: requests.append(r.url))

    page.goto(local(admin_link(live.config, shop_a, 120), base))
    assert page.url.rstrip("/").endswith("/admin")  # the signature is dropped from the address
    assert page.get_by_role("heading", name="Overview", level=1).is_visible()
    repeat = page.locator("svg#chart-repeat-rate")
    assert repeat.get_attribute("role") == "img"
    assert repeat.locator("title").first.text_content() == "Repeat purchase rate over time"
    assert repeat.locator("circle").count() >= 1 and repeat.locator("path.line").count() == 1
    bars = page.locator("svg#chart-revenue-discount")
    assert "Attributed revenue and discount cost per rule" in bars.locator("title").first.text_content()
    assert bars.locator("rect.bar.revenue").count() == 1 and bars.locator("rect.bar.discount").count() == 1
    assert "120.00" in bars.text_content() and "12.00" in bars.text_content()
    assert page.locator('[data-kpi="repeat-rate"]').text_content() == "50.0%"
    assert page.locator('[data-kpi="touches"]').text_content() == "12"
    # fits the narrow frame: no horizontal scrolling of the page
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")

    page.get_by_role("link", name="Rules").click()
    assert page.locator("#active-version").text_content() == "version 1"
    page.locator('tr[data-rule="welcome"]').get_by_role("link", name="Edit").click()
    source = page.get_by_label("YAML of welcome.yaml")
    original = source.input_value()
    broken = original.replace("trigger: customer.created", "trigger: customer.creatd", 1)
    assert broken != original
    bad_line = broken.splitlines().index("    trigger: customer.creatd") + 1
    source.fill(broken)
    page.get_by_role("button", name="Check").click()
    alert = page.get_by_role("alert")
    assert f"welcome.yaml:{bad_line}:" in alert.text_content() and "[welcome]" in alert.text_content()
    highlighted = page.locator("pre.context .bad")
    assert highlighted.first.get_attribute("data-line") == str(bad_line)
    assert "customer.creatd" in highlighted.first.text_content()
    page.get_by_role("button", name="Save").click()  # refused: still version 1
    assert page.get_by_role("alert").is_visible()

    fixed = original.replace("name: Welcome new subscribers", "name: Welcome new subscribers (edited)", 1)
    page.get_by_label("YAML of welcome.yaml").fill(fixed)
    page.get_by_role("button", name="Check").click()
    assert page.locator("#message").text_content() == "No problems found."
    page.get_by_role("button", name="Save").click()
    assert page.get_by_role("status").text_content() == "Saved: version 2 is now active."
    assert page.locator("#active-version").text_content() == "version 2"
    history = page.locator("#history tbody tr")
    assert history.count() == 2
    assert page.locator('#history tr[data-version="2"]').get_attribute("class") == "active"
    assert "Welcome new subscribers (edited)" in page.locator('tr[data-rule="welcome"]').text_content()

    page.get_by_role("link", name="Activity").click()
    assert page.locator("#ledger tbody tr").count() == 12
    assert "WELCOME-0000" in page.locator("#ledger").text_content()
    page.get_by_role("link", name="Why? decision").first.click()
    assert "customer.created" in page.locator("#why").text_content()
    decision_url = page.url
    page.goto(f"{base}/admin/roi/welcome")
    assert page.locator("svg#chart-roi rect").count() >= 3
    assert page.locator("#verdict").is_visible()

    assert all(u.startswith(base) for u in requests), [u for u in requests if not u.startswith(base)]

    # Shop B's session: its own pages, nothing of shop A's
    other = browser.new_context()
    page_b = other.new_page()
    page_b.goto(local(admin_link(live.config, shop_b, 120), base))
    assert "https://b.example" in page_b.locator("header").text_content()
    r = page_b.goto(decision_url)
    assert r.status == 404 and "WELCOME-" not in page_b.content()
    r = page_b.goto(f"{base}/admin?shop={shop_a}")
    assert r.status == 401
    page_b.goto(f"{base}/admin/activity")
    assert "WELCOME-" not in page_b.content() and "No decisions yet" in page_b.content()
    page_b.goto(f"{base}/admin/rules")
    assert page_b.locator("#active-version").text_content() == "version 1"
    fresh = browser.new_context().new_page()
    assert fresh.goto(f"{base}/admin/rules").status == 401
    other.close()
    ctx.close()


def test_shopify_id_token_and_rtl_layout(served, browser):
    live, base = served
    domain = "dash-test.myshopify.com"
    live.add_shop("shopify", domain, access_token="shpat_x")
    ctx = browser.new_context(viewport={"width": 400, "height": 800})
    page = ctx.new_page()
    r = page.goto(f"{base}/admin?id_token={session_token(domain)}&dir=rtl")
    assert r.status == 200 and domain in page.locator("header").text_content()
    assert page.evaluate("getComputedStyle(document.body).direction") == "rtl"
    first, second = (page.get_by_role("link", name=n).bounding_box() for n in ("Overview", "Rules"))
    assert first["x"] > second["x"]  # the navigation runs right to left
    assert page.locator("svg#chart-repeat-rate").is_visible()
    page.get_by_role("link", name="Rules").click()  # links keep the mode; the session cookie carries the shop
    assert page.evaluate("document.documentElement.dir") == "rtl"
    assert page.get_by_role("heading", name="Rules", level=1).is_visible()
    ctx.close()
