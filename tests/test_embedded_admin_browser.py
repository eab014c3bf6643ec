"""The dashboard embedded the Shopify way, in Debian's Chromium driven by Playwright: loaded in an
iframe of a fake Shopify admin, third-party cookies blocked, opened with an ``id_token`` and
navigated across every page with a fresh session token per request; no cookie is ever set.

The browser sees real origins: the admin at ``https://embed-test.myshopify.com`` and the app at
``https://keepwell.test``, both HTTPS servers on loopback that Chromium's host resolver maps those
names (port 443) to; every other name fails to resolve. So Chromium enforces the app's
``frame-ancestors`` exactly as in Shopify's admin. Shopify's CDN is blocked (``route.abort``):
the page's own script finds App Bridge's ``shopify.idToken()`` played by the test, and without it
the pages still render and their links still work."""
import threading
import time
import uuid
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
import pytest
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from live import SHOPIFY_SECRET, start, stop
from test_dashboard_browser import ARGS, CHROMIUM, seed

playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect
pytestmark = pytest.mark.skipif(not __import__("os").path.exists(CHROMIUM), reason="needs /usr/bin/chromium")
API_KEY = "embed-api-key"
DOMAIN = "embed-test.myshopify.com"
ADMIN = f"https://{DOMAIN}"
OTHER_ADMIN = "https://other-shop.myshopify.com"
APP = "https://keepwell.test"
#: Chromium's switch for the third-party cookie phase-out: cookies in a cross-site iframe are blocked.
NO_THIRD_PARTY_COOKIES = "--test-third-party-cookie-phaseout"
CSP = f"frame-ancestors {ADMIN} https://admin.shopify.com"


def session_token(domain: str = DOMAIN) -> str:
    """A fresh App Bridge session token (one minute), each with its own jti."""
    now = int(time.time())
    return jwt.encode({"iss": f"https://{domain}/admin", "dest": f"https://{domain}", "aud": API_KEY, "sub": "42",
                       "exp": now + 60, "nbf": now - 5, "iat": now - 5, "jti": str(uuid.uuid4()), "sid": "s1"},
                      SHOPIFY_SECRET, algorithm="HS256")


def serve_tls(app, host: str):
    """``app`` over HTTPS (a throwaway self-signed certificate) on ``host``, a free port."""
    server = make_server(host, 0, app, threaded=True, ssl_context="adhoc")
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@Request.application
def store_admin(request):
    """The store admin: the app in an iframe, its URL from ?src=."""
    src = request.args.get("src", "")
    return Response(f'<!doctype html><title>Shopify admin</title><iframe id="app" src="{src}" width="900" '
                    'height="700"></iframe>', mimetype="text/html")


@pytest.fixture
def embedded(redis_server, smtp, tmp_path):
    """The app and a fake store admin over HTTPS on loopback, and a Chromium that resolves
    keepwell.test, the shop's and another shop's admin to them (and nothing else)."""
    live = start(redis_server, f"sqlite:///{tmp_path}/keepwell.db", smtp, shopify_api_key=API_KEY)
    answered = []

    def app(environ, start_response):  # what the app answered each request (path, status, headers)
        def recording(status, headers, *args):
            answered.append((environ["PATH_INFO"], int(status.split()[0]), {k.lower(): v for k, v in headers}))
            return start_response(status, headers, *args)
        return live.app(environ, recording)

    app_server, admin_server = serve_tls(app, "127.0.0.1"), serve_tls(store_admin, "127.0.0.2")
    rules = ", ".join([f"MAP keepwell.test:443 127.0.0.1:{app_server.server_port}",
                       f"MAP {DOMAIN}:443 127.0.0.2:{admin_server.server_port}",
                       f"MAP {urlsplit(OTHER_ADMIN).hostname}:443 127.0.0.2:{admin_server.server_port}",
                       "MAP * ~NOTFOUND"])
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            *ARGS, NO_THIRD_PARTY_COOKIES, "--ignore-certificate-errors", f"--host-resolver-rules={rules}"])
        yield live, browser, answered
        browser.close()
    for server in (app_server, admin_server):
        server.shutdown()
    stop(live)


