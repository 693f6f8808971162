"""Contact tracing: every entry of a person, pass, household or kiosk in a window, and close contacts.

Every query is written to the store's trace log (who, when, the parameters) before it runs. An ID number
is hashed with each site's key in memory; only the resulting person refs are logged, never the number.
"""

from __future__ import annotations

import csv
import getpass
import io
import json
import os
import re
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from checkpoint import idnumber
from checkpoint.entry import Entry, format_ts, utc_now
from office.store.base import Store

CSV_COLUMNS = ("ts", "site", "kiosk", "seq", "direction", "decision", "reasons", "override", "pid", "cat",
               "hh", "person_ref", "person_masked", "body_c", "id")  # id: what `--contacts` takes
MAX_CONTACT_MINUTES = 24 * 60
BOM = "\ufeff"
ID_SEARCH = timedelta(hours=1)  # how far from the time in an entry's UUIDv7 its `ts` is looked for
_SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,31}")
_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
_REF = re.compile(r"[0-9a-f]{64}")
_UUID7 = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
_ONE_MS = timedelta(milliseconds=1)


class TraceError(ValueError):
    """A trace query that cannot run as given; the message never contains an ID number."""


class EntryNotFound(TraceError):
    """The entry a close-contact query starts from is not in the store."""


def default_who() -> str:
    """The OS user running the query."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid {os.getuid()}"


def trace(
    store: Store,
    *,
    start: datetime,
    end: datetime,
    person_ref: str | None = None,
    id_number: str | None = None,
    pid: str | None = None,
    household: str | None = None,
    kiosk: str | None = None,
    site: str | None = None,
    who: str | None = None,
    site_keys: Mapping[str, bytes] | None = None,
    now: datetime | None = None,
) -> list[Entry]:
    """Every entry of one person ref, ID number, pass, household or kiosk with start <= ts < end, logged."""
    start, end = _window(start, end)
    selectors = {"person_ref": person_ref, "id_number": id_number, "pid": pid, "household": household,
                 "kiosk": kiosk}
    given = [name for name, value in selectors.items() if value is not None]
    if len(given) != 1:
        raise TraceError("give exactly one of person_ref, id_number, pid, household or kiosk")
    if site is not None:
        _check(_NAME, site, "site")
    query: dict[str, Any] = {"by": given[0], "site": site, "from": format_ts(start), "to": format_ts(end)}
    lookups: list[dict[str, str | None]]
    if id_number is not None:
        refs = id_number_refs(id_number, site_keys or {}, site=site)
        query["person_refs"] = refs
        lookups = [{"site": s, "person_ref": ref} for s, ref in refs.items()]
    else:
        value = str(selectors[given[0]])
        if idnumber.looks_like_id_number(value):
            what = given[0].replace("_", " ")
            raise TraceError(f"the {what} looks like an ID number: trace it as an ID number instead")
        if given[0] == "person_ref":
            value = _check(_REF, value.strip().lower(), "person ref (64 hex digits)")
        else:
            _check(_NAME if given[0] == "kiosk" else _SAFE_ID, value, given[0].replace("_", " "))
        query["value"] = value
        column = {"person_ref": "person_ref", "pid": "pid", "household": "hh", "kiosk": "kiosk"}[given[0]]
        lookups = [{"site": site, column: value}]
    _log(store, who, query, now)
    found: dict[str, Entry] = {}
    for lookup in lookups:
        for entry in store.entries_between(start, end, **lookup):
            found[entry.id] = entry
    return sorted(found.values(), key=_order)


def id_number_refs(id_number: str, site_keys: Mapping[str, bytes], *, site: str | None = None
                   ) -> dict[str, str]:
    """site → person ref of the number under that site's key (only `site` when given)."""
    try:
        number = idnumber.parse(id_number)
    except idnumber.IdNumberError as exc:
        raise TraceError(f"ID number: {exc.problem}") from None
    keys = {s: key for s, key in site_keys.items() if site is None or s == site}
    if not keys:
        where = f"site {site}" if site is not None else "any site"
        raise TraceError(f"no HMAC key for {where}: an ID number can only be traced with the site key "
                         "(sites.<site>.hmac_key_file in the collector config)")
    return {s: number.person_ref(key) for s, key in sorted(keys.items())}


