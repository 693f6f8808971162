"""The reports the store keeps for the web app's history, on SQLite and on the real PostgreSQL: every
version kept, newest day first, the JSON, CSV and PNG back byte for byte."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from fixtures.collector_data import insert, make_entry

from office.config import parse_collector_config
from office.ingest.service import Schedule
from office.store.base import Store

MADE = datetime(2026, 3, 20, 0, 10, tzinfo=UTC)
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256))


def test_reports_are_kept_with_their_files_and_listed_newest_first(each_store: Store) -> None:
    store = each_store
    assert store.kept_reports() == []
    first = store.keep_report("s1", date(2026, 3, 19), made_at=MADE, made_by="schedule", zero=False,
                              json_text='{"date": "2026-03-19", "site": "幸福里"}', csv_text="date,site\r\n",
                              png=PNG)
    zero = store.keep_report(None, date(2026, 3, 18), made_at=MADE + timedelta(minutes=1), made_by="clerk",
                             zero=True, json_text="{}", csv_text="", png=None)
    again = store.keep_report("s1", date(2026, 3, 19), made_at=MADE + timedelta(hours=1), made_by="clerk",
                              zero=False, json_text="{}", csv_text="", png=PNG[:8])
    assert first < zero < again
    kept = store.kept_reports()
    assert [(k.n, k.site, k.day, k.zero, k.made_by) for k in kept] == [
        (again, "s1", date(2026, 3, 19), False, "clerk"),
        (first, "s1", date(2026, 3, 19), False, "schedule"),
        (zero, "", date(2026, 3, 18), True, "clerk"),
    ]
    assert kept[1].made_at == MADE and kept[1].made_at.tzinfo is not None
    assert [k.n for k in store.kept_reports(limit=1)] == [again]
    files = store.kept_report(first)
    assert files is not None and files.report == kept[1]
    assert files.json_text == '{"date": "2026-03-19", "site": "幸福里"}'  # as made, not reformatted
    assert files.csv_text == "date,site\r\n" and files.png == PNG
    none = store.kept_report(zero)
    assert none is not None and none.png is None
    assert store.kept_report(again + 100) is None


def test_the_daily_schedule_keeps_each_sites_report_in_the_store(each_store: Store, tmp_path: Path) -> None:
    """A web process on another machine has no access to the ingest's out_dir: the store has the report."""
    tz = ZoneInfo("Asia/Shanghai")
    entry = make_entry("s1", "gate-north", 1, datetime(2026, 3, 18, 9, 0, tzinfo=tz).astimezone(UTC))
    insert(each_store, [entry])
    text = (f'[report]\nout_dir = "{tmp_path / "reports"}"\nformats = ["csv"]\npublish = false\n'
            '[sites.s1]\nname = "幸福里社区"\n[sites.s2]\n')
    config = parse_collector_config(text, base_dir=tmp_path)
    schedule = Schedule(config, each_store, publish=lambda topic, payload: True,
                        now=lambda: datetime(2026, 3, 19, 10, 0, tzinfo=tz))
    schedule.state = {"report": "2026-03-17", "purge": "2026-03-19"}
    schedule.tick()
    kept = {k.site: k for k in each_store.kept_reports()}
    assert set(kept) == {"s1", "s2"}
    assert not kept["s1"].zero and kept["s2"].zero and kept["s1"].made_by == "schedule"
    assert {k.day for k in kept.values()} == {date(2026, 3, 18)}
    files = each_store.kept_report(kept["s1"].n)
    assert files is not None and files.png is not None and files.png.startswith(b"\x89PNG")
    assert json.loads(files.json_text)["totals"]["entries"] == 1
    assert files.csv_text.encode() == (tmp_path / "reports" / "s1" / "s1-2026-03-18.csv").read_bytes()
