"""The vendored front-end files are exactly the pinned packages' files, and the pages load them from here."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import office.web

VENDOR = Path(office.web.__file__).resolve().parent / "static" / "vendor"
TEMPLATES = VENDOR.parent.parent / "templates"


def pinned() -> dict[str, str]:
    text = (VENDOR / "README.md").read_text()
    rows = re.findall(r"^\| (\S+) \| [^|]+ \| [0-9.]+ \| ([0-9a-f]{64}) \|$", text, re.MULTILINE)
    return dict(rows)


def test_every_vendored_file_matches_its_pinned_digest() -> None:
    table = pinned()
    files = {p.name for p in VENDOR.iterdir() if p.name != "README.md"}
    assert files == set(table), "a vendored file without a row in README.md, or a row without its file"
    for name, digest in table.items():
        assert hashlib.sha256((VENDOR / name).read_bytes()).hexdigest() == digest, name


def test_the_pages_load_the_pinned_scripts_from_this_server() -> None:
    base = (TEMPLATES / "base.html").read_text()
    scripts = re.findall(r'<script src="([^"]+)"', base)
    assert scripts[:2] == ["/static/vendor/htmx-2.0.11.min.js", "/static/vendor/htmx-ext-sse-2.2.4.min.js"]
    assert not re.search(r'src="(https?:)?//', "".join(p.read_text() for p in TEMPLATES.glob("*.html")))
