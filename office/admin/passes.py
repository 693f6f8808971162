"""`kiosk-admin` issuing: passes (one or a CSV batch, with QR PNGs, registry and A4 sheet), health tokens,
revocation lists and public key export.

A raw ID number only ever becomes `idh` = HMAC-SHA256(site key, normalised number) in memory; it is never
written to a file, printed or put in an error message.
"""

from __future__ import annotations

import csv
import html
import io
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import segno
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from checkpoint import idnumber
from checkpoint.configtypes import read_key
from checkpoint.keys import check_kid, kid_for, load_public_key, public_pem
from checkpoint.passes import issue_pass, mask_name
from checkpoint.reasons import COLOURS
from checkpoint.revocation import issue_revocation
from checkpoint.tokens import issue_token
from office.store.base import IssuedPass

REGISTRY_COLUMNS = ("pid", "cat", "hh", "name_masked", "idh", "nbf", "exp", "kid")
BATCH_COLUMNS = ("pid", "cat", "hh", "name", "id_number", "idh", "nbf", "exp", "days", "hpr")
BATCH_HELP = (
    "CSV (UTF-8, header row) with columns pid,cat[,hh][,name][,id_number|idh][,nbf][,exp|days]: "
    "pid like P-00017; cat green|blue|red|pink; hh household like 9-23-301 (a household temporary pass); "
    "name is masked before signing; id_number (needs --site-key) or idh (64 hex digits); nbf/exp as "
    "Unix seconds, YYYY-MM-DD or ISO 8601 time; days of validity from nbf. Empty cells fall back to the "
    "command's --from/--exp/--days."
)
QR_SCALE = 10  # pixels per module: a 300-character pass is about 730 px square
MAX_DAYS = 3660


class AdminError(Exception):
    """A problem the office user can fix; printed as one line without a traceback."""


@dataclass(frozen=True)
class SignedPass(IssuedPass):
    """An issued pass (the registry row, never the raw ID number) and its signed QR text."""

    text: str


def timezone_named(name: str | None) -> tzinfo:
    """The zone for times given without an offset: `name`, or this machine's local zone."""
    if name is None:
        local = datetime.now().astimezone().tzinfo
        return local if local is not None else UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise AdminError(f"unknown time zone {name!r}") from exc


def parse_when(text: str, tz: tzinfo) -> int:
    """Unix seconds from `1773900000`, `2026-03-19` (midnight in `tz`) or an ISO 8601 time."""
    text = text.strip()
    if text.isdigit():
        return int(text)
    try:
        when = datetime.fromisoformat(text)
    except ValueError as exc:
        raise AdminError(f"time {text!r}: expected Unix seconds, YYYY-MM-DD or ISO 8601") from exc
    if when.tzinfo is None:
        when = when.replace(tzinfo=tz)
    return int(when.timestamp())


def window(nbf: str | None, exp: str | None, days: str | int | None, *, tz: tzinfo,
           now: int | None = None) -> tuple[int, int]:
    """The validity window from a start (default now) and an end or a number of days."""
    default = int(time.time()) if now is None else now
    start = parse_when(nbf, tz) if nbf else default
    if exp and days not in (None, ""):
        raise AdminError("give an end time or a number of days, not both")
    if exp:
        end = parse_when(exp, tz)
    elif days not in (None, ""):
        try:
            count = int(days)
        except ValueError as exc:
            raise AdminError(f"days {days!r}: expected a whole number") from exc
        if not 1 <= count <= MAX_DAYS:
            raise AdminError(f"days: expected 1 to {MAX_DAYS}")
        end = start + count * 86_400
    else:
        raise AdminError("give the validity: --days N or --exp WHEN")
    if end <= start:
        raise AdminError("the validity ends before it starts")
    return start, end


def site_key(path: Path | None) -> bytes | None:
    """The site HMAC key, read as the kiosk reads `site.hmac_key_file`."""
    return read_key("--site-key", path, None) if path is not None else None


