"""The personal page in a real browser: Playwright drives Debian's Chromium, on a phone-sized
viewport, against the real app on 127.0.0.1, with the real worker and SMTP server. The page loads
nothing from anywhere else; accessibility is checked in the page (names, landmarks, focus,
contrast) since no axe can be fetched offline."""
import re
import threading
import time
from datetime import datetime, timezone

import pytest
import responses
from werkzeug.serving import make_server

from plugin.db import CustomerRow, DecisionRow, PageRow
from live import backlog, start, stop
from test_pages import signed_up

playwright_api = pytest.importorskip("playwright.sync_api")
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True, "device_scale_factor": 2}
pytestmark = pytest.mark.skipif(not __import__("os").path.exists(CHROMIUM), reason="needs /usr/bin/chromium")

#: In-page checks: every visible form control has a label, the landmarks exist, and text meets
#: WCAG AA contrast (4.5:1) against the nearest opaque background.
AUDIT = """() => {
  const lum = (c) => { const v = c.match(/[\\d.]+/g).slice(0, 3).map(Number).map(x => x / 255)
      .map(s => s <= 0.03928 ? s / 12.92 : Math.pow((s + 0.055) / 1.055, 2.4));
    return 0.2126 * v[0] + 0.7152 * v[1] + 0.0722 * v[2]; };
  const bg = (el) => { for (; el; el = el.parentElement) { const c = getComputedStyle(el).backgroundColor;
      const a = c.match(/[\\d.]+/g); if (a && (a.length < 4 || Number(a[3]) > 0.9)) return c; } return "rgb(255,255,255)"; };
  const ratio = (a, b) => { const [x, y] = [lum(a), lum(b)].sort((p, q) => q - p); return (x + 0.05) / (y + 0.05); };
  const unlabeled = [...document.querySelectorAll("input, select, textarea")]
    .filter(e => e.type !== "hidden" && !(e.labels && e.labels.length) && !e.getAttribute("aria-label")).map(e => e.name);
  const lowContrast = [...document.querySelectorAll("h1, h2, p, dt, dd, label, legend, button, a")]
    .filter(e => e.offsetParent !== null && e.textContent.trim())
    .map(e => [e.tagName + ":" + e.textContent.trim().slice(0, 30), ratio(getComputedStyle(e).color, bg(e))])
    .filter(([, r]) => r < 4.5);
  return {unlabeled, lowContrast, lang: document.documentElement.lang, dir: document.documentElement.dir,
          h1: document.querySelectorAll("h1").length, scrolls: document.documentElement.scrollWidth > innerWidth + 1};
}"""


