"""`kiosk simulate --serve`: the scenario, then the office web app on 127.0.0.1 with people arriving at two
gates; a one-time admin password; a clean stop on Ctrl-C."""

from __future__ import annotations

import http.cookiejar
import json
import re
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

BIN = Path(sys.executable).parent


def test_the_demo_office_serves_a_live_crowd_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    state = tmp_path / "state"
    command = [str(BIN / "kiosk"), "simulate", "--serve", "--port", "0", "--state-dir", str(state)]
    demo = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert demo.stdout is not None
        found = None
        deadline = time.monotonic() + 90
        while found is None and time.monotonic() < deadline:
            line = demo.stdout.readline()
            assert line, "the demo ended before serving"
            found = re.match(r"office: (http://127\.0\.0\.1:\d+)/\s+user admin, password (\S+)", line)
        assert found, "no URL and password printed"
        url, password = found[1], found[2]
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        with opener.open(f"{url}/signin", timeout=10) as page:
            csrf = re.search(r'name="csrf" value="([^"]+)"', page.read().decode())
        assert csrf
        form = {"csrf": csrf[1], "username": "admin", "password": password, "next": "/overview"}
        with opener.open(f"{url}/signin", data=urllib.parse.urlencode(form).encode(), timeout=10) as page:
            assert page.url.endswith("/overview")
        with opener.open(f"{url}/api/kiosks", timeout=10) as answer:
            kiosks = {k["kiosk"]: k["state"] for k in json.load(answer) if k["site"] == "sim"}
        assert kiosks["gate-north"] == kiosks["gate-south"] == "online"
        since = time.time()
        counts: dict[str, int] = {}
        while time.monotonic() < deadline and not (counts.get("gate-north") and counts.get("gate-south")):
            time.sleep(1)
            with sqlite3.connect(state / "office.sqlite") as db:
                counts = dict(db.execute(
                    "SELECT kiosk, COUNT(*) FROM entries WHERE received_at >= ? GROUP BY kiosk",
                    (time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(since)),)).fetchall())
        assert counts.get("gate-north") and counts.get("gate-south"), counts
        demo.send_signal(signal.SIGINT)
        assert demo.wait(15) == 0
        assert "stopped" in demo.stdout.read()
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait(10)