def open_embedded(browser, *, app_bridge: bool, framer: str = ADMIN, path: str = "/admin", **query):
    """The admin opening the app as Shopify does (the App URL with its query and an id_token) in a
    new browser context; Shopify's CDN blocked. With ``app_bridge``, ``window.shopify.idToken()``
    hands out fresh tokens as App Bridge does. Returns (context, page, the app's frame, the app's
    URLs the page asked for, the CDN URLs it asked for)."""
    ctx = browser.new_context()
    asked, blocked = [], []
    ctx.route("https://cdn.shopify.com/**", lambda route: (blocked.append(route.request.url), route.abort()))
    if app_bridge:
        ctx.expose_function("keepwellTestIdToken", lambda: session_token())
        ctx.add_init_script(f"""if (location.origin === "{APP}") {{
            window.shopify = {{idToken: () => window.keepwellTestIdToken()}};
        }}""")
    # what the page asked for (a redirect it followed carries its request's token)
    ctx.on("request", lambda r: asked.append(r.url) if r.url.startswith(APP) and r.redirected_from is None else None)
    query = {"embedded": "1", "host": "YWRtaW4uc2hvcGlmeS5jb20vc3RvcmUvZW1iZWQtdGVzdA", "id_token": session_token(),
             "locale": "en", "shop": DOMAIN, **query}
    page = ctx.new_page()
    page.goto(f"{framer}/store/embed-test/apps/keepwell?" + urlencode({"src": f"{APP}{path}?{urlencode(query)}"}))
    return ctx, page, page.frame_locator("#app"), asked, blocked


def tokens_of(urls: list[str]) -> list[str]:
    return [parse_qs(urlsplit(u).query)["id_token"][0] for u in urls if "id_token=" in u]


def pages_of(answered) -> list[tuple[str, int, dict]]:
    return [(path, status, h) for path, status, h in answered if "/static/" not in path]


def test_every_page_in_the_admin_iframe_with_fresh_session_tokens_and_no_cookie(embedded):
    live, browser, answered = embedded
    shop_id, _ = live.add_shop("shopify", DOMAIN, access_token="shpat_x")
    seed(live, shop_id, DOMAIN)
    ctx, page, app, asked, blocked = open_embedded(browser, app_bridge=True)

    expect(app.get_by_role("heading", name="Overview", level=1)).to_be_visible()
    assert DOMAIN in app.locator("header").text_content()
    head = app.locator("head")
    assert head.locator('meta[name="shopify-api-key"]').get_attribute("content") == API_KEY
    scripts = [s.get_attribute("src") for s in head.locator("script").all()]
    assert scripts[:2] == ["https://cdn.shopify.com/shopifycloud/app-bridge.js",
                           "https://cdn.shopify.com/shopifycloud/polaris-1.js"]  # App Bridge first
    assert set(blocked) >= set(scripts[:2])  # asked for, refused: the page renders without them
    expect(app.locator("svg#chart-repeat-rate")).to_be_visible()
    assert not app.locator("s-app-nav").is_visible()  # App Bridge's nav is hidden until App Bridge runs

    app.get_by_role("link", name="Rules").click()
    expect(app.locator("#active-version")).to_have_text("version 1")
    app.locator('tr[data-rule="welcome"]').get_by_role("link", name="Edit").click()
    source = app.get_by_label("YAML of welcome.yaml")
    source.fill(source.input_value().replace("name: Welcome new subscribers", "name: Welcome (embedded)", 1))
    app.get_by_role("button", name="Check").click()
    expect(app.locator("#message")).to_have_text("No problems found.")
    app.get_by_role("button", name="Save").click()  # a form post: a fresh token, no CSRF cookie
    expect(app.get_by_role("status")).to_have_text("Saved: version 2 is now active.")
    app.get_by_role("link", name="Activity").click()
    expect(app.locator("#ledger tbody tr")).to_have_count(12)
    app.get_by_label("Rule", exact=True).select_option("welcome")
    app.get_by_role("button", name="Filter").click()  # a GET form: its fresh token travels as a field
    expect(app.locator("#ledger caption")).to_contain_text("12 in all")
    assert any("rule=welcome" in u and "id_token=" in u for u in asked)
    app.get_by_role("link", name="Why? decision").first.click()
    expect(app.locator("#why")).to_contain_text("customer.created")
    app.get_by_role("link", name="Rules").click()
    expect(app.locator("#active-version")).to_have_text("version 2")
    app.locator('tr[data-rule="welcome"]').get_by_role("link", name="ROI").click()
    expect(app.locator("#verdict")).to_be_visible()
    app.get_by_role("link", name="Overview").click()
    expect(app.get_by_role("heading", name="Overview", level=1)).to_be_visible()

    pages = [urlsplit(u).path for u in asked if "/static/" not in u]
    assert {"/admin", "/admin/rules", "/admin/rules/edit/welcome.yaml", "/admin/activity", "/admin/roi/welcome"} <= set(pages)
    assert any(p.startswith("/admin/activity/") for p in pages)
    used = tokens_of([u for u in asked if "/static/" not in u])
    assert len(used) == len(pages) and len(set(used)) == len(used)  # a fresh token for every page asked for
    # every answer names the shop as the only admin that may frame it, and none sets a cookie
    assert len(pages_of(answered)) >= len(pages)  # and the redirect after saving
    assert {h.get("content-security-policy") for _, _, h in pages_of(answered)} == {CSP}
    assert [u for u, _, h in answered if "set-cookie" in h] == [] and ctx.cookies() == []
    ctx.close()


