"""The daily report (日报告, or 零报告 when nothing happened): counts per site and kiosk for one local day.

`build_report` is a pure function of the day's entries and the store's facts; `daily_report` only fetches.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from checkpoint.entry import Entry, format_ts, utc_now
from checkpoint.reasons import Reason
from office.store.base import Gap, Store, StoredResolution

REPORT_SCHEMA = "checkpoint.report/1"
OVERRIDE_KINDS = ("staff", "remote")
REASONS: tuple[str, ...] = tuple(reason.value for reason in Reason)
OfflineRow = tuple[str, str, datetime, datetime | None]


@dataclass(frozen=True)
class Counts:
    """What happened at one kiosk or one site during the day."""

    entries: int
    allows: int
    denies: int
    denies_by_reason: Mapping[str, int]  # an entry with two reasons counts under each
    attentions: int
    attentions_by_reason: Mapping[str, int]
    fevers: int  # entries with the reason `fever`
    temperature_checks: int  # entries with a temperature
    health_checks: int  # entries with a health code
    unique_persons: int  # distinct person refs (ID-number entries)
    visitors: int  # distinct pink passes
    first_seen_passes: int  # passes whose first stored entry at the site is on this day
    overrides: Mapping[str, int]  # "staff" and "remote", always both
    travel_checks: int = 0  # entries whose health code carried a travel card (行程卡)
    travel_risks: int = 0  # entries with the reason `travel_risk`

    def to_json(self) -> dict[str, Any]:
        """A plain dict for JSON."""
        return {
            "entries": self.entries,
            "allows": self.allows,
            "denies": self.denies,
            "denies_by_reason": dict(self.denies_by_reason),
            "attentions": self.attentions,
            "attentions_by_reason": dict(self.attentions_by_reason),
            "fevers": self.fevers,
            "temperature_checks": self.temperature_checks,
            "health_checks": self.health_checks,
            "unique_persons": self.unique_persons,
            "visitors": self.visitors,
            "first_seen_passes": self.first_seen_passes,
            "overrides": dict(self.overrides),
            "travel_checks": self.travel_checks,
            "travel_risks": self.travel_risks,
        }


@dataclass(frozen=True)
class Offline:
    """A period a kiosk was offline, clipped to the day (and to now, for today)."""

    start: datetime
    end: datetime
    ongoing: bool  # still offline when the clipped period ends

    @property
    def seconds(self) -> int:
        return int((self.end - self.start).total_seconds())

    def to_json(self) -> dict[str, Any]:
        """A plain dict for JSON."""
        return {"from": format_ts(self.start), "to": format_ts(self.end), "seconds": self.seconds,
                "ongoing": self.ongoing}


@dataclass(frozen=True)
class KioskReport:
    """One kiosk's day: counts, offline periods and the open seq gaps (shown until they are filled)."""

    kiosk: str
    counts: Counts
    offline: tuple[Offline, ...]
    gaps: tuple[Gap, ...]

    @property
    def offline_s(self) -> int:
        return sum(period.seconds for period in self.offline)

    @property
    def missing(self) -> int:
        return sum(gap.last - gap.first + 1 for gap in self.gaps)

    def to_json(self) -> dict[str, Any]:
        """A plain dict for JSON."""
        return {
            "kiosk": self.kiosk,
            "counts": self.counts.to_json(),
            "offline": [period.to_json() for period in self.offline],
            "offline_s": self.offline_s,
            "gaps": [{"first": g.first, "last": g.last, "missing": g.last - g.first + 1} for g in self.gaps],
            "missing": self.missing,
        }


@dataclass(frozen=True)
class SiteReport:
    """One site's day: totals, each kiosk, and entries and fevers per local hour."""

    site: str
    totals: Counts
    kiosks: tuple[KioskReport, ...]
    entries_per_hour: tuple[int, ...]  # 24 buckets of local time
    fevers_per_hour: tuple[int, ...]

    @property
    def zero(self) -> bool:
        return self.totals.entries == 0

    @property
    def offline_kiosks(self) -> int:
        return sum(1 for kiosk in self.kiosks if kiosk.offline)

    @property
    def missing(self) -> int:
        return sum(kiosk.missing for kiosk in self.kiosks)

    def to_json(self) -> dict[str, Any]:
        """A plain dict for JSON."""
        return {
            "site": self.site,
            "zero": self.zero,
            "totals": self.totals.to_json(),
            "offline_kiosks": self.offline_kiosks,
            "missing": self.missing,
            "entries_per_hour": list(self.entries_per_hour),
            "fevers_per_hour": list(self.fevers_per_hour),
            "kiosks": [kiosk.to_json() for kiosk in self.kiosks],
        }


