"""Temperature measurement: compensation, median and outliers, presence, recheck, and `kiosk calibrate`."""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.emulated.mlx90614 import Mlx90614Emulator
from drivers.mlx90614 import BusError, Mlx90614, Reading, SensorFlagError
from kiosk.cli.calibrate import EXIT_REFUSED, EXIT_USAGE, run_calibrate
from kiosk.config import ThermometerConfig
from kiosk.session.temperature import (
    PRESENCE_POLL_S,
    Compensation,
    Measurement,
    MeasureOutcome,
    NoPresence,
    SensorFault,
    Unstable,
    is_fever,
    is_present,
    keep_inliers,
    measure,
    measure_with_config,
    resolve_recheck,
    summarise,
)

DEVICE = "thermometer mlx90614@0x5a"
DEFAULT = Compensation(offset_c=1.8, ambient_coeff=0.15, reference_ambient_c=25.0)
FLAT = Compensation(offset_c=1.5, ambient_coeff=0.0, reference_ambient_c=25.0)


class VirtualClock:
    """A clock that moves only when slept on."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.sleeps.append(seconds)
        self.now += seconds


class Script:
    """A fake `read`: returns (or raises) the scripted items in order, then repeats the last one."""

    def __init__(self, items: Iterable[Reading | Exception]) -> None:
        self.items = list(items)
        self.calls = 0

    def __call__(self) -> Reading:
        item = self.items[min(self.calls, len(self.items) - 1)]
        self.calls += 1
        if isinstance(item, Exception):
            raise item
        return item


def skins(*values: float, ambient_c: float = 20.0) -> list[Reading]:
    return [Reading(ambient_c=ambient_c, object_c=v) for v in values]


AWAY = Reading(ambient_c=20.0, object_c=20.5)


def run(
    read: Callable[[], Reading],
    clock: VirtualClock,
    *,
    samples: int = 5,
    compensation: Compensation = DEFAULT,
    presence_timeout_s: float = 2.0,
) -> MeasureOutcome:
    return measure(
        read,
        samples=samples,
        interval_s=0.1,
        presence_delta_c=1.5,
        presence_timeout_s=presence_timeout_s,
        outlier_c=0.5,
        compensation=compensation,
        sleep=clock.sleep,
        clock=clock.clock,
    )


# Compensation


def test_compensation_follows_the_model_with_exact_numbers() -> None:
    assert DEFAULT.body_c(34.5, 25.0) == pytest.approx(36.3)
    assert DEFAULT.body_c(35.1, 5.2) == pytest.approx(35.1 + 1.8 + 0.15 * 19.8)  # 39.87: outdoors in winter
    assert DEFAULT.body_c(33.0, 5.0) - DEFAULT.body_c(33.0, 25.0) == pytest.approx(3.0)


def test_compensation_is_floored_at_zero_so_a_hot_sensor_never_lowers_a_reading() -> None:
    assert DEFAULT.linear_correction_c(45.0) == pytest.approx(-1.2)
    assert DEFAULT.correction_c(45.0) == 0.0
    assert DEFAULT.body_c(37.6, 45.0) == 37.6


def test_compensation_from_config() -> None:
    config = ThermometerConfig(offset_c=2.1, ambient_coeff=0.2, reference_ambient_c=18.0)
    assert Compensation.from_config(config) == Compensation(2.1, 0.2, 18.0)
    assert Compensation.from_config(ThermometerConfig()) == DEFAULT


# Fever and recheck


def test_is_fever_is_at_or_over_and_tolerates_float_noise() -> None:
    assert is_fever(37.3, 37.3)
    assert is_fever(37.3 - 1e-12, 37.3)
    assert not is_fever(37.29, 37.3)
    assert is_fever(40.0, 37.3)


def test_recheck_is_due_once_for_a_febrile_first_reading() -> None:
    first = Measurement(skin_c=35.5, body_c=37.3, ambient_c=25.0, samples=5)
    assert first.recheck_due(37.3)
    assert not Measurement(skin_c=35.4, body_c=37.29, ambient_c=25.0, samples=5).recheck_due(37.3)
    assert not resolve_recheck(first, first).recheck_due(37.3)


@pytest.mark.parametrize(
    ("recheck", "body_c"),
    [
        (Measurement(skin_c=36.3, body_c=38.1, ambient_c=25.0, samples=5), 38.1),
        (Measurement(skin_c=35.0, body_c=36.8, ambient_c=25.0, samples=5), 37.5),
        (NoPresence(waited_s=8.0), 37.5),
        (Unstable(taken=5, present=1, kept=1), 37.5),
        (SensorFault(device=DEVICE, message=f"{DEVICE}: gone"), 37.5),
    ],
)
def test_recheck_confirms_or_raises_a_fever_but_never_clears_it(
    recheck: MeasureOutcome, body_c: float
) -> None:
    first = Measurement(skin_c=35.7, body_c=37.5, ambient_c=25.0, samples=5)
    final = resolve_recheck(first, recheck)
    assert final.body_c == body_c
    assert final.rechecked
    assert is_fever(final.body_c, 37.3)


# Median and outliers


def test_presence_needs_more_than_the_delta() -> None:
    assert is_present(Reading(ambient_c=20.0, object_c=21.6), 1.5)
    assert not is_present(Reading(ambient_c=20.0, object_c=21.5), 1.5)


def test_keep_inliers_drops_readings_further_than_outlier_c_from_the_median() -> None:
    window = skins(36.0, 36.2, 36.1, 38.0, 35.9)
    assert [r.object_c for r in keep_inliers(window, 0.5)] == [36.0, 36.2, 36.1, 35.9]
    edge = skins(36.0, 36.5, 35.5, 36.51, 36.0)  # median 36.0: 0.5 away stays, 0.51 away goes
    assert [r.object_c for r in keep_inliers(edge, 0.5)] == [36.0, 36.5, 35.5, 36.0]
    assert keep_inliers([], 0.5) == []


def test_summarise_takes_the_median_of_the_inliers_and_compensates() -> None:
    window = skins(36.0, 36.2, 36.1, 38.0, 35.9)
    result = summarise(window, samples=5, presence_delta_c=1.5, outlier_c=0.5, compensation=DEFAULT)
    # median(35.9, 36.0, 36.1, 36.2) = 36.05; + 1.8 + 0.15 * (25 - 20)
    assert result == Measurement(skin_c=36.05, body_c=38.6, ambient_c=20.0, samples=4)


def test_summarise_uses_the_median_ambient_of_the_kept_readings() -> None:
    window = [Reading(5.0, 34.0), Reading(6.0, 34.2), Reading(30.0, 40.0), Reading(7.0, 34.1)]
    result = summarise(window, samples=4, presence_delta_c=1.5, outlier_c=0.5, compensation=FLAT)
    assert result == Measurement(skin_c=34.1, body_c=35.6, ambient_c=6.0, samples=3)


@pytest.mark.parametrize(
    ("window", "samples", "expected"),
    [
        (skins(34.0, 36.0, 38.0, 40.0, 42.0), 5, Unstable(taken=5, present=5, kept=1)),
        ([*skins(36.0, 36.1), AWAY, AWAY, AWAY], 5, Unstable(taken=5, present=2, kept=2)),
        (
            [*skins(36.0, 36.1), AWAY, AWAY],
            4,
            Measurement(skin_c=36.05, body_c=37.55, ambient_c=20.0, samples=2),
        ),
        (
            [*skins(36.0, 36.1, 36.2), AWAY, AWAY],
            5,
            Measurement(skin_c=36.1, body_c=37.6, ambient_c=20.0, samples=3),
        ),
    ],
)
def test_summarise_needs_at_least_half_of_the_samples(
    window: list[Reading], samples: int, expected: MeasureOutcome
) -> None:
    result = summarise(window, samples=samples, presence_delta_c=1.5, outlier_c=0.5, compensation=FLAT)
    assert result == expected


def test_unstable_says_why() -> None:
    assert Unstable(taken=5, present=3, kept=2).detail == (
        "only 2 of 5 readings usable (2 without a person, 1 outliers)"
    )


# measure: presence, timing and faults in virtual time


def test_measure_waits_for_presence_then_samples_at_the_interval() -> None:
    clock = VirtualClock()
    read = Script([AWAY, AWAY, AWAY, *skins(36.0, 36.1, 36.2, 36.1, 36.0)])
    result = run(read, clock, compensation=FLAT)
    assert result == Measurement(skin_c=36.1, body_c=37.6, ambient_c=20.0, samples=5)
    assert read.calls == 8
    assert clock.sleeps == [PRESENCE_POLL_S] * 3 + [0.1] * 4


def test_measure_gives_no_presence_after_the_timeout_without_overshooting() -> None:
    clock = VirtualClock()
    read = Script([AWAY])
    result = run(read, clock, presence_timeout_s=1.0)
    assert isinstance(result, NoPresence)
    assert result.waited_s == pytest.approx(1.0)
    assert clock.now == pytest.approx(1.0)
    assert 20 <= read.calls <= 22


def test_measure_drops_readings_when_the_person_steps_away() -> None:
    clock = VirtualClock()
    read = Script([*skins(36.0, 36.2), AWAY, *skins(36.1), AWAY])
    result = run(read, clock, compensation=FLAT)
    assert result == Measurement(skin_c=36.1, body_c=37.6, ambient_c=20.0, samples=3)
    stepped_off = run(Script([*skins(36.0, 36.2), AWAY]), VirtualClock(), compensation=FLAT)
    assert stepped_off == Unstable(taken=5, present=2, kept=2)


@pytest.mark.parametrize("at_call", [0, 2, 4])
def test_a_thermometer_error_at_any_point_is_a_sensor_fault(at_call: int) -> None:
    items: list[Reading | Exception] = [AWAY, *skins(36.0, 36.1, 36.2, 36.3)]
    detail = "error flag set in object reading (raw 0x8000)"
    items[at_call] = SensorFlagError(DEVICE, detail)
    result = run(Script(items), VirtualClock())
    assert result == SensorFault(device=DEVICE, message=f"{DEVICE}: {detail}")


def test_other_errors_are_not_disguised_as_faults() -> None:
    with pytest.raises(ZeroDivisionError):
        run(Script([ZeroDivisionError()]), VirtualClock())


def test_measure_rejects_nonsense_settings() -> None:
    with pytest.raises(ValueError, match="samples"):
        run(Script(skins(36.0)), VirtualClock(), samples=0)


# The real driver on the chip emulator


def emulated(*, ambient_c: float, object_c: float) -> tuple[Mlx90614Emulator, Mlx90614]:
    emu = Mlx90614Emulator(ambient_c=ambient_c, object_c=object_c)
    thermometer = Mlx90614(emu, retry_delay_s=0.0)
    thermometer.read()  # settle, so injected faults hit the measurement
    return emu, thermometer


def test_measure_through_the_real_driver_on_the_emulator() -> None:
    emu, thermometer = emulated(ambient_c=20.05, object_c=34.45)
    clock = VirtualClock()
    result = measure_with_config(thermometer.read, ThermometerConfig(), sleep=clock.sleep, clock=clock.clock)
    assert result == Measurement(skin_c=34.45, body_c=36.99, ambient_c=20.05, samples=5)  # 36.9925
    emu.object_c = 36.45
    febrile = measure_with_config(thermometer.read, ThermometerConfig(), sleep=clock.sleep, clock=clock.clock)
    assert isinstance(febrile, Measurement)
    assert febrile.recheck_due(37.3)


def test_nobody_in_front_of_the_emulated_sensor() -> None:
    _, thermometer = emulated(ambient_c=22.05, object_c=22.05)
    clock = VirtualClock()
    result = measure_with_config(thermometer.read, ThermometerConfig(), sleep=clock.sleep, clock=clock.clock)
    assert isinstance(result, NoPresence)
    assert clock.now == pytest.approx(ThermometerConfig().presence_timeout_s)


@pytest.mark.parametrize(
    ("inject", "error", "text"),
    [
        (Mlx90614Emulator.inject_error_flag, SensorFlagError, "error flag set in object reading"),
        (lambda emu: emu.inject_nack(4), BusError, "I2C transfer failed after 4 attempts"),
    ],
)
def test_emulated_chip_faults_become_sensor_faults(
    inject: Callable[[Mlx90614Emulator], None], error: type[Exception], text: str
) -> None:
    emu, thermometer = emulated(ambient_c=20.05, object_c=34.45)
    inject(emu)
    with pytest.raises(error):
        thermometer.read()
    inject(emu)
    clock = VirtualClock()
    result = measure_with_config(thermometer.read, ThermometerConfig(), sleep=clock.sleep, clock=clock.clock)
    assert isinstance(result, SensorFault)
    assert result.device == DEVICE
    assert result.message.startswith(DEVICE) and text in result.message


# Properties: compensation never turns a febrile reading into a normal one

ambients = st.floats(-20.0, 50.0)
thresholds = st.floats(35.0, 42.0)
compensations = st.builds(
    Compensation,
    offset_c=st.floats(-5.0, 10.0),
    ambient_coeff=st.floats(0.0, 1.0),
    reference_ambient_c=st.floats(-10.0, 45.0),
)
skin_values = st.floats(-70.0, 382.2)


@given(compensations, ambients, skin_values, st.floats(0.01, 100.0))
def test_compensation_is_strictly_increasing_with_unit_slope(
    comp: Compensation, ambient_c: float, skin_c: float, step_c: float
) -> None:
    low, high = comp.body_c(skin_c, ambient_c), comp.body_c(skin_c + step_c, ambient_c)
    assert high > low
    assert high - low == pytest.approx(step_c, abs=1e-9)


@given(compensations, ambients, skin_values, skin_values)
def test_compensation_is_monotonic_for_any_two_readings(
    comp: Compensation, ambient_c: float, a: float, b: float
) -> None:
    low, high = sorted((a, b))
    assert comp.body_c(low, ambient_c) <= comp.body_c(high, ambient_c)


@given(compensations, ambients, st.floats(42.0, 100.0), thresholds)
def test_compensation_is_unclipped_and_never_lowers(
    comp: Compensation, ambient_c: float, skin_c: float, threshold_c: float
) -> None:
    body_c = comp.body_c(skin_c, ambient_c)
    assert body_c >= skin_c >= 42.0
    assert body_c - skin_c == pytest.approx(max(0.0, comp.linear_correction_c(ambient_c)), abs=1e-9)
    assert is_fever(body_c, threshold_c)


@given(ambients, st.floats(42.0, 45.0))
def test_default_compensation_raises_42_above_42_wherever_its_correction_is_positive(
    ambient_c: float, skin_c: float
) -> None:
    body_c = DEFAULT.body_c(skin_c, ambient_c)
    assert body_c > skin_c if ambient_c < 37.0 else body_c == skin_c


@settings(max_examples=200)
@given(compensations, ambients, st.floats(2.0, 30.0), thresholds)
def test_a_febrile_skin_reading_stays_febrile_through_measure(
    comp: Compensation, ambient_c: float, rise_c: float, threshold_c: float
) -> None:
    reading = Reading(ambient_c=ambient_c, object_c=ambient_c + rise_c)
    result = run(Script([reading]), VirtualClock(), compensation=comp)
    assert isinstance(result, Measurement)
    if is_fever(reading.object_c, threshold_c):
        assert is_fever(result.body_c, threshold_c)
    assert result.body_c >= result.skin_c


@given(st.floats(30.0, 45.0), thresholds)
def test_is_fever_never_misses_an_exact_fever(body_c: float, threshold_c: float) -> None:
    if body_c >= threshold_c:
        assert is_fever(body_c, threshold_c)


@given(st.floats(37.3, 45.0), st.floats(30.0, 45.0))
def test_a_recheck_never_clears_a_fever(first_c: float, recheck_c: float) -> None:
    first = Measurement(skin_c=first_c - 1.8, body_c=first_c, ambient_c=25.0, samples=5)
    second = Measurement(skin_c=recheck_c - 1.8, body_c=recheck_c, ambient_c=25.0, samples=5)
    final = resolve_recheck(first, second)
    assert is_fever(final.body_c, 37.3)
    assert final.body_c == max(first_c, recheck_c)


# kiosk calibrate


TRUE = Compensation(offset_c=1.6, ambient_coeff=0.2, reference_ambient_c=25.0)


def write_pairs(
    path: Path,
    truth: Compensation,
    *,
    ambient: tuple[float, float],
    skin: tuple[float, float] = (33.0, 36.5),
    n: int = 40,
    noise_c: float = 0.05,
) -> Path:
    rng = np.random.default_rng(7)
    rows = ["skin_c,ambient_c,reference_body_c"]
    for _ in range(n):
        ambient_c = float(rng.uniform(*ambient))
        skin_c = float(rng.uniform(*skin))
        body_c = skin_c + truth.linear_correction_c(ambient_c) + float(rng.normal(0.0, noise_c))
        rows.append(f"{skin_c:.2f},{ambient_c:.2f},{body_c:.2f}")
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def calibrate(path: Path) -> tuple[int, list[str], list[str]]:
    out: list[str] = []
    err: list[str] = []
    return run_calibrate(path, out=out.append, err=err.append), out, err


def fitted(out: list[str]) -> Compensation:
    section = tomllib.loads("\n".join(out))["thermometer"]
    return Compensation.from_config(ThermometerConfig(**section))


def test_calibrate_recovers_known_coefficients(tmp_path: Path) -> None:
    code, out, err = calibrate(write_pairs(tmp_path / "pairs.csv", TRUE, ambient=(0.0, 30.0)))
    assert (code, err) == (0, [])
    result = fitted(out)
    assert result.ambient_coeff == pytest.approx(0.2, abs=0.02)
    for ambient_c in (0.0, 10.0, 20.0, 30.0):
        expected_c = TRUE.linear_correction_c(ambient_c)
        assert result.linear_correction_c(ambient_c) == pytest.approx(expected_c, abs=0.06)
    rms, max_error = (float(w) for w in out[-1].replace(",", "").split() if w[0].isdigit())
    assert 0.02 < rms < 0.08
    assert rms <= max_error < 0.25
    assert not any("note" in line for line in out)


def test_calibrate_fits_offset_only_when_ambient_spread_is_small(tmp_path: Path) -> None:
    truth = Compensation(offset_c=1.6, ambient_coeff=0.15, reference_ambient_c=25.0)
    code, out, _ = calibrate(write_pairs(tmp_path / "pairs.csv", truth, ambient=(20.0, 23.0)))
    assert code == 0
    assert any("ambient_coeff cannot be fitted" in line for line in out)
    result = fitted(out)
    assert result.ambient_coeff == 0.15
    assert result.linear_correction_c(21.5) == pytest.approx(truth.linear_correction_c(21.5), abs=0.05)


def test_calibrate_fits_offset_only_on_fewer_than_five_rows(tmp_path: Path) -> None:
    code, out, _ = calibrate(write_pairs(tmp_path / "pairs.csv", TRUE, ambient=(0.0, 30.0), n=4))
    assert code == 0
    assert any("4 pairs (< 5)" in line for line in out)
    assert fitted(out).ambient_coeff == 0.15


def test_calibrate_notes_where_the_floor_overrides_the_fit(tmp_path: Path) -> None:
    hot = Compensation(offset_c=0.5, ambient_coeff=0.3, reference_ambient_c=25.0)
    code, out, _ = calibrate(write_pairs(tmp_path / "pairs.csv", hot, ambient=(20.0, 40.0), noise_c=0.0))
    assert code == 0
    assert any("negative correction" in line for line in out)


@pytest.mark.parametrize(
    ("truth", "skin", "message"),
    [
        (
            Compensation(offset_c=3.0, ambient_coeff=-0.2, reference_ambient_c=25.0),
            (33.0, 36.5),
            "ambient_coeff",
        ),
        (Compensation(offset_c=12.0, ambient_coeff=0.1, reference_ambient_c=25.0), (22.0, 25.0), "offset_c"),
    ],
)
def test_calibrate_refuses_fits_outside_the_config_bounds(
    tmp_path: Path, truth: Compensation, skin: tuple[float, float], message: str
) -> None:
    path = write_pairs(tmp_path / "pairs.csv", truth, ambient=(5.0, 25.0), skin=skin)
    code, out, err = calibrate(path)
    assert (code, out) == (EXIT_REFUSED, [])
    assert message in err[0] and "outside the allowed" in err[0]


def test_calibrate_refuses_too_few_pairs(tmp_path: Path) -> None:
    code, _, err = calibrate(write_pairs(tmp_path / "pairs.csv", TRUE, ambient=(0.0, 30.0), n=2))
    assert code == EXIT_REFUSED
    assert "at least 3" in err[0]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("skin_c,ambient,reference_body_c\n34.0,20.0,36.5\n", "missing ambient_c"),
        ("skin_c,ambient_c,reference_body_c\n34.0,cold,36.5\n", "line 2: ambient_c 'cold' is not a number"),
        (
            "skin_c,ambient_c,reference_body_c\n34.0,20.0,36.5\n34.0,20.0,3.65\n",
            "line 3: reference_body_c 3.65",
        ),
        ("skin_c,ambient_c,reference_body_c\n34.0,20.0,nan\n", "reference_body_c nan"),
        ("skin_c,ambient_c,reference_body_c\n34.0,20.0,36.5,1\n", "line 2: more fields"),
        ("skin_c,ambient_c,reference_body_c\n\n", "no data rows"),
        ("", "header must name"),
    ],
)
def test_calibrate_rejects_a_bad_csv(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "pairs.csv"
    path.write_text(text, encoding="utf-8")
    code, out, err = calibrate(path)
    assert (code, out) == (EXIT_USAGE, [])
    assert message in err[0]


def test_calibrate_rejects_a_missing_file(tmp_path: Path) -> None:
    code, _, err = calibrate(tmp_path / "absent.csv")
    assert code == EXIT_USAGE
    assert "cannot read" in err[0]
