"""Screenshots of a built report for the README: python scripts/report_screenshots.py [SITE] [OUT].

Serves SITE (default data/report, which `make demo` writes) on localhost and photographs the funnel
and the first rep's page with Debian's Chromium, headless.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path

from playwright.sync_api import sync_playwright

from salescalls.report import site as report

FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]


def main(site: Path, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    httpd = report.server(site, port=0)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{httpd.server_address[1]}/"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=FLAGS)
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.goto(base + "funnel.html")
        page.wait_for_selector("#funnels .chart .main-svg")
        page.locator("#funnels section").first.screenshot(path=str(out / "report-funnel.png"))
        page.goto(base + "reps.html")
        page.locator("table#reps a").nth(1).click()
        page.wait_for_selector(".chart .main-svg")
        page.locator("section").first.screenshot(path=str(out / "report-plan.png"))
        browser.close()
    httpd.shutdown()
    print(f"screenshots in {out}")


if __name__ == "__main__":
    args = sys.argv[1:]
    main(Path(args[0] if args else "data/report"), Path(args[1] if len(args) > 1 else "docs"))
