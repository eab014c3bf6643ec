"""`keepwell demo --serve`: the demo keeps running after its report and prints a sign-in link to
each store's dashboard; the link opens the dashboard in Chromium, where the demo's customers are
named; Ctrl-C then stops every process. The README's screenshots are taken the same way."""
import importlib.util
import os
import re
import shutil
from pathlib import Path

import pytest

from test_demo import _demo_env, _gone

CHROMIUM = "/usr/bin/chromium"
SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "dashboard_screenshot.py"
pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs /usr/bin/chromium")


def _script():
    spec = importlib.util.spec_from_file_location("dashboard_screenshot", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_demo_serve_signs_in_to_a_browsable_dashboard_and_stops_on_ctrl_c(request, tmp_path, monkeypatch):
    from playwright.sync_api import sync_playwright

    shots = _script()
    for key, value in _demo_env(request).items():
        monkeypatch.setenv(key, value)
    if shutil.which("redis-server"):
        monkeypatch.delenv("REDIS_URL", raising=False)
    proc, links, out = shots.serve_demo(tmp_path / "run")
    try:
        assert set(links) == {"demo-shop.myshopify.com", "https://woo-demo.example"}, out
        woo = links["https://woo-demo.example"]
        base = woo.split("/admin", 1)[0]
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=shots.ARGS)
            page = browser.new_page(viewport={"width": 700, "height": 900})
            page.goto(woo)
            assert page.get_by_role("heading", name="Overview", level=1).is_visible()
            page.goto(f"{base}/")  # the front page leads to the dashboard
            assert page.url.rstrip("/") == f"{base}/admin" and page.locator('[data-kpi="touches"]').text_content() != "0"
            page.goto(f"{base}/admin/activity")
            first = page.locator("#ledger tbody tr").first
            assert re.search(r"[A-Z][a-zë]+ [A-Z][a-z]+", first.locator(".who").text_content())
            assert first.locator(".who a").get_attribute("href").startswith(
                "https://woo-demo.example/wp-admin/user-edit.php?user_id=")
            assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
            browser.close()
        saved = shots.screenshots(woo, tmp_path)
        assert [p.name for p in saved] == ["dashboard-overview.png", "dashboard-activity.png"]
        assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 10_000 for p in saved)
    finally:
        rest = shots.stop(proc)
    assert proc.returncode == 0, out + rest
    assert "every process it started is stopped" in rest
    pids = [int(p) for p in re.findall(r"\(pid (\d+)\)", out)]
    assert pids and all(_gone(p) for p in pids)
