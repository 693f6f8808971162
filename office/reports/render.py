"""The daily report as text (bilingual, for the office), CSV, JSON and a PNG chart of entries per hour.

CSV columns (`CSV_COLUMNS`), one row per kiosk and then a site total row whose `kiosk` is `*`:
date, site, kiosk, entries, allows, denies, attentions, fevers, temperature_checks, health_checks,
travel_checks, travel_risks, unique_persons, visitors, first_seen_passes, overrides_staff, overrides_remote,
offline_s, missing,
then `deny_<reason>` for every reason code in contract order. A site without kiosks has only its `*` row.
Distinct counts (unique_persons, visitors) of the `*` row are distinct over the site, not sums.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping
from datetime import datetime
from typing import Literal
from zoneinfo import ZoneInfo

from office.reports.daily import REASONS, Counts, DailyReport, Offline

Format = Literal["text", "csv", "json", "png"]
FORMATS: tuple[Format, ...] = ("text", "csv", "json", "png")
SITE_TOTAL = "*"  # not a valid kiosk name, so the total row cannot be mistaken for a kiosk
CSV_COLUMNS: tuple[str, ...] = (
    "date", "site", "kiosk", "entries", "allows", "denies", "attentions", "fevers", "temperature_checks",
    "health_checks", "travel_checks", "travel_risks", "unique_persons", "visitors", "first_seen_passes",
    "overrides_staff", "overrides_remote", "offline_s", "missing", *(f"deny_{reason}" for reason in REASONS),
)
PNG_SIZE_IN = (10.0, 4.0)  # per site, at PNG_DPI
PNG_DPI = 100

REASON_ZH = {
    "fever": "发热",
    "no_health_code": "未出示健康码",
    "health_code_red": "健康码红码",
    "health_code_yellow": "健康码黄码",
    "health_code_expired": "健康码过期",
    "health_code_invalid": "健康码无效",
    "no_pass": "无出入证",
    "pass_invalid": "出入证无效",
    "pass_expired": "出入证过期",
    "pass_not_yet_valid": "出入证未生效",
    "pass_revoked": "出入证已注销",
    "outside_hours": "非通行时段",
    "quota_exceeded": "超出次数",
    "unknown_code": "无法识别的码",
    "sensor_fault": "设备故障",
    "platform_down": "平台不可用",
    "travel_risk": "行程卡异常",
    "no_travel_code": "未出示行程卡",
    "health_code_not_holder": "健康码非本人",
}


def render(report: DailyReport, fmt: Format) -> bytes:
    """The report in one format, as bytes (UTF-8 for text, CSV and JSON)."""
    if fmt == "text":
        return render_text(report).encode("utf-8")
    if fmt == "csv":
        return render_csv(report).encode("utf-8")
    if fmt == "json":
        return json.dumps(report.to_json(), ensure_ascii=False, indent=2).encode("utf-8") + b"\n"
    if fmt == "png":
        return render_png(report)
    raise ValueError(f"unknown format {fmt!r}: expected one of {', '.join(FORMATS)}")


# -- text -----------------------------------------------------------------------------------------------


def render_text(report: DailyReport) -> str:
    """A bilingual summary; its title says 零报告 when there were no entries."""
    tz = ZoneInfo(report.timezone)
    title = "零报告 Zero report" if report.zero else "日报告 Daily report"
    scope = f"站点 site {report.site}" if report.site is not None else "全部站点 all sites"
    lines = [f"{title} · {report.day.isoformat()} ({report.timezone}) · {scope}"]
    if report.zero:
        lines.append("当日无出入记录。 No entries this day.")
    if not report.sites:
        lines.append("没有已知的终端。 No kiosks are known.")
    for site in report.sites:
        lines.append("")
        lines.append(f"站点 Site {site.site}" + ("  (零报告 zero)" if site.zero else ""))
        lines.extend("  " + line for line in _counts_lines(site.totals))
        if not site.kiosks:
            lines.append("  没有已知的终端。 No kiosks are known at this site.")
        for kiosk in site.kiosks:
            c = kiosk.counts
            lines.append(f"  终端 Kiosk {kiosk.kiosk}: 出入 entries {c.entries} · 通行 allowed {c.allows} · "
                         f"拒绝 denied {c.denies} · 待协助 attention {c.attentions} · 发热 fevers {c.fevers}")
            lines.extend(f"    离线 offline {_period(p, tz)}" for p in kiosk.offline)
            for gap in kiosk.gaps:
                n = gap.last - gap.first + 1
                seqs = str(gap.first) if n == 1 else f"{gap.first}–{gap.last}"
                noun = "entry" if n == 1 else "entries"
                lines.append(f"    缺失 missing seq {seqs} ({n} 条 {noun} not received)")
        if site.offline_kiosks or site.missing:
            lines.append(f"  离线终端 kiosks offline: {site.offline_kiosks} · "
                         f"缺失记录 missing entries: {site.missing}")
    lines.append("")
    if report.purged:
        lines.append(f"按保留期限清除 Purged by retention: {report.purged}")
    lines.append(f"生成时间 Generated {_local(report.generated_at, tz)}")
    return "\n".join(lines) + "\n"


def _counts_lines(c: Counts) -> list[str]:
    lines = [
        f"出入 entries {c.entries} · 通行 allowed {c.allows} · 拒绝 denied {c.denies} · "
        f"待协助 attention {c.attentions}",
        f"发热 fevers {c.fevers} · 测温 temperature checks {c.temperature_checks} · "
        f"健康码 health codes checked {c.health_checks}",
        f"行程卡 travel cards checked {c.travel_checks} · 行程卡异常 travel_risk {c.travel_risks}",
        f"人数 unique persons {c.unique_persons} · 访客 visitors {c.visitors} · "
        f"首次出现的出入证 passes seen for the first time {c.first_seen_passes}",
        f"人工开门 manual overrides: 工作人员 staff {c.overrides.get('staff', 0)} · "
        f"远程 remote {c.overrides.get('remote', 0)}",
    ]
    if c.denies_by_reason:
        lines.append("拒绝原因 deny reasons: " + _reasons(c.denies_by_reason))
    if c.attentions_by_reason:
        lines.append("待协助原因 attention reasons: " + _reasons(c.attentions_by_reason))
    return lines


def _reasons(by_reason: Mapping[str, int]) -> str:
    return ", ".join(f"{REASON_ZH.get(r, r)} {r} {n}" for r, n in by_reason.items())


def _local(when: datetime, tz: ZoneInfo) -> str:
    return when.astimezone(tz).strftime("%Y-%m-%d %H:%M")


def _period(period: Offline, tz: ZoneInfo) -> str:
    minutes = period.seconds // 60
    if minutes >= 60:
        length = f"{minutes // 60} h {minutes % 60} min"
    else:
        length = f"{minutes} min" if minutes else f"{period.seconds} s"
    end = _local(period.end, tz)[11:]
    if end == "00:00" and period.end > period.start:
        end = "24:00"
    ongoing = " 仍离线 still offline" if period.ongoing else ""
    return f"{_local(period.start, tz)[11:]}–{end} ({length}){ongoing}"


# -- CSV ------------------------------------------------------------------------------------------------


def render_csv(report: DailyReport) -> str:
    """One row per kiosk and a `*` total row per site, with the header `CSV_COLUMNS`."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    day = report.day.isoformat()
    for site in report.sites:
        for kiosk in site.kiosks:
            writer.writerow(_row(day, site.site, kiosk.kiosk, kiosk.counts, kiosk.offline_s, kiosk.missing))
        offline_s = sum(kiosk.offline_s for kiosk in site.kiosks)
        writer.writerow(_row(day, site.site, SITE_TOTAL, site.totals, offline_s, site.missing))
    return out.getvalue()


def _row(day: str, site: str, kiosk: str, c: Counts, offline_s: int, missing: int) -> list[str | int]:
    return [
        day, site, kiosk, c.entries, c.allows, c.denies, c.attentions, c.fevers, c.temperature_checks,
        c.health_checks, c.travel_checks, c.travel_risks, c.unique_persons, c.visitors, c.first_seen_passes,
        c.overrides.get("staff", 0), c.overrides.get("remote", 0), offline_s, missing,
        *(c.denies_by_reason.get(reason, 0) for reason in REASONS),
    ]


# -- PNG ------------------------------------------------------------------------------------------------


def render_png(report: DailyReport, names: Mapping[str, str] | None = None) -> bytes:
    """In Chinese, per site: entries and fevers per local hour, each gate's counts and the deny reasons; a
    zero report says 零报告 in big text. `names`: site → community name, for the titles."""
    from office.reports.png import draw  # lazily: the collector starts without loading matplotlib

    return draw(report, PNG_SIZE_IN, PNG_DPI, REASON_ZH, names)
