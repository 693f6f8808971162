"""The SQLite outbox: durable ids and seqs, delivery marks, backlog, pruning and the household tally."""

from __future__ import annotations

import json
import sqlite3
import stat
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from checkpoint.entry import Entry, EntryDraft, PassInfo, Timing
from kiosk.config import SiteConfig, StorageConfig
from kiosk.outbox import QUOTA_WINDOW_S, Outbox, OutboxError

TIMING = Timing(decode=1.0, decide=0.2, session=900)


def draft(decision: str = "allow", *, hh: str | None = None, direction: str = "in",
          override: str | None = None, ts: datetime | None = None) -> EntryDraft:
    data: dict[str, object] = {"direction": direction, "decision": decision, "override": override,
                               "timing_ms": TIMING}
    if hh is not None:
        data["pass_"] = PassInfo(pid="P-1", cat="green", hh=hh)
    if ts is not None:
        data["ts"] = ts
    return EntryDraft.model_validate(data)


@pytest.fixture
def box(tmp_path: Path) -> Outbox:
    return Outbox(tmp_path / "outbox.sqlite", site="s1", kiosk="gate-north", max_entries=1000)


def test_append_commits_before_returning(box: Outbox) -> None:
    entry = box.append(draft())
    other = sqlite3.connect(box.path)  # a second connection sees only committed rows
    payload, seq = other.execute("SELECT payload, seq FROM outbox WHERE id = ?", (entry.id,)).fetchone()
    other.close()
    assert seq == 1 and Entry.model_validate_json(payload) == entry
    assert entry.site == "s1" and entry.kiosk == "gate-north" and entry.schema_ == "checkpoint.entry/1"


def test_wal_full_sync_and_private_file(box: Outbox) -> None:
    db = sqlite3.connect(box.path)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.close()
    assert box._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert stat.S_IMODE(box.path.stat().st_mode) == 0o600


def test_ids_are_time_ordered_uuid7(box: Outbox) -> None:
    ids = [box.append(draft()).id for _ in range(50)]
    parsed = [uuid.UUID(i) for i in ids]
    assert all(u.version == 7 and u.variant == uuid.RFC_4122 for u in parsed)
    assert ids == sorted(ids) and len(set(ids)) == 50
    first_ms = parsed[0].int >> 80
    assert abs(first_ms - time.time() * 1000) < 60_000


