"""`kiosk calibrate FILE`: fit the skin-to-body compensation to clinical reference pairs."""

from __future__ import annotations

import csv
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kiosk.config import ThermometerConfig
from kiosk.session.temperature import Compensation

EXIT_REFUSED, EXIT_USAGE = 1, 2
COLUMNS = ("skin_c", "ambient_c", "reference_body_c")
PLAUSIBLE_C = {"skin_c": (0.0, 50.0), "ambient_c": (-40.0, 85.0), "reference_body_c": (30.0, 45.0)}
MIN_ROWS = 3  # an offset from fewer pairs cannot be checked against anything
MIN_ROWS_FOR_COEFF = 5
MIN_AMBIENT_SPREAD_C = 5.0
_FIELDS = ThermometerConfig.model_fields


def _bounds(name: str) -> tuple[float, float]:
    low = high = math.nan
    for item in _FIELDS[name].metadata:
        low = float(getattr(item, "ge", low))
        high = float(getattr(item, "le", high))
    return low, high


OFFSET_BOUNDS = _bounds("offset_c")
COEFF_BOUNDS = _bounds("ambient_coeff")
REFERENCE_BOUNDS = _bounds("reference_ambient_c")
DEFAULT_AMBIENT_COEFF = float(_FIELDS["ambient_coeff"].default)


class CalibrationError(ValueError):
    """The data cannot give a fit the kiosk may use."""


@dataclass(frozen=True)
class Pair:
    """One reference pair: a kiosk skin reading, its ambient, and the clinical body temperature."""

    skin_c: float
    ambient_c: float
    reference_body_c: float


@dataclass(frozen=True)
class Fit:
    """Fitted coefficients (rounded as printed) with their residuals over the data."""

    compensation: Compensation
    coeff_fitted: bool
    rms_c: float
    max_error_c: float
    notes: tuple[str, ...]


