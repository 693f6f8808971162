"""Take the README's screenshots from a live demo office (`kiosk simulate --serve`) in Debian's Chromium.

Run it as `scripts/screenshots` (after `scripts/bootstrap dev`); it writes docs/img/*.png. Each page is
a (path, file) pair: a page that does not answer is skipped with a message, never a failure of the rest.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from playwright.sync_api import Page, sync_playwright

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "img"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
CROWD_S = 40  # let people arrive at both gates first
BATCH = ("pid,cat,hh,name,id_number\n"
         "P-10001,green,1-1-101,张三丰,11010519491231002X\n"
         "P-10002,blue,1-1-102,李四,370102198001011237\n"
         "P-10003,red,2-2-301,王五,11010519491231002X\n"
         "P-10004,pink,,赵六,370102198001011237\n")


def start_demo(state: Path) -> tuple[subprocess.Popen[str], str, str]:
    demo = subprocess.Popen([str(Path(sys.executable).parent / "kiosk"), "simulate", "--serve", "--port", "0",
                             "--state-dir", str(state)], stdout=subprocess.PIPE, text=True)
    assert demo.stdout is not None
    for line in demo.stdout:
        found = re.match(r"office: (http://\S+?)/\s+user admin, password (\S+)", line)
        if found:
            return demo, found[1], found[2]
    raise SystemExit("the demo office did not start")


def shoot(page: Page, url: str, path: str, name: str, *, width: int = 1280) -> None:
    page.set_viewport_size({"width": width, "height": 900})
    response = page.goto(url + path)
    if response is None or response.status >= 400:
        print(f"skipped {name}: {path} answered {response.status if response else 'nothing'}")
        return
    page.wait_for_timeout(500)
    page.screenshot(path=str(OUT / name), full_page=True)
    print(f"wrote docs/img/{name}")


def pass_sheet(page: Page, url: str, batch: Path) -> None:
    page.set_viewport_size({"width": 1000, "height": 900})
    page.goto(url + "/passes/issue")
    if page.locator("form[action='/passes/batch']").count() == 0:
        print("skipped pass-sheet.png: no batch form on /passes/issue")
        return
    page.set_input_files("form[action='/passes/batch'] input[type=file]", str(batch))
    page.click("form[action='/passes/batch'] button[type=submit]")
    page.locator("#issued").wait_for(timeout=10_000)
    page.click("#print-sheet")
    page.wait_for_url(url + "/passes/sheet?*")
    page.emulate_media(media="print")
    page.screenshot(path=str(OUT / "pass-sheet.png"), full_page=True)
    page.emulate_media(media="screen")
    print("wrote docs/img/pass-sheet.png")


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="screenshots-") as tmp:
        demo, url, password = start_demo(Path(tmp) / "state")
        batch = Path(tmp) / "households.csv"
        batch.write_text(BATCH, encoding="utf-8")
        try:
            time.sleep(CROWD_S)
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
                page = browser.new_page(locale="zh-CN", viewport={"width": 1280, "height": 900})
                page.goto(url + "/signin?next=/overview")
                page.fill("input[name=username]", "admin")
                page.fill("input[name=password]", password)
                page.click("button[type=submit]")
                page.wait_for_url(url + "/overview")
                shoot(page, url, "/overview", "overview.png")
                shoot(page, url, "/alerts", "alert.png")
                shoot(page, url, "/entries", "entries.png")
                shoot(page, url, "/overview", "overview-phone.png", width=390)
                pass_sheet(page, url, batch)
                browser.close()
        finally:
            demo.send_signal(signal.SIGINT)
            demo.wait(30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
