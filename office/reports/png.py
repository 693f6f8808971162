"""The daily report as a PNG in Chinese: per site, entries and fevers per local hour, the counts per gate
and the deny and attention reasons; a 零报告 (no entries) says so in big text instead of empty charts.

Importing this loads matplotlib, so office.reports.render imports it only when a PNG is asked for. The
text is set in Noto Sans CJK (Debian's fonts-noto-cjk); without it the PNG is still made, with a warning
logged, and the Chinese shows as boxes.
"""

from __future__ import annotations

import functools
import io
import logging
import warnings
from collections.abc import Mapping
from pathlib import Path

import matplotlib
from matplotlib import font_manager
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from office.reports.daily import DailyReport, SiteReport

log = logging.getLogger(__name__)

CJK_FONT_FILE = Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc")
CJK_FAMILIES = ("Noto Sans CJK SC", "Noto Sans CJK JP", "Noto Sans CJK")
FALLBACK_FAMILY = "DejaVu Sans"
ALLOW, ATTENTION, DENY, FEVER = "#2e7d32", "#ef8f00", "#c62828", "#d62728"
ENTRIES = "#4c72b0"


@functools.cache
def cjk_font() -> Path | None:
    """The CJK font file matplotlib draws the report with, registered with matplotlib; None if absent."""
    for family in CJK_FAMILIES:
        try:
            found = font_manager.findfont(font_manager.FontProperties(family=family),
                                          fallback_to_default=False)
        except ValueError:
            continue
        return _with_bold(Path(found))
    if CJK_FONT_FILE.is_file():
        font_manager.fontManager.addfont(str(CJK_FONT_FILE))
        return _with_bold(CJK_FONT_FILE)
    log.warning("no CJK font (install fonts-noto-cjk): the report PNG's Chinese will not be readable")
    return None


def _with_bold(regular: Path) -> Path:
    bold = regular.with_name(regular.name.replace("Regular", "Bold"))
    if bold != regular and bold.is_file():
        font_manager.fontManager.addfont(str(bold))
    return regular


def font_families() -> list[str]:
    """The font family list for the report: the CJK font first when there is one."""
    path = cjk_font()
    if path is None:
        return [FALLBACK_FAMILY]
    return [font_manager.FontProperties(fname=str(path)).get_name(), FALLBACK_FAMILY]


def draw(report: DailyReport, size_in: tuple[float, float], dpi: int, reason_names: Mapping[str, str],
         names: Mapping[str, str] | None = None) -> bytes:
    """The PNG: one row of panels per site (`size_in` each), or one 零报告 panel when nothing happened.

    `names` maps a site to its community's name (幸福里社区) for the titles."""
    names = names or {}
    sites: list[SiteReport | None] = list(report.sites) if report.sites and not report.zero else [None]
    width, height = size_in
    with matplotlib.rc_context({"font.family": font_families(), "axes.unicode_minus": False}), \
            warnings.catch_warnings():
        if cjk_font() is None:  # logged once already: not a warning per missing glyph
            warnings.filterwarnings("ignore", "Glyph .* missing from font", UserWarning)
        fig = Figure(figsize=(width, height * len(sites)), dpi=dpi)
        if sites == [None]:
            _zero(fig.add_subplot(1, 1, 1), report, names)
        else:
            grid = fig.add_gridspec(len(sites), 3, width_ratios=(1.7, 1.0, 1.2))
            for row, site in enumerate(sites):
                assert site is not None
                title = f"{names.get(site.site) or site.site}（{site.site}）{report.day.isoformat()}"
                if site.zero:
                    _zero(fig.add_subplot(grid[row, :]), report, names, site=site)
                    continue
                _hours(fig.add_subplot(grid[row, 0]), site, title, report.timezone)
                _gates(fig.add_subplot(grid[row, 1]), site)
                _reasons(fig.add_subplot(grid[row, 2]), site, reason_names)
        fig.tight_layout()
        out = io.BytesIO()
        fig.savefig(out, format="png", metadata={"Software": None})
    return out.getvalue()


