"""The dashboard embedded the Shopify way, in Debian's Chromium driven by Playwright: loaded in an
iframe of a fake Shopify admin on another loopback origin, third-party cookies blocked, opened
with an ``id_token`` and navigated across every page with a fresh session token per request;
no cookie is ever set. Shopify's CDN is blocked (``route.abort``): the page's own script finds
App Bridge's ``shopify.idToken()`` played by the test, and without it the pages still render
and their links still work."""
import threading
import time
import uuid
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
import pytest
from werkzeug.serving import make_server
from werkzeug.wrappers import Response

from live import SHOPIFY_SECRET, start, stop
from test_dashboard_browser import ARGS, CHROMIUM, seed

playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect
pytestmark = pytest.mark.skipif(not __import__("os").path.exists(CHROMIUM), reason="needs /usr/bin/chromium")
API_KEY = "embed-api-key"
DOMAIN = "embed-test.myshopify.com"
#: Chromium's switch for the third-party cookie phase-out: cookies in a cross-site iframe are blocked.
NO_THIRD_PARTY_COOKIES = "--test-third-party-cookie-phaseout"


def session_token(domain: str = DOMAIN) -> str:
    """A fresh App Bridge session token (one minute), each with its own jti."""
    now = int(time.time())
    return jwt.encode({"iss": f"https://{domain}/admin", "dest": f"https://{domain}", "aud": API_KEY, "sub": "42",
                       "exp": now + 60, "nbf": now - 5, "iat": now - 5, "jti": str(uuid.uuid4()), "sid": "s1"},
                      SHOPIFY_SECRET, algorithm="HS256")


def serve(app, host: str):
    server = make_server(host, 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://{host}:{server.server_port}"


@pytest.fixture
def embedded(redis_server, smtp, tmp_path):
    """The app on 127.0.0.1 and a fake Shopify admin on 127.0.0.2 that frames it."""
    live = start(redis_server, f"sqlite:///{tmp_path}/keepwell.db", smtp, shopify_api_key=API_KEY)
    app_server, app_base = serve(live.app, "127.0.0.1")

    def admin(environ, start_response):  # the store admin: the app in an iframe, its URL from ?src=
        src = parse_qs(environ.get("QUERY_STRING", "")).get("src", [""])[0]
        page = f'<!doctype html><title>Shopify admin</title><iframe id="app" src="{src}" width="900" height="700">'
        return Response(page, mimetype="text/html")(environ, start_response)

    admin_server, admin_base = serve(admin, "127.0.0.2")
    yield live, app_base, admin_base
    for server in (app_server, admin_server):
        server.shutdown()
    stop(live)


@pytest.fixture(scope="module")
def browser():
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=[*ARGS, NO_THIRD_PARTY_COOKIES])
        yield b
        b.close()


def open_embedded(browser, admin_base, app_base, *, app_bridge: bool):
    """A browser context showing the fake admin with the app framed; Shopify's CDN blocked.
    With ``app_bridge``, ``window.shopify.idToken()`` hands out fresh tokens as App Bridge does."""
    ctx = browser.new_context()
    blocked, seen, cookies_set = [], [], []
    ctx.route("https://cdn.shopify.com/**", lambda route: (blocked.append(route.request.url), route.abort()))
    if app_bridge:
        ctx.expose_function("keepwellTestIdToken", lambda: session_token())
        ctx.add_init_script(f"""if (location.origin === "{app_base}") {{
            window.shopify = {{idToken: () => window.keepwellTestIdToken()}};
        }}""")

    def request(r):  # what the page asked for (a redirect it followed carries its request's token)
        if r.url.startswith(app_base) and r.redirected_from is None:
            seen.append(r.url)

    def response(r):
        if r.url.startswith(app_base) and r.headers.get("set-cookie"):
            cookies_set.append(r.url)

    ctx.on("request", request)
    ctx.on("response", response)
    page = ctx.new_page()
    query = {"embedded": "1", "host": "YWRtaW4uc2hvcGlmeS5jb20vc3RvcmUvZW1iZWQtdGVzdA", "id_token": session_token(),
             "locale": "en", "shop": DOMAIN}
    page.goto(f"{admin_base}/?" + urlencode({"src": f"{app_base}/admin?{urlencode(query)}"}))
    frame = page.frame_locator("#app")
    return ctx, page, frame, blocked, seen, cookies_set


def tokens_of(urls: list[str]) -> list[str]:
    return [parse_qs(urlsplit(u).query)["id_token"][0] for u in urls if "id_token=" in u]