def person_idh(*, id_number: str | None, idh: str | None, key: bytes | None) -> str | None:
    """`idh` given directly, or computed from an ID number under the site key; None when neither."""
    if id_number and idh:
        raise AdminError("give an ID number or an idh, not both")
    if idh:
        idh = idh.strip().lower()
        if len(idh) != 64 or any(c not in "0123456789abcdef" for c in idh):
            raise AdminError("idh: expected 64 hex digits")
        return idh
    if id_number:
        if key is None:
            raise AdminError("an ID number needs --site-key (the site HMAC key file)")
        try:
            return idnumber.parse(id_number).person_ref(key)
        except idnumber.IdNumberError as exc:
            raise AdminError(f"ID number: {exc.problem}") from None
    return None


def make_pass(key: Ed25519PrivateKey, kid: str | None, *, pid: str, cat: str, hh: str | None, name: str,
              idh: str | None, nbf: int, exp: int, hpr: str | None = None) -> SignedPass:
    """Sign one pass after masking its name; with the platform's `hpr` it is a v2 pass."""
    if idh is None:
        raise AdminError("a pass needs the holder's ID number (--id-number with --site-key) or --idh")
    kid = check_kid(kid) if kid else kid_for(key.public_key())
    masked = mask_name(name)
    try:
        text = issue_pass(key, kid, pid=pid, cat=cat, hh=hh or None, name=masked, idh=idh, nbf=nbf, exp=exp,
                          hpr=hpr or None)
    except ValueError as exc:
        raise AdminError(f"pass {pid!r}: {exc}") from None
    return SignedPass(pid=pid, cat=cat, hh=hh or None, name_masked=masked, idh=idh, nbf=nbf, exp=exp, kid=kid,
                      text=text)


def qr_code(text: str) -> segno.QRCode:
    """The QR code of a credential text: error correction M, never Micro QR."""
    return segno.make_qr(text, error="m", boost_error=False)


def write_png(text: str, path: Path) -> None:
    """A QR PNG large enough to print or to scan off a phone screen."""
    qr_code(text).save(str(path), kind="png", scale=QR_SCALE, border=4)


def refuse_issued(passes: list[SignedPass], out: Path) -> None:
    """AdminError naming the pids of `passes` already in `out`'s `passes.csv` (issue-pass refuses them)."""
    registry = out / "passes.csv"
    if not registry.exists():
        return
    with registry.open(newline="", encoding="utf-8") as fh:
        held = {row[0] for row in csv.reader(fh) if row}
    taken = [p.pid for p in passes if p.pid in held]
    if taken:
        raise AdminError(f"pid already issued in {registry}: {', '.join(taken)} (nothing written)")