def _zero(ax: Axes, report: DailyReport, names: Mapping[str, str], site: SiteReport | None = None) -> None:
    code = site.site if site is not None else report.site
    where = "全部小区" if code is None else f"{names.get(code) or code}（{code}）"
    ax.set_axis_off()
    ax.text(0.5, 0.62, "零报告", ha="center", va="center", fontsize=54, fontweight="bold", color=DENY,
            transform=ax.transAxes)
    ax.text(0.5, 0.30, f"{where}  {report.day.isoformat()}", ha="center", va="center", fontsize=20,
            transform=ax.transAxes)
    kiosks = len(site.kiosks) if site is not None else sum(len(s.kiosks) for s in report.sites)
    ax.text(0.5, 0.12, f"当日无出入记录 · 卡口设备 {kiosks} 台 · 时区 {report.timezone}", ha="center",
            va="center", fontsize=12, color="#555555", transform=ax.transAxes)


def _hours(ax: Axes, site: SiteReport, title: str, timezone: str) -> None:
    hours = list(range(24))
    entries, fevers = list(site.entries_per_hour), list(site.fevers_per_hour)
    t = site.totals
    ax.set_title(f"{title}\n出入 {t.entries} · 放行 {t.allows} · 拒绝 {t.denies} · 发热 {t.fevers}",
                 fontsize=10)
    ax.bar(hours, entries, width=0.8, color=ENTRIES, label="出入")
    ax.bar(hours, fevers, width=0.5, color=FEVER, label="发热")
    for hour, n in enumerate(fevers):
        if n:
            ax.annotate(f"发热 {n}", (hour, entries[hour]), textcoords="offset points", xytext=(0, 2),
                        ha="center", color=FEVER, fontsize=8, fontweight="bold")
    ax.set_xticks(hours[::3], [f"{h:02d}" for h in hours[::3]])
    ax.set_xlim(-0.6, 23.6)
    ax.set_ylim(0, max([*entries, 1]) * 1.25)
    ax.set_xlabel(f"每小时（{timezone}）", fontsize=9)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(loc="upper left", fontsize=8)


def _gates(ax: Axes, site: SiteReport) -> None:
    kiosks = list(site.kiosks)
    labels = [k.kiosk for k in kiosks]
    allows = [k.counts.allows for k in kiosks]
    attentions = [k.counts.attentions for k in kiosks]
    denies = [k.counts.denies for k in kiosks]
    rows = list(range(len(kiosks)))
    ax.set_title("各卡口", fontsize=10)
    bar = min(0.6, 0.25 * max(len(kiosks), 1))
    ax.barh(rows, allows, height=bar, color=ALLOW, label="放行")
    ax.barh(rows, attentions, height=bar, left=allows, color=ATTENTION, label="待处理")
    ax.barh(rows, denies, height=bar, left=[a + b for a, b in zip(allows, attentions, strict=True)],
            color=DENY, label="拒绝")
    for row, kiosk in enumerate(kiosks):
        ax.annotate(str(kiosk.counts.entries), (kiosk.counts.entries, row), textcoords="offset points",
                    xytext=(3, 0), va="center", fontsize=8)
    ax.set_yticks(rows, labels, fontsize=8)
    ax.set_ylim(len(kiosks) - 0.5, -0.5)
    ax.set_xlim(0, max([k.counts.entries for k in kiosks] + [1]) * 1.2)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    _legend_below(ax)


def _reasons(ax: Axes, site: SiteReport, reason_names: Mapping[str, str]) -> None:
    denies, attentions = site.totals.denies_by_reason, site.totals.attentions_by_reason
    reasons = sorted(set(denies) | set(attentions),
                     key=lambda r: (-(denies.get(r, 0) + attentions.get(r, 0)), r))
    ax.set_title("拒绝与待处理原因", fontsize=10)
    if not reasons:
        ax.set_axis_off()
        ax.text(0.5, 0.5, "无拒绝、无待处理", ha="center", va="center", fontsize=12, transform=ax.transAxes)
        return
    rows = list(range(len(reasons)))
    ax.barh([r - 0.2 for r in rows], [denies.get(r, 0) for r in reasons], height=0.4, color=DENY,
            label="拒绝")
    ax.barh([r + 0.2 for r in rows], [attentions.get(r, 0) for r in reasons], height=0.4, color=ATTENTION,
            label="待处理")
    ax.set_yticks(rows, [reason_names.get(r, r) for r in reasons], fontsize=8)
    ax.set_ylim(len(reasons) - 0.5, -0.5)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    _legend_below(ax)


def _legend_below(ax: Axes) -> None:
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=3, fontsize=7, frameon=False)