@dataclass(frozen=True)
class DailyReport:
    """The report of one local day [00:00, 24:00) for one site, or for every site."""

    day: date
    timezone: str
    start: datetime  # UTC
    end: datetime  # UTC
    site: str | None  # the site asked for; None for every site
    generated_at: datetime
    totals: Counts
    sites: tuple[SiteReport, ...]
    purged: int  # entries the retention purge deleted that day (all sites)

    @property
    def zero(self) -> bool:
        """True for a 零报告: no entries at all."""
        return self.totals.entries == 0

    def to_json(self) -> dict[str, Any]:
        """The report as published on `checkpoint/v1/{site}/report` (schema `checkpoint.report/1`)."""
        return {
            "schema": REPORT_SCHEMA,
            "date": self.day.isoformat(),
            "timezone": self.timezone,
            "from": format_ts(self.start),
            "to": format_ts(self.end),
            "site": self.site,
            "generated_at": format_ts(self.generated_at),
            "zero": self.zero,
            "purged": self.purged,
            "totals": self.totals.to_json(),
            "sites": [site.to_json() for site in self.sites],
        }


def day_bounds(day: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """The local day [00:00, next 00:00) as UTC datetimes (23 or 25 hours across a DST change)."""
    start = datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=tz).astimezone(UTC)
    return start, end


def count(entries: Iterable[Entry], *, first_seen: int = 0,
          resolutions: Iterable[StoredResolution] = ()) -> Counts:
    """The counts of a set of entries; `first_seen` is computed by the caller (it needs the store).

    Each entry is one person. An override is a manual opening (an entry with `override`) or an attention
    that staff or the office resolved by opening the gate (its resolution).
    """
    entries = list(entries)
    denies: Counter[str] = Counter()
    attentions: Counter[str] = Counter()
    overrides: Counter[str] = Counter(r.resolution.by for r in resolutions if r.resolution.opened)
    for entry in entries:
        if entry.decision == "deny":
            denies.update(str(reason) for reason in entry.reasons)
        elif entry.decision == "attention":
            attentions.update(str(reason) for reason in entry.reasons)
        if entry.override is not None:
            overrides[entry.override] += 1
    return Counts(
        entries=len(entries),
        allows=sum(1 for e in entries if e.decision == "allow"),
        denies=sum(1 for e in entries if e.decision == "deny"),
        denies_by_reason=_by_reason(denies),
        attentions=sum(1 for e in entries if e.decision == "attention"),
        attentions_by_reason=_by_reason(attentions),
        fevers=sum(1 for e in entries if Reason.FEVER in e.reasons),
        temperature_checks=sum(1 for e in entries if e.temperature is not None),
        health_checks=sum(1 for e in entries if e.health is not None),
        unique_persons=len({e.person.ref for e in entries if e.person is not None}),
        visitors=len({e.pass_.pid for e in entries if e.pass_ is not None and e.pass_.cat == "pink"}),
        first_seen_passes=first_seen,
        overrides={kind: overrides[kind] for kind in OVERRIDE_KINDS},
        travel_checks=sum(1 for e in entries if e.health is not None and e.health.travel is not None),
        travel_risks=sum(1 for e in entries if Reason.TRAVEL_RISK in e.reasons),
    )


def _by_reason(counter: Counter[str]) -> dict[str, int]:
    return {reason: counter[reason] for reason in sorted(counter) if counter[reason]}


def clip_offline(went: datetime, back: datetime | None, start: datetime, end: datetime) -> Offline | None:
    """The part of an offline period inside [start, end); None when nothing is left."""
    lo = max(went, start)
    hi = end if back is None else min(back, end)
    if hi <= lo:
        return None
    return Offline(lo, hi, ongoing=back is None or back > hi)