def test_every_page_in_the_admin_iframe_with_fresh_session_tokens_and_no_cookie(embedded, browser):
    live, app_base, admin_base = embedded
    shop_id, _ = live.add_shop("shopify", DOMAIN, access_token="shpat_x")
    seed(live, shop_id, DOMAIN)
    ctx, page, app, blocked, seen, cookies_set = open_embedded(browser, admin_base, app_base, app_bridge=True)

    expect(app.get_by_role("heading", name="Overview", level=1)).to_be_visible()
    assert DOMAIN in app.locator("header").text_content()
    head = app.locator("head")
    assert head.locator('meta[name="shopify-api-key"]').get_attribute("content") == API_KEY
    scripts = [s.get_attribute("src") for s in head.locator("script").all()]
    assert scripts[:2] == ["https://cdn.shopify.com/shopifycloud/app-bridge.js",
                           "https://cdn.shopify.com/shopifycloud/polaris-1.js"]  # App Bridge first
    assert {u for u in blocked} >= set(scripts[:2])  # asked for, refused: the page renders without them
    expect(app.locator("svg#chart-repeat-rate")).to_be_visible()
    assert not app.locator("s-app-nav").is_visible()  # App Bridge's nav is hidden until App Bridge runs

    app.get_by_role("link", name="Rules").click()
    expect(app.locator("#active-version")).to_have_text("version 1")
    app.get_by_role("link", name="Edit welcome.yaml").first.click()
    source = app.get_by_label("YAML of welcome.yaml")
    source.fill(source.input_value().replace("name: Welcome new subscribers", "name: Welcome (embedded)", 1))
    app.get_by_role("button", name="Check").click()
    expect(app.locator("#message")).to_have_text("No problems found.")
    app.get_by_role("button", name="Save").click()  # a form post: a fresh token, no CSRF cookie
    expect(app.get_by_role("status")).to_have_text("Saved: version 2 is now active.")
    app.get_by_role("link", name="Activity").click()
    expect(app.locator("#ledger tbody tr")).to_have_count(12)
    app.get_by_role("link", name="Why? decision").first.click()
    expect(app.locator("#why")).to_contain_text("customer.created")
    app.get_by_role("link", name="Rules").click()
    expect(app.locator("#active-version")).to_have_text("version 2")
    app.locator('tr[data-rule="welcome"]').get_by_role("link", name="ROI").click()
    expect(app.locator("#verdict")).to_be_visible()
    app.get_by_role("link", name="Overview").click()
    expect(app.get_by_role("heading", name="Overview", level=1)).to_be_visible()

    pages = [urlsplit(u).path for u in seen if "/static/" not in u]
    assert {"/admin", "/admin/rules", "/admin/rules/edit/welcome.yaml", "/admin/activity", "/admin/roi/welcome"} <= set(pages)
    assert any(p.startswith("/admin/activity/") for p in pages)
    used = tokens_of([u for u in seen if "/static/" not in u])
    assert len(used) == len(pages) and len(set(used)) == len(used)  # a fresh token for every page asked for
    assert cookies_set == [] and ctx.cookies() == []  # nothing to block: no cookie at all
    ctx.close()


def test_without_app_bridge_the_pages_still_work(embedded, browser):
    live, app_base, admin_base = embedded
    live.add_shop("shopify", DOMAIN, access_token="shpat_x")
    ctx, page, app, blocked, seen, cookies_set = open_embedded(browser, admin_base, app_base, app_bridge=False)
    expect(app.get_by_role("heading", name="Overview", level=1)).to_be_visible()
    expect(app.get_by_role("navigation", name="Dashboard")).to_be_visible()  # the page's own nav, readable
    app.get_by_role("link", name="Rules").click()  # the link carries the page's still-valid token
    expect(app.get_by_role("heading", name="Rules", level=1)).to_be_visible()
    app.get_by_role("link", name="Activity").click()
    expect(app.get_by_role("heading", name="Activity", level=1)).to_be_visible()
    assert blocked and cookies_set == [] and ctx.cookies() == []
    ctx.close()


def test_an_expired_token_is_replaced_through_app_bridge(embedded, browser):
    live, app_base, admin_base = embedded
    live.add_shop("shopify", DOMAIN, access_token="shpat_x")
    ctx = browser.new_context()
    ctx.route("https://cdn.shopify.com/**", lambda route: route.abort())
    ctx.expose_function("keepwellTestIdToken", lambda: session_token())
    ctx.add_init_script(f"""if (location.origin === "{app_base}") {{
        window.shopify = {{idToken: () => window.keepwellTestIdToken()}};
    }}""")
    page = ctx.new_page()
    stale = jwt.encode({**jwt.decode(session_token(), options={"verify_signature": False}),
                        "exp": int(time.time()) - 120}, SHOPIFY_SECRET, algorithm="HS256")
    page.goto(f"{admin_base}/?" + urlencode({"src": f"{app_base}/admin/rules?embedded=1&id_token={stale}"}))
    app = page.frame_locator("#app")
    expect(app.get_by_role("heading", name="Rules", level=1)).to_be_visible()  # bounced once, with a fresh token
    assert ctx.cookies() == []
    ctx.close()
