"""The issued-pass registry: import `kiosk-admin`'s `passes.csv`, then compare it with what kiosks saw.

Two checks: passes seen at the gates that the office never issued (a forgery, or a stale registry), and
registered households that have not come through any gate for N days (a welfare check).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from checkpoint.entry import Entry, utc_now
from checkpoint.idnumber import looks_like_id_number
from checkpoint.keys import check_kid
from checkpoint.reasons import COLOURS
from office.admin.passes import REGISTRY_COLUMNS
from office.store.base import IssuedPass, Store

_SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,31}")
_IDH = re.compile(r"[0-9a-f]{64}")
_MAX_UNIX = 2**53
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class RegistryError(ValueError):
    """A registry file that cannot be imported; one line per problem, each naming its line."""


@dataclass(frozen=True)
class UnknownPass:
    """A pass seen in entries that the issued-pass registry does not hold."""

    pid: str
    cat: str
    hh: str | None
    entries: int
    first: datetime
    last: datetime
    kiosks: tuple[str, ...]  # "site/kiosk"


@dataclass(frozen=True)
class AbsentHousehold:
    """A registered household with no entry in the last `days` days."""

    hh: str
    pids: tuple[str, ...]
    last_seen: datetime | None  # the last entry still stored (entries older than retention are gone)


def parse_registry_csv(text: str, *, source: str = "passes.csv") -> list[IssuedPass]:
    """Validate every line of a `passes.csv`; RegistryError lists each bad line. A later row of a pid wins."""
    reader = csv.reader(io.StringIO(text.removeprefix("\ufeff"), newline=""), strict=True)
    problems: list[str] = []
    passes: dict[str, IssuedPass] = {}
    try:
        header = next(reader, None)
        if header is None or tuple(cell.strip() for cell in header) != REGISTRY_COLUMNS:
            raise RegistryError(f"{source} line 1: the header must be {','.join(REGISTRY_COLUMNS)}")
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue
            try:
                issued = _row(row)
            except ValueError as exc:
                problems.append(f"{source} line {reader.line_num}: {exc}")
            else:
                passes[issued.pid] = issued
    except csv.Error as exc:
        problems.append(f"{source} line {reader.line_num}: {exc}")
    if problems:
        raise RegistryError("\n".join(problems))
    if not passes:
        raise RegistryError(f"{source}: no passes (a header row and one row per pass)")
    return sorted(passes.values(), key=lambda p: p.pid)


def _row(row: Sequence[str]) -> IssuedPass:
    if len(row) != len(REGISTRY_COLUMNS):
        raise ValueError(f"expected {len(REGISTRY_COLUMNS)} cells, found {len(row)}")
    cells = dict(zip(REGISTRY_COLUMNS, (cell.strip() for cell in row), strict=True))
    for name, value in cells.items():
        if looks_like_id_number(value):  # never echo it: it may be someone's raw ID number
            raise ValueError(f"{name} looks like a raw ID number; the registry holds only its keyed hash")
    pid, cat, hh, name, idh, kid = (cells[k] for k in ("pid", "cat", "hh", "name_masked", "idh", "kid"))
    if not _SAFE_ID.fullmatch(pid):
        raise ValueError(f"pid {pid[:40]!r}: expected 1-32 letters, digits, '_' or '-', like P-00017")
    if cat not in COLOURS:
        raise ValueError(f"cat {cat[:40]!r}: expected {'|'.join(COLOURS)}")
    if hh and not _SAFE_ID.fullmatch(hh):
        raise ValueError(f"hh {hh[:40]!r}: expected a household like 9-23-301, or empty")
    if len(name) > 32 or not name.isprintable():
        raise ValueError("name_masked: expected at most 32 printable characters")
    if not _IDH.fullmatch(idh):
        raise ValueError("idh: expected 64 lower-case hex digits")
    nbf, exp = _unix(cells["nbf"], "nbf"), _unix(cells["exp"], "exp")
    if exp <= nbf:
        raise ValueError("exp: expected after nbf")
    try:
        check_kid(kid)
    except ValueError as exc:
        raise ValueError(str(exc)) from None
    return IssuedPass(pid=pid, cat=cat, hh=hh or None, name_masked=name, idh=idh, nbf=nbf, exp=exp, kid=kid)


def _unix(value: str, name: str) -> int:
    if not value.isascii() or not value.isdigit() or int(value) > _MAX_UNIX:
        raise ValueError(f"{name} {value[:40]!r}: expected Unix seconds")
    return int(value)


def read_registry_csv(path: Path) -> list[IssuedPass]:
    """Read and validate a `passes.csv` file."""
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise RegistryError(f"{path}: cannot read: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[: exc.start].count(b"\n") + 1
        raise RegistryError(f"{path.name} line {line}: not UTF-8 text") from None
    return parse_registry_csv(text, source=path.name)


def import_registry(store: Store, path: Path) -> int:
    """Validate `passes.csv` whole, then add or replace its passes in the store; returns rows written."""
    return store.import_registry(read_registry_csv(path))


def find_unknown(entries: Iterable[Entry], registry: Iterable[IssuedPass]) -> list[UnknownPass]:
    """The passes among `entries` whose pid is not in the registry, by pid."""
    issued = {p.pid for p in registry}
    seen: dict[str, list[Entry]] = {}
    for entry in entries:
        if entry.pass_ is not None and entry.pass_.pid not in issued:
            seen.setdefault(entry.pass_.pid, []).append(entry)
    found = []
    for pid, items in sorted(seen.items()):
        items.sort(key=lambda e: e.ts)
        last = items[-1].pass_
        assert last is not None
        found.append(UnknownPass(pid=pid, cat=last.cat, hh=last.hh, entries=len(items), first=items[0].ts,
                                 last=items[-1].ts,
                                 kiosks=tuple(sorted({f"{e.site}/{e.kiosk}" for e in items}))))
    return found


def unknown_passes(store: Store, start: datetime, end: datetime, *, site: str | None = None
                   ) -> list[UnknownPass]:
    """Passes seen in [start, end) that the issued-pass registry does not hold."""
    return find_unknown(store.entries_between(start, end, site=site), store.registry())


def registered_households(registry: Iterable[IssuedPass], start: datetime, now: datetime
                          ) -> dict[str, tuple[str, ...]]:
    """hh → its pids, for households whose passes cover [start, now] (registered the whole window)."""
    by_hh: dict[str, list[IssuedPass]] = {}
    for issued in registry:
        if issued.hh is not None:
            by_hh.setdefault(issued.hh, []).append(issued)
    return {
        hh: tuple(sorted(p.pid for p in passes))
        for hh, passes in sorted(by_hh.items())
        if min(p.nbf for p in passes) <= start.timestamp() and max(p.exp for p in passes) >= now.timestamp()
    }


def absent_households(store: Store, *, days: int, now: datetime | None = None) -> list[AbsentHousehold]:
    """Registered households with no entry (by household or by one of its passes) in the last `days` days."""
    if days < 1:
        raise ValueError("days: expected 1 or more")
    now = utc_now() if now is None else now.astimezone(UTC)
    start = now - timedelta(days=days)
    absent = []
    for hh, pids in registered_households(store.registry(), start, now).items():
        if store.entries_between(start, now, hh=hh) or any(store.entries_between(start, now, pid=p)
                                                            for p in pids):
            continue
        earlier = store.entries_between(EPOCH, start, hh=hh)
        earlier += [e for p in pids for e in store.entries_between(EPOCH, start, pid=p)]
        absent.append(AbsentHousehold(hh, pids, max((e.ts for e in earlier), default=None)))
    return absent