def write_passes(passes: list[SignedPass], out: Path) -> None:
    """`<pid>.txt` and `<pid>.png` per pass, and rows appended to `passes.csv`."""
    registry = out / "passes.csv"
    exists = registry.exists() and registry.stat().st_size > 0
    if exists:
        with registry.open(newline="", encoding="utf-8") as fh:
            header = next(csv.reader(fh), [])
        if tuple(header) != REGISTRY_COLUMNS:
            raise AdminError(f"{registry} has columns {header}, expected {list(REGISTRY_COLUMNS)}")
    out.mkdir(parents=True, exist_ok=True)
    for issued in passes:
        (out / f"{issued.pid}.txt").write_text(issued.text + "\n", encoding="ascii")
        write_png(issued.text, out / f"{issued.pid}.png")
    with registry.open("a", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        if not exists:
            writer.writerow(REGISTRY_COLUMNS)
        for p in passes:
            writer.writerow([p.pid, p.cat, p.hh or "", p.name_masked, p.idh, p.nbf, p.exp, p.kid])


def read_batch(path: Path, key: Ed25519PrivateKey, kid: str | None, *, site: bytes | None, tz: tzinfo,
               nbf: str | None, exp: str | None, days: str | None) -> list[SignedPass]:
    """Sign every row of a batch CSV, or raise AdminError listing every bad line (nothing is written)."""
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise AdminError(f"{path}: not UTF-8 text") from exc
    return sign_batch(text, path, key, kid, site=site, tz=tz, nbf=nbf, exp=exp, days=days)


def sign_batch(text: str, path: Path, key: Ed25519PrivateKey, kid: str | None, *, site: bytes | None,
               tz: tzinfo, nbf: str | None, exp: str | None, days: str | None) -> list[SignedPass]:
    """`read_batch` of a CSV's text (an upload, never written to disk); `path` names it in errors."""
    try:
        reader = csv.DictReader(io.StringIO(text.removeprefix("\ufeff"), newline=""), restkey="\0extra")
        rows = list(reader)
        columns = {name.strip() for name in reader.fieldnames or ()}
    except csv.Error as exc:
        raise AdminError(f"{path}: {exc}") from exc
    if not rows:
        raise AdminError(f"{path}: no passes (a header row and one row per pass)")
    unknown = sorted(c for c in columns if c not in BATCH_COLUMNS)
    if unknown or not {"pid", "cat"} <= columns:
        raise AdminError(f"{path}: columns must include pid,cat and be among {','.join(BATCH_COLUMNS)}"
                         + (f"; unknown {unknown}" if unknown else ""))
    passes: list[SignedPass] = []
    problems: list[str] = []
    seen: set[str] = set()
    for line, raw_row in enumerate(rows, start=2):
        row = {(name or "").strip(): value for name, value in raw_row.items()}
        cell = {name: (row.get(name) or "").strip() for name in BATCH_COLUMNS}
        try:
            if "\0extra" in row:
                raise AdminError("more cells than columns")
            if cell["cat"] not in COLOURS:
                raise AdminError(f"cat {cell['cat']!r}: expected {'|'.join(COLOURS)}")
            if cell["pid"] in seen:
                raise AdminError(f"pid {cell['pid']!r} twice in this batch")
            seen.add(cell["pid"])
            start, end = window(cell["nbf"] or nbf, cell["exp"] or (None if cell["days"] else exp),
                                cell["days"] or (None if cell["exp"] else days), tz=tz)
            idh = person_idh(id_number=cell["id_number"] or None, idh=cell["idh"] or None, key=site)
            passes.append(make_pass(key, kid, pid=cell["pid"], cat=cell["cat"], hh=cell["hh"] or None,
                                    name=cell["name"], idh=idh, nbf=start, exp=end, hpr=cell["hpr"] or None))
        except AdminError as exc:
            problems.append(f"{path.name} line {line}: {exc}")
    if problems:
        raise AdminError("\n".join(problems))
    return passes


SHEET_CSS = Path(__file__).resolve().parents[1] / "web" / "static" / "pass_sheet.css"
# what a community calls each colour of pass, printed on its card
CARD_NAMES = {"green": ("绿色", "居民"), "blue": ("蓝色", "租户"), "red": ("红色", "返回人员"),
              "pink": ("粉色", "访客")}


def validity_days(nbf: int, exp: int, tz: tzinfo) -> tuple[str, str]:
    """The first and last local day of a validity window."""
    start = datetime.fromtimestamp(nbf, tz).strftime("%Y-%m-%d")
    # exp is the first second no longer valid, so a 30-day pass from the 1st shows the 30th
    end = (datetime.fromtimestamp(exp, tz) - timedelta(seconds=1)).strftime("%Y-%m-%d")
    return start, end


def pass_cards(passes: Iterable[SignedPass], tz: tzinfo, community: str) -> str:
    """The printed cards (styled by pass_sheet.css): each wholly in its colour, with the colour's Chinese
    name, the community, household, holder's masked name, validity in `tz`, pid and the QR on white."""
    cards = []
    for p in passes:
        svg = qr_code(p.text).svg_inline(scale=1, border=4, omitsize=True, light="#fff")
        colour, kind = CARD_NAMES[p.cat]
        start, end = validity_days(p.nbf, p.exp, tz)
        cards.append(
            f'<article class="pass-card {p.cat}" data-pid="{html.escape(p.pid)}">'
            f'<header><span class="colour">{colour}</span><span class="kind">{kind}</span>'
            f'<span class="community">{html.escape(community)}</span></header>'
            f'<div class="body"><div class="qr">{svg}</div><dl>'
            f'<dt>户号</dt><dd>{html.escape(p.hh or "—")}</dd>'
            f'<dt>持证人</dt><dd>{html.escape(p.name_masked or "—")}</dd>'
            f'<dt>有效期</dt><dd>{start} 至 {end}</dd>'
            f'<dt>证号</dt><dd class="pid">{html.escape(p.pid)}</dd></dl></div>'
            f'<footer>出入证 · 出入请出示 · 不得转借</footer></article>'
        )
    return '<div class="sheet">\n' + "\n".join(cards) + "\n</div>"


def sheet_html(passes: Iterable[SignedPass], tz: tzinfo, community: str = "") -> str:
    """A printable A4 page of pass cards (the web app's design, its stylesheet inlined)."""
    title = html.escape(f"{community} 出入证" if community else "出入证")
    return ("<!DOCTYPE html>\n<html lang=\"zh-CN\"><head><meta charset=\"utf-8\">"
            f"<title>{title}</title><style>{SHEET_CSS.read_text(encoding='utf-8')}</style></head><body>\n"
            + pass_cards(passes, tz, community) + "\n</body></html>\n")


def export_pubkeys(keys: list[Path], out: Path, *, force: bool = False) -> list[Path]:
    """Write `<kid>.pub` for each key (private or public PEM); refuse to replace a different key."""
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for path in keys:
        public = load_public_key(path, allow_private=True)
        target = out / f"{kid_for(public)}.pub"
        pem = public_pem(public)
        if target.exists() and target.read_bytes() != pem and not force:
            raise AdminError(f"{target} holds a different key; pass --force to replace it")
        target.write_bytes(pem)
        written.append(target)
    return written


def health_token(key: Ed25519PrivateKey, kid: str | None, *, status: str, idh: str | None, iat: int,
                 ttl_s: int, travel: str | None = None, star: bool = False, hpr: str | None = None) -> str:
    """Sign a health token valid for `ttl_s` seconds from `iat`; with `travel` a v2 token (两码合一)."""
    if not 1 <= ttl_s <= 86_400:
        raise AdminError("--ttl-s: expected 1 to 86400 seconds")
    if travel is None and (star or hpr):
        raise AdminError("--star and --hpr need --travel (they exist only in v2 tokens)")
    if travel is not None and idh is not None:
        raise AdminError("a v2 token (--travel) names its holder by --hpr, not by ID number or idh")
    try:
        return issue_token(key, check_kid(kid) if kid else None, st=status, idh=idh, iat=iat, exp=iat + ttl_s,
                           trv=travel, star=star, hpr=hpr)
    except ValueError as exc:
        raise AdminError(f"health token: {exc}") from None


def revocation_list(key: Ed25519PrivateKey, kid: str | None, *, site: str, serial: int, pids: list[str],
                    from_file: Path | None) -> str:
    """Sign the site's complete list of revoked pids (from arguments and a file, one pid a line)."""
    wanted = list(pids)
    if from_file is not None:
        for line in from_file.read_text(encoding="utf-8").splitlines():
            entry = line.split("#", 1)[0].strip()
            if entry:
                wanted.append(entry)
    try:
        return issue_revocation(key, check_kid(kid) if kid else None, site=site, serial=serial,
                                iat=int(time.time()), revoked=wanted)
    except ValueError as exc:
        raise AdminError(f"revocation list: {exc}") from None