def read_pairs(path: Path) -> list[Pair]:
    """Pairs from a CSV headed skin_c,ambient_c,reference_body_c; a ValueError names the bad line."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read: {exc}") from exc
    reader = csv.DictReader(text.splitlines())
    header = [name.strip() for name in reader.fieldnames or []]
    missing = [name for name in COLUMNS if name not in header]
    if missing:
        raise ValueError(f"line 1: header must name {','.join(COLUMNS)}; missing {','.join(missing)}")
    reader.fieldnames = header
    pairs = []
    try:
        rows = list(reader)
    except csv.Error as exc:
        raise ValueError(f"line {reader.line_num}: {exc}") from None
    for row in rows:
        line = reader.line_num
        if None in row:
            raise ValueError(f"line {line}: more fields than the header names")
        if not any(isinstance(value, str) and value.strip() for value in row.values()):
            continue
        values = {}
        for name in COLUMNS:
            raw = (row.get(name) or "").strip()
            try:
                value = float(raw)
            except ValueError:
                raise ValueError(f"line {line}: {name} {raw!r} is not a number") from None
            low, high = PLAUSIBLE_C[name]
            if not low <= value <= high:
                raise ValueError(f"line {line}: {name} {value} °C outside the plausible {low}..{high} °C")
            values[name] = value
        pairs.append(Pair(**values))
    if not pairs:
        raise ValueError("no data rows")
    return pairs


def fit(pairs: list[Pair], *, ambient_coeff: float = DEFAULT_AMBIENT_COEFF) -> Fit:
    """Least-squares offset_c and ambient_coeff; offset_c alone (ambient_coeff kept) on too little data."""
    if len(pairs) < MIN_ROWS:
        raise CalibrationError(f"{len(pairs)} reference pairs; at least {MIN_ROWS} are needed")
    skin = np.array([p.skin_c for p in pairs])
    ambient = np.array([p.ambient_c for p in pairs])
    needed = np.array([p.reference_body_c for p in pairs]) - skin
    low, high = REFERENCE_BOUNDS
    # Centred on the data's mean ambient, offset_c is the mean correction there, uncorrelated with the slope.
    reference_c = float(min(max(round(float(ambient.mean())), low), high))
    spread_c = float(ambient.max() - ambient.min())
    notes = []
    if len(pairs) < MIN_ROWS_FOR_COEFF or spread_c < MIN_AMBIENT_SPREAD_C:
        why = (
            f"{len(pairs)} pairs (< {MIN_ROWS_FOR_COEFF})"
            if len(pairs) < MIN_ROWS_FOR_COEFF
            else f"ambient spread {spread_c:.1f} °C (< {MIN_AMBIENT_SPREAD_C:g} °C)"
        )
        notes.append(f"{why}: ambient_coeff cannot be fitted; kept {ambient_coeff:g}, fitted offset_c only")
        offset_c = float(np.mean(needed - ambient_coeff * (reference_c - ambient)))
        coeff, coeff_fitted = ambient_coeff, False
    else:
        design = np.column_stack([np.ones_like(ambient), reference_c - ambient])
        solution, *_ = np.linalg.lstsq(design, needed, rcond=None)
        offset_c, coeff, coeff_fitted = float(solution[0]), float(solution[1]), True
    for name, value, (lo, hi) in (
        ("ambient_coeff", coeff, COEFF_BOUNDS),
        ("offset_c", offset_c, OFFSET_BOUNDS),
    ):
        if not (math.isfinite(value) and lo <= value <= hi):
            raise CalibrationError(f"fitted {name} = {value:.3f} is outside the allowed {lo:g}..{hi:g}")
    compensation = Compensation(round(offset_c, 2), round(coeff, 3), reference_c)
    errors = np.array([compensation.body_c(p.skin_c, p.ambient_c) - p.reference_body_c for p in pairs])
    floored = sum(compensation.linear_correction_c(p.ambient_c) < 0 for p in pairs)
    if floored:
        notes.append(f"{floored} pairs need a negative correction; the kiosk floors it at 0 (never lowers)")
    return Fit(
        compensation=compensation,
        coeff_fitted=coeff_fitted,
        rms_c=float(np.sqrt(np.mean(errors**2))),
        max_error_c=float(np.max(np.abs(errors))),
        notes=tuple(notes),
    )


def describe(fit_: Fit, pairs: list[Pair]) -> list[str]:
    """The fit as a TOML snippet for `[thermometer]`, with the residuals and notes as comments."""
    c = fit_.compensation
    ambients = [p.ambient_c for p in pairs]
    return [
        f"# {len(pairs)} reference pairs, ambient {min(ambients):.1f}..{max(ambients):.1f} °C",
        *(f"# note: {note}" for note in fit_.notes),
        "[thermometer]",
        f"offset_c = {c.offset_c:.2f}",
        f"ambient_coeff = {c.ambient_coeff:.3f}" + ("" if fit_.coeff_fitted else "  # kept, not fitted"),
        f"reference_ambient_c = {c.reference_ambient_c:.1f}",
        f"# residual RMS {fit_.rms_c:.2f} °C, max error {fit_.max_error_c:.2f} °C",
    ]


def _stderr(line: str) -> None:
    print(line, file=sys.stderr)


def run_calibrate(
    path: Path,
    *,
    ambient_coeff: float | None = None,
    out: Callable[[str], None] = print,
    err: Callable[[str], None] = _stderr,
) -> int:
    """Print the fitted `[thermometer]` coefficients; 0 on success, 1 for a refused fit, 2 for a bad CSV."""
    try:
        pairs = read_pairs(path)
    except ValueError as exc:
        err(f"kiosk calibrate: {path}: {exc}")
        return EXIT_USAGE
    try:
        result = fit(pairs, ambient_coeff=DEFAULT_AMBIENT_COEFF if ambient_coeff is None else ambient_coeff)
    except CalibrationError as exc:
        err(f"kiosk calibrate: {path}: refused: {exc}")
        return EXIT_REFUSED
    for line in describe(result, pairs):
        out(line)
    return 0