def test_without_app_bridge_the_pages_still_work(embedded):
    live, browser, answered = embedded
    live.add_shop("shopify", DOMAIN, access_token="shpat_x")
    ctx, page, app, asked, blocked = open_embedded(browser, app_bridge=False)
    expect(app.get_by_role("heading", name="Overview", level=1)).to_be_visible()
    expect(app.get_by_role("navigation", name="Dashboard")).to_be_visible()  # the page's own nav, readable
    app.get_by_role("link", name="Rules").click()  # the link carries the page's still-valid token
    expect(app.get_by_role("heading", name="Rules", level=1)).to_be_visible()
    app.get_by_role("link", name="Activity").click()
    expect(app.get_by_role("heading", name="Activity", level=1)).to_be_visible()
    assert blocked and ctx.cookies() == [] and [u for u, _, h in answered if "set-cookie" in h] == []
    ctx.close()


def test_an_expired_token_is_replaced_through_app_bridge(embedded):
    live, browser, answered = embedded
    live.add_shop("shopify", DOMAIN, access_token="shpat_x")
    stale = jwt.encode({**jwt.decode(session_token(), options={"verify_signature": False}),
                        "exp": int(time.time()) - 120}, SHOPIFY_SECRET, algorithm="HS256")
    ctx, page, app, asked, _ = open_embedded(browser, app_bridge=True, path="/admin/rules", id_token=stale, shop="")
    expect(app.get_by_role("heading", name="Rules", level=1)).to_be_visible()  # bounced once, with a fresh token
    (refused, status, headers), *_ = pages_of(answered)
    assert status == 401 and headers["content-security-policy"] == CSP  # the shop named by the stale token
    assert ctx.cookies() == []
    ctx.close()


def test_another_site_cannot_frame_the_app(embedded):
    """Chromium itself refuses to show the app in a frame of any origin but the shop's admin."""
    live, browser, answered = embedded
    live.add_shop("shopify", DOMAIN, access_token="shpat_x")
    ctx, page, app, asked, _ = open_embedded(browser, app_bridge=True, framer=OTHER_ADMIN)
    page.wait_for_function("() => window.frames.length === 1")
    deadline = time.time() + 30
    while not answered and time.time() < deadline:  # the app answered (and named its only framer) ...
        page.wait_for_timeout(100)
    assert answered and answered[0][1] == 200 and answered[0][2]["content-security-policy"] == CSP
    page.wait_for_timeout(500)
    frame = page.frames[1]
    assert frame.url.startswith("chrome-error://")  # ... and the browser blocked it
    assert app.get_by_role("heading", name="Overview").count() == 0
    ctx.close()
