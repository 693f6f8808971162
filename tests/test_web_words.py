"""The web app's words: every page's own table, no key defined twice, and every key the templates use."""

from __future__ import annotations

import re
from pathlib import Path

from checkpoint.reasons import Reason
from office.reports.render import REASON_ZH
from office.web import i18n

TEMPLATES = Path(i18n.__file__).resolve().parent / "templates"
TABLES = {name: value for name, value in vars(i18n).items()
          if re.fullmatch(r"_[A-Z0-9_]+", name) and isinstance(value, dict)
          and all(isinstance(words, tuple) for words in value.values())}


def test_no_key_is_in_two_tables() -> None:
    """A key in two pages' tables would silently take the later one's words."""
    seen: dict[str, str] = {}
    for name, table in TABLES.items():
        for key in table:
            assert key not in seen, f"{key!r} is in {seen[key]} and {name}"
            seen[key] = name
    assert set(seen) == set(i18n.MESSAGES)


def test_every_literal_key_a_template_uses_has_both_languages() -> None:
    used = {key for path in TEMPLATES.glob("*.html")
            for key in re.findall(r"""\bt\(\s*["']([A-Za-z0-9_.]+)["']""", path.read_text())
            if not key.endswith(".")}  # a prefix the template completes (t("reason." ~ code))
    assert used, "no t(...) found: the pattern is out of date"
    missing = sorted(used - set(i18n.MESSAGES))
    assert not missing, missing
    for key in used:
        chinese, english = i18n.MESSAGES[key]
        assert chinese and english, key


def test_every_reason_has_one_name_on_pages_and_in_reports() -> None:
    """The report PNG said 无出入证 where the pages said 无通行证 for the same reason."""
    for reason in Reason:
        chinese, english = i18n.MESSAGES[f"reason.{reason.value}"]
        assert chinese == REASON_ZH[reason.value] and english, reason