@pytest.fixture(scope="module")
def browser():
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture
def served(redis_server, smtp, tmp_path):
    live = start(redis_server, f"sqlite:///{tmp_path}/keepwell.db", smtp)
    server = make_server("127.0.0.1", 0, live.app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield live, f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(5)
    stop(live)


def wait_for(check, timeout=10.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if check():
            return True
        time.sleep(0.05)
    return False


def customer(live, shop_id):
    return live.rows(CustomerRow, shop_id=shop_id, customer_id="25")[0].state


def push(live, shop_id, event_id, **fields):
    live.rt.handoff.push_event(shop_id, {"id": event_id, "type": "customer.consent_changed", "shop": shop_id,
                                         "customer_id": "25", "occurred_at": datetime.now(timezone.utc).isoformat(),
                                         "customer": {"id": "25", **fields}})
    live.work()


@responses.activate
def test_on_a_phone_the_customer_answers_back_and_every_answer_reaches_the_rules(served, browser):
    live, base = served
    shop_id, token = signed_up(live, first_name="Ana")
    push(live, shop_id, "sms-start:25:1", phone="+972501234567", sms_consent=True)
    ctx = browser.new_context(**PHONE)
    page = ctx.new_page()
    requested = []
    page.on("request", lambda r: requested.append(r.url))
    page.goto(f"{base}/p/{token}")

    assert page.get_by_role("heading", name="Hello Ana", level=1).is_visible()
    for role in ("banner", "main", "contentinfo"):
        assert page.get_by_role(role).count() == 1, role
    audit = page.evaluate(AUDIT)
    assert audit == {"unlabeled": [], "lowContrast": [], "lang": "en", "dir": "ltr", "h1": 1, "scrolls": False}
    use = page.get_by_role("link", name="Use it now")
    code = page.locator(".offer").get_attribute("data-code")
    assert use.get_attribute("href") == f"https://store.example/?keepwell_coupon={code}"
    assert use.bounding_box()["height"] >= 44  # a thumb-sized target
    page.keyboard.press("Tab")  # the first stop skips to the content, and shows where focus is
    assert page.evaluate("document.activeElement.textContent") == "Your page"
    assert page.evaluate("getComputedStyle(document.activeElement).outlineStyle") != "none"

    # the open is counted by the page's own POST once it has been seen, not by the GET
    assert wait_for(lambda: backlog(live, shop_id) == 1)
    live.work()
    assert live.rows(PageRow, rule_id="thanks")[0].opened_at is not None

    page.get_by_label("Not for me").check()
    page.get_by_role("button", name="Send answer").click()
    page.wait_for_url(re.compile(r"done=answered"))
    assert page.get_by_role("status").text_content() == "Thank you for your answer."
    live.work()
    sorry, = live.rows(DecisionRow, rule_id="sorry")
    assert sorry.status == "done"
    assert [m["Subject"] for m in live.smtp.messages].count("Sorry to hear that") == 1

    page.get_by_label("By text message").check()
    page.get_by_role("button", name="Save my choice").click()
    page.wait_for_url(re.compile(r"done=channel_saved"))
    live.work()
    assert customer(live, shop_id)["preferred_channel"] == "sms"

    page.get_by_role("button", name="Send this offer to my email").click()
    page.wait_for_url(re.compile(r"done=forwarded"))
    live.work()
    forwarded, = [m for m in live.smtp.messages if m["Subject"].startswith("Your offer from")]
    assert forwarded["To"].addresses[0].addr_spec == "john.doe@example.com"
    assert code in forwarded.get_body(("plain",)).get_content()
    assert page.get_by_role("button", name="Send this offer to my email").count() == 0

    page.get_by_label("Date", exact=True).last.fill("2027-03-14")
    page.get_by_label("For whom (optional)").last.fill("Noa")
    page.get_by_role("button", name="Add date").click()
    page.wait_for_url(re.compile(r"done=occasion_saved"))
    live.work()
    occasion, = customer(live, shop_id)["occasions"]
    assert (occasion["kind"], occasion["date"], occasion["recipient"], occasion["remind"]) == \
        ("birthday", "2027-03-14", "Noa", True)

    assert all(u.startswith(base) for u in requested), [u for u in requested if not u.startswith(base)]
    ctx.close()


@responses.activate
def test_a_hebrew_customer_reads_the_page_right_to_left(served, browser):
    live, base = served
    shop_id, token = signed_up(live, first_name="נועה")
    push(live, shop_id, "locale:25", locale="he-IL")
    ctx = browser.new_context(**PHONE)
    page = ctx.new_page()
    page.goto(f"{base}/p/{token}")
    audit = page.evaluate(AUDIT)
    assert audit == {"unlabeled": [], "lowContrast": [], "lang": "he", "dir": "rtl", "h1": 1, "scrolls": False}
    heading = page.get_by_role("heading", name="שלום נועה", level=1)
    box = heading.bounding_box()
    assert box["x"] + box["width"] > 390 - 40  # starts at the right edge
    code = page.locator(".offer .code")
    assert code.get_attribute("dir") == "ltr"  # the code itself reads left to right
    page.get_by_label("עבור מי (לא חובה)").last.fill("סבתא")
    page.get_by_label("תאריך").last.fill("2027-01-05")
    page.get_by_role("button", name="הוספת תאריך").click()
    page.wait_for_url(re.compile(r"done=occasion_saved"))
    assert page.get_by_role("status").text_content() == "נשמר. נזכיר לך."
    live.work()
    occasion, = customer(live, shop_id)["occasions"]
    assert occasion["recipient"] == "סבתא"
    ctx.close()