def test_seq_continues_across_reopen_and_prune(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite"
    with Outbox(path, site="s1", kiosk="k", retention_s=0) as box:
        rows = [box.append(draft()) for _ in range(3)]
        assert [e.seq for e in rows] == [1, 2, 3]
        box.mark_delivered(*(r.row for r in box.pending(10)))
        assert box.prune(now=time.time() + 1) == 3 and box.pending(10) == []
    with Outbox(path, site="s1", kiosk="k", retention_s=0) as box:
        assert box.append(draft()).seq == 4  # the counter row survives pruning every entry
        assert box.last_seq() == 4
    with Outbox(path, site="s1", kiosk="other", retention_s=0) as box:
        assert box.append(draft()).seq == 1  # seq is per kiosk


def test_pending_order_marks_and_backlog(box: Outbox) -> None:
    entries = [box.append(draft()) for _ in range(5)]
    alert = box.append_alert("fever", "38.2 °C\x00\x1b[31m", entry_id=entries[0].id)
    assert alert.detail == "38.2 °C??[31m" and alert.entry_id == entries[0].id
    rows = box.pending(10)
    assert [r.kind for r in rows] == ["entry"] * 5 + ["alert"]
    assert [r.seq for r in rows[:5]] == [1, 2, 3, 4, 5] and rows[5].seq is None
    assert [r.seq for r in box.pending(2, kind="entry", after_row=rows[1].row)] == [3, 4]
    assert [r.id for r in box.pending(5, kind="alert")] == [alert.id]
    assert box.mark_delivered(rows[0].row, rows[1].row) == 2
    assert box.mark_delivered(rows[0].row) == 0  # already delivered
    box.mark_refused(rows[2].row, 135)
    box.mark_refused(rows[2].row, 135)
    refused = box.pending(1)[0]
    assert refused.seq == 3 and refused.refused == 135 and refused.attempts == 2
    state = box.backlog(now=time.time() + 10)
    assert (state.backlog, state.alerts, state.refused, state.full) == (3, 1, 1, False)
    assert state.oldest_s is not None and 9 < state.oldest_s < 20
    box.mark_delivered(refused.row)
    assert box.backlog().refused == 0
    box.mark_delivered(*(r.row for r in box.pending(10)))
    assert box.backlog() == box.backlog().model_copy(update={"backlog": 0, "oldest_s": None})


def test_concurrent_append_and_mark(box: Outbox) -> None:
    total = 300
    done = threading.Event()
    errors: list[BaseException] = []

    def flow() -> None:
        try:
            for _ in range(total):
                box.append(draft())
        except BaseException as exc:
            errors.append(exc)
        finally:
            done.set()

    thread = threading.Thread(target=flow, name="test-flow")
    thread.start()
    delivered: list[int] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and (not done.is_set() or box.backlog().backlog):
        rows = box.pending(20)
        box.mark_delivered(*(r.row for r in rows))
        delivered += [r.seq for r in rows if r.seq is not None]
    thread.join(5)
    assert not errors
    assert delivered == list(range(1, total + 1))  # each once, in seq order
    assert box.backlog().backlog == 0


def test_prune_keeps_every_undelivered_row(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite", site="s1", kiosk="k", max_entries=10, retention_s=3600)
    for _ in range(12):
        box.append(draft())
    rows = box.pending(100)
    box.mark_delivered(*(r.row for r in rows[:4]))
    assert box.prune() == 2  # over the cap: the two oldest delivered rows go, though still in retention
    assert box.backlog().backlog == 8 and box.backlog().full is False
    for _ in range(4):
        box.append(draft())
    assert box.prune() == 2
    state = box.backlog()
    assert state.backlog == 12 and state.full  # the cap never costs an undelivered entry
    assert box.append(draft()).seq == 17  # and a full outbox still records
    assert box.prune(now=time.time() + 7200) == 0


def test_prune_by_retention(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite", site="s1", kiosk="k", retention_s=3600)
    for _ in range(3):
        box.append(draft())
    box.mark_delivered(box.pending(1)[0].row)
    assert box.prune() == 0
    assert box.prune(now=time.time() + 3601) == 1
    assert len(box.pending(10)) == 2
    box.mark_delivered(*(r.row for r in box.pending(10)))
    assert box.prune(now=time.time() + 3601, limit=1) == 1  # in batches
    assert box.prune(now=time.time() + 3601, limit=1) == 1
    assert box.prune(now=time.time() + 3601, limit=1) == 0


def test_household_count(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite", site="s1", kiosk="k", retention_s=0)
    now = datetime.now(UTC)
    midnight = now - timedelta(hours=1)
    box.append(draft(hh="9-23-301", direction="out"))
    box.append(draft(hh="9-23-301", direction="in"))
    box.append(draft("attention", hh="9-23-301", direction="out", override="staff"))
    box.append(draft("deny", hh="9-23-301", direction="out"))  # refused: does not count
    box.append(draft(hh="9-23-302", direction="out"))
    box.append(draft(hh="9-23-301", direction="out", ts=now - timedelta(hours=3)))  # before `since`
    assert box.count_allowed("9-23-301", midnight) == 3
    assert box.count_allowed("9-23-301", midnight, direction="out") == 2
    assert box.count_allowed("9-23-301", midnight.timestamp() - 4 * 3600) == 4
    assert box.count_allowed("nobody", midnight) == 0
    box.mark_delivered(*(r.row for r in box.pending(100)))
    box.prune(now=time.time() + 10)  # delivered rows gone, the tally stays
    assert box.pending(100) == [] and box.count_allowed("9-23-301", midnight) == 3
    box.prune(now=time.time() + QUOTA_WINDOW_S + 4 * 3600)
    assert box.count_allowed("9-23-301", midnight.timestamp() - 4 * 3600) == 0


def test_append_waits_for_another_writer(box: Outbox) -> None:
    other = sqlite3.connect(box.path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    release = threading.Timer(0.3, lambda: other.execute("COMMIT"))
    release.start()
    started = time.monotonic()
    entry = box.append(draft())
    release.join()
    other.close()
    assert entry.seq == 1 and time.monotonic() - started >= 0.25


def test_readers_do_not_block_append(box: Outbox) -> None:
    box.append(draft())
    reader = sqlite3.connect(box.path, isolation_level=None)
    reader.execute("BEGIN")
    assert reader.execute("SELECT count(*) FROM outbox").fetchone()[0] == 1  # holds a read snapshot
    started = time.monotonic()
    assert box.append(draft()).seq == 2
    assert time.monotonic() - started < 1.0
    reader.execute("COMMIT")
    reader.close()


def test_alerts_survive_reopen(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite"
    with Outbox(path, site="s1", kiosk="k") as box:
        box.append_alert("fault", "camera gone")
    with Outbox(path, site="s1", kiosk="k") as box:
        rows = box.pending(10, kind="alert")
        assert len(rows) == 1 and json.loads(rows[0].payload)["detail"] == "camera gone"
        assert rows[0].topic == "checkpoint/v1/s1/k/alert"


def test_unusable_path_is_an_outbox_error(tmp_path: Path) -> None:
    with pytest.raises(OutboxError):
        Outbox(tmp_path, site="s1", kiosk="k")
    with pytest.raises(ValueError):
        Outbox(tmp_path / "o.sqlite", site="s/1", kiosk="k")


def test_from_config(tmp_path: Path) -> None:
    storage = StorageConfig(state_dir=tmp_path / "state", delivered_retention_s=60)
    box = Outbox.from_config(storage, SiteConfig(id="s1", kiosk="gate-north"))
    assert box.path == tmp_path / "state" / "outbox.sqlite" and box.retention_s == 60
    assert box.append(draft()).seq == 1