def build_report(
    day: date,
    tz: ZoneInfo,
    entries: Sequence[Entry],
    *,
    site: str | None,
    known_kiosks: Iterable[tuple[str, str]],
    first_seen: Mapping[str, Iterable[str]],
    offline: Iterable[OfflineRow],
    gaps: Iterable[Gap],
    purged: int,
    now: datetime,
    resolutions: Iterable[StoredResolution] = (),
) -> DailyReport:
    """The report from data already fetched: the day's entries, known kiosks, first-seen pids by site, …"""
    start, end = day_bounds(day, tz)
    entries = [e for e in entries if start <= e.ts < end and (site is None or e.site == site)]
    resolutions = [r for r in resolutions
                   if start <= r.resolution.ts < end and (site is None or r.site == site)]
    kiosks = {(s, k) for s, k in known_kiosks if site is None or s == site}
    kiosks |= {(e.site, e.kiosk) for e in entries}
    offline_by_kiosk: dict[tuple[str, str], list[Offline]] = {}
    for s, k, went, back in sorted(offline, key=lambda row: (row[0], row[1], row[2])):
        period = clip_offline(went, back, start, min(end, now))
        if period is not None and (site is None or s == site):
            offline_by_kiosk.setdefault((s, k), []).append(period)
            kiosks.add((s, k))
    gaps_by_kiosk: dict[tuple[str, str], list[Gap]] = {}
    for gap in sorted(gaps, key=lambda g: (g.site, g.kiosk, g.first)):
        if site is None or gap.site == site:
            gaps_by_kiosk.setdefault((gap.site, gap.kiosk), []).append(gap)
            kiosks.add((gap.site, gap.kiosk))
    sites = sorted({s for s, _ in kiosks} | ({site} if site is not None else set()))
    reports = []
    for name in sites:
        at_site = [e for e in entries if e.site == name]
        resolved_at_site = [r for r in resolutions if r.site == name]
        first_kiosk = _first_seen_kiosks(at_site, set(first_seen.get(name, ())))
        kiosk_reports = tuple(
            KioskReport(
                kiosk=k,
                counts=count([e for e in at_site if e.kiosk == k],
                             first_seen=sum(1 for where in first_kiosk.values() if where == k),
                             resolutions=[r for r in resolved_at_site if r.kiosk == k]),
                offline=tuple(offline_by_kiosk.get((name, k), ())),
                gaps=tuple(gaps_by_kiosk.get((name, k), ())),
            )
            for s, k in sorted(kiosks) if s == name
        )
        per_hour, fevers_per_hour = [0] * 24, [0] * 24
        for e in at_site:
            hour = e.ts.astimezone(tz).hour
            per_hour[hour] += 1
            fevers_per_hour[hour] += Reason.FEVER in e.reasons
        totals = count(at_site, first_seen=len(first_kiosk), resolutions=resolved_at_site)
        reports.append(SiteReport(name, totals, kiosk_reports, tuple(per_hour), tuple(fevers_per_hour)))
    return DailyReport(
        day=day, timezone=tz.key, start=start, end=end, site=site, generated_at=now,
        totals=count(entries, first_seen=sum(r.totals.first_seen_passes for r in reports),
                     resolutions=resolutions),
        sites=tuple(reports), purged=purged,
    )


def _first_seen_kiosks(entries: Sequence[Entry], first_seen: set[str]) -> dict[str, str]:
    """pid → the kiosk of its first entry, for the first-seen pids that have an entry among `entries`."""
    where: dict[str, str] = {}
    for entry in sorted(entries, key=lambda e: (e.ts, e.kiosk, e.seq)):
        if entry.pass_ is not None and entry.pass_.pid in first_seen:
            where.setdefault(entry.pass_.pid, entry.kiosk)
    return where


def zone(tz: ZoneInfo | str) -> ZoneInfo:
    """A ZoneInfo from a zone or its name; ValueError for an unknown name."""
    if isinstance(tz, ZoneInfo):
        return tz
    try:
        return ZoneInfo(tz)
    except (KeyError, ValueError) as exc:  # ZoneInfoNotFoundError is a KeyError
        raise ValueError(f"unknown time zone {tz!r}") from exc


def report_refusal(store: Store, day: date, *, site: str | None, tz: ZoneInfo | str,
                   now: datetime | None = None) -> str | None:
    """Why a report of `day` would be a false zero report, or None.

    A day that has not begun in `tz` has nothing to report yet, and a site that no kiosk ever sent an
    entry, status or alert from is most likely a typo: neither is a 零报告.
    """
    tz = zone(tz)
    today = (utc_now() if now is None else now).astimezone(tz).date()
    if day > today:
        return f"{day.isoformat()} is in the future in {tz.key} (today is {today.isoformat()}): no report yet"
    if site is not None and not store.site_reported(site):
        return f"site {site!r}: no kiosk has ever reported from it (no entry, status or alert stored)"
    return None


def daily_report(store: Store, day: date, *, site: str | None, tz: ZoneInfo | str,
                 now: datetime | None = None) -> DailyReport:
    """Fetch the day's data from the store and build the report (a zero report when nothing happened)."""
    tz = zone(tz)
    now = utc_now() if now is None else now.astimezone(UTC)
    start, end = day_bounds(day, tz)
    known = store.kiosks(site=site)
    entries = store.entries_between(start, end, site=site)
    sites = sorted({s for s, _ in known} | {e.site for e in entries} | ({site} if site else set()))
    return build_report(
        day, tz, entries, site=site, known_kiosks=known,
        first_seen={s: store.first_seen_passes(start, end, site=s) for s in sites},
        offline=store.offline_intervals(start, end, site=site),
        gaps=store.gaps(site=site),
        purged=store.purged_between(start, end),
        now=now,
        resolutions=store.resolutions_between(start, end, site=site),
    )
