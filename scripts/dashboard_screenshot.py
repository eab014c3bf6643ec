"""Take the README's dashboard screenshots: run `keepwell demo --serve`, sign in with the link it
prints, and save pages of the WooCommerce demo store's dashboard as Chromium draws them.

    .venv/bin/python scripts/dashboard_screenshot.py docs/
"""
from __future__ import annotations

import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
PAGES = {"dashboard-overview.png": "/admin?range=all", "dashboard-activity.png": "/admin/activity"}


def serve_demo(workdir: Path, timeout_s: float = 600) -> tuple[subprocess.Popen, dict[str, str], str]:
    """A running `keepwell demo --serve`: (its process, store -> sign-in link, what it printed)."""
    keepwell = Path(sys.executable).with_name("keepwell")
    proc = subprocess.Popen([str(keepwell), "demo", "--serve", "--workdir", str(workdir)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    out, deadline = "", time.monotonic() + timeout_s
    while "press Ctrl-C" not in out:
        line = proc.stdout.readline()
        if not line or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"the demo did not start serving:\n{out}")
        out += line
    links = dict(re.findall(r"^\s+(\S+)\s+(http://\S+/admin\?link=\S+)$", out, re.M))
    return proc, links, out


def stop(proc: subprocess.Popen) -> str:
    proc.send_signal(signal.SIGINT)
    rest, _ = proc.communicate(timeout=120)
    return rest


def screenshots(link: str, folder: Path, width: int = 1280) -> list[Path]:
    from playwright.sync_api import sync_playwright

    base = link.split("/admin", 1)[0]
    saved = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": width, "height": 900})
        page.goto(link)
        for name, path in PAGES.items():
            page.goto(f"{base}{path}")
            page.screenshot(path=str(folder / name), full_page=True)
            saved.append(folder / name)
        browser.close()
    return saved


def main(folder: str) -> None:
    with tempfile.TemporaryDirectory() as work:
        proc, links, _ = serve_demo(Path(work) / "demo")
        try:
            link = next(v for k, v in links.items() if "woo" in k)
            for path in screenshots(link, Path(folder)):
                print(path)
        finally:
            stop(proc)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "docs")