def close_contacts(
    store: Store,
    index: str | tuple[str, str, datetime],
    *,
    minutes: float,
    who: str | None = None,
    now: datetime | None = None,
) -> list[Entry]:
    """Everyone at the kiosk ±`minutes` (inclusive) of an entry id (itself left out) or (site, kiosk, ts)."""
    if not 0 < minutes <= MAX_CONTACT_MINUTES:
        raise TraceError(f"minutes: expected more than 0 and at most {MAX_CONTACT_MINUTES}")
    query: dict[str, Any] = {"by": "contacts", "minutes": minutes}
    if isinstance(index, str):
        query["entry_id"] = _check(_UUID7, index.strip().lower(), "entry id (a UUIDv7)")
    else:
        site, kiosk, at = index
        _check(_NAME, site, "site")
        _check(_NAME, kiosk, "kiosk")
        query.update(site=site, kiosk=kiosk, at=format_ts(_aware(at, "the entry time")))
    _log(store, who, query, now)
    if isinstance(index, str):
        entry = find_entry(store, query["entry_id"])
        site, kiosk, at, skip = entry.site, entry.kiosk, entry.ts, entry.id
    else:
        at, skip = _aware(index[2], "the entry time"), None
    span = timedelta(minutes=minutes)
    around = store.entries_between(at - span, at + span + _ONE_MS, site=site, kiosk=kiosk)
    return sorted((e for e in around if e.id != skip), key=_order)


def find_entry(store: Store, entry_id: str) -> Entry:
    """The entry with this id, looked for around the time its UUIDv7 carries."""
    made = datetime.fromtimestamp((uuid.UUID(entry_id).int >> 80) / 1000, UTC)
    for entry in store.entries_between(made - ID_SEARCH, made + ID_SEARCH):
        if entry.id == entry_id:
            return entry
    raise EntryNotFound(f"entry {entry_id} not found (looked within an hour of the time in its id)")


def trace_csv(entries: Iterable[Entry], tz: tzinfo = UTC) -> str:
    """The entries with the columns `CSV_COLUMNS`, after a UTF-8 BOM so Excel reads it as UTF-8; `ts` is
    local in `tz` with its offset. Masked person and keyed ref only, never an ID number."""
    out = io.StringIO()
    out.write(BOM)
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for e in entries:
        writer.writerow([
            local_ts(e.ts, tz), e.site, e.kiosk, e.seq, e.direction, e.decision,
            ";".join(str(reason) for reason in e.reasons), e.override or "",
            e.pass_.pid if e.pass_ else "", e.pass_.cat if e.pass_ else "",
            (e.pass_.hh or "") if e.pass_ else "",
            e.person.ref if e.person else "", _cell(e.person.masked) if e.person else "",
            f"{e.temperature.body_c:.1f}" if e.temperature else "", e.id,
        ])
    return out.getvalue()


def local_ts(value: datetime, tz: tzinfo) -> str:
    """'2026-03-19T15:02:11.123+08:00': the time in `tz`, milliseconds, with its offset."""
    return value.astimezone(tz).isoformat(timespec="milliseconds")


def _cell(text: str) -> str:
    """Text a spreadsheet will not run as a formula."""
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text


def _log(store: Store, who: str | None, query: Mapping[str, Any], now: datetime | None) -> None:
    who = (who or "").strip() or default_who()
    if len(who) > 64 or not who.isprintable():
        raise TraceError("who: at most 64 printable characters")
    text = json.dumps(query, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    store.log_trace(who, text, utc_now() if now is None else now.astimezone(UTC))


def _window(start: datetime, end: datetime) -> tuple[datetime, datetime]:
    start, end = _aware(start, "from"), _aware(end, "to")
    if end <= start:
        raise TraceError("the window ends before it starts")
    return start, end


def _aware(when: datetime, what: str) -> datetime:
    if when.tzinfo is None:
        raise TraceError(f"{what}: a time with a time zone")
    return when.astimezone(UTC)


def _check(pattern: re.Pattern[str], value: str, what: str) -> str:
    if not pattern.fullmatch(value):
        raise TraceError(f"{what}: {value[:70]!r} is not valid")
    return value


def _order(entry: Entry) -> tuple[datetime, str, str, int]:
    return entry.ts, entry.site, entry.kiosk, entry.seq
