"""Body temperature from the forehead IR thermometer: presence, median of samples, compensation, recheck."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from statistics import median
from typing import TypeAlias

from drivers.mlx90614 import Reading, ThermometerError
from kiosk.config import ThermometerConfig

PRESENCE_POLL_S = 0.05
SHOWN_DECIMALS = 2  # readings are kept and compared at 0.01 °C (the sensor resolves 0.02 °C)


@dataclass(frozen=True)
class Compensation:
    """body_c = skin_c + max(0, offset_c + ambient_coeff * (reference_ambient_c - ambient_c)), in °C."""

    offset_c: float
    ambient_coeff: float
    reference_ambient_c: float

    @classmethod
    def from_config(cls, config: ThermometerConfig) -> Compensation:
        """The coefficients of the `[thermometer]` section."""
        return cls(config.offset_c, config.ambient_coeff, config.reference_ambient_c)

    def correction_c(self, ambient_c: float) -> float:
        """What is added to the skin reading at this ambient; never negative, so no reading is lowered."""
        return max(0.0, self.linear_correction_c(ambient_c))

    def linear_correction_c(self, ambient_c: float) -> float:
        """The fitted linear correction before the floor at zero (what `kiosk calibrate` fits)."""
        return self.offset_c + self.ambient_coeff * (self.reference_ambient_c - ambient_c)

    def body_c(self, skin_c: float, ambient_c: float) -> float:
        """Body temperature for a skin reading: a pure shift, so strictly increasing and unclipped."""
        return skin_c + self.correction_c(ambient_c)


@dataclass(frozen=True)
class Measurement:
    """A usable reading, in °C rounded to 0.01; `samples` counts the readings kept after outliers."""

    skin_c: float
    body_c: float
    ambient_c: float
    samples: int
    rechecked: bool = False

    def recheck_due(self, threshold_c: float) -> bool:
        """True when this first reading is at or over the threshold and must be measured once more."""
        return not self.rechecked and is_fever(self.body_c, threshold_c)


@dataclass(frozen=True)
class NoPresence:
    """Nobody stood in front of the thermometer within the presence timeout."""

    waited_s: float


@dataclass(frozen=True)
class Unstable:
    """Fewer than half of the samples were usable (person moved away, or readings scattered)."""

    taken: int
    present: int
    kept: int

    @property
    def detail(self) -> str:
        """One line saying what went wrong."""
        return (
            f"only {self.kept} of {self.taken} readings usable "
            f"({self.taken - self.present} without a person, {self.present - self.kept} outliers)"
        )


@dataclass(frozen=True)
class SensorFault:
    """The thermometer failed; `message` names the device (the flow gives `attention`, `sensor_fault`)."""

    device: str
    message: str

    @classmethod
    def from_error(cls, error: ThermometerError) -> SensorFault:
        """The fault for a driver error."""
        return cls(device=error.device, message=str(error))


MeasureOutcome: TypeAlias = Measurement | NoPresence | Unstable | SensorFault


def is_fever(body_c: float, threshold_c: float) -> bool:
    """At or over the threshold, compared at 0.01 °C: rounding is monotonic, so this never misses a fever."""
    return round(body_c, SHOWN_DECIMALS) >= round(threshold_c, SHOWN_DECIMALS)


def is_present(reading: Reading, presence_delta_c: float) -> bool:
    """Someone is in front of the sensor: the object is warmer than ambient by more than presence_delta_c."""
    return reading.object_c - reading.ambient_c > presence_delta_c


def keep_inliers(readings: Sequence[Reading], outlier_c: float) -> list[Reading]:
    """The readings whose object_c lies within outlier_c of the median object_c, in their order."""
    if not readings:
        return []
    centre = median(r.object_c for r in readings)
    return [r for r in readings if abs(r.object_c - centre) <= outlier_c]


def summarise(
    window: Sequence[Reading],
    *,
    samples: int,
    presence_delta_c: float,
    outlier_c: float,
    compensation: Compensation,
) -> Measurement | Unstable:
    """Drop readings without a person, then outliers; median of the rest; Unstable if under half remain."""
    present = [r for r in window if is_present(r, presence_delta_c)]
    kept = keep_inliers(present, outlier_c)
    if not kept or 2 * len(kept) < samples:
        return Unstable(taken=len(window), present=len(present), kept=len(kept))
    skin_c = median(r.object_c for r in kept)
    ambient_c = median(r.ambient_c for r in kept)
    return Measurement(
        skin_c=round(skin_c, SHOWN_DECIMALS),
        body_c=round(compensation.body_c(skin_c, ambient_c), SHOWN_DECIMALS),
        ambient_c=round(ambient_c, SHOWN_DECIMALS),
        samples=len(kept),
    )


def measure(
    read: Callable[[], Reading],
    *,
    samples: int,
    interval_s: float,
    presence_delta_c: float,
    presence_timeout_s: float,
    outlier_c: float,
    compensation: Compensation,
    sleep: Callable[[float], None],
    clock: Callable[[], float],
) -> MeasureOutcome:
    """Wait for a person, then take `samples` readings `interval_s` apart (the first one saw them)."""
    if samples < 1 or interval_s < 0 or presence_timeout_s < 0 or outlier_c < 0:
        raise ValueError("samples >= 1 and non-negative interval_s, presence_timeout_s, outlier_c required")
    try:
        start = clock()
        while not is_present(first := read(), presence_delta_c):
            waited_s = clock() - start
            if waited_s >= presence_timeout_s:
                return NoPresence(waited_s=waited_s)
            sleep(min(PRESENCE_POLL_S, presence_timeout_s - waited_s))
        window = [first]
        for _ in range(samples - 1):
            sleep(interval_s)
            window.append(read())
    except ThermometerError as error:
        return SensorFault.from_error(error)
    return summarise(
        window,
        samples=samples,
        presence_delta_c=presence_delta_c,
        outlier_c=outlier_c,
        compensation=compensation,
    )


def measure_with_config(
    read: Callable[[], Reading],
    config: ThermometerConfig,
    *,
    sleep: Callable[[float], None],
    clock: Callable[[], float],
) -> MeasureOutcome:
    """`measure` with every setting from the `[thermometer]` section."""
    return measure(
        read,
        samples=config.samples,
        interval_s=config.sample_interval_s,
        presence_delta_c=config.presence_delta_c,
        presence_timeout_s=config.presence_timeout_s,
        outlier_c=config.outlier_c,
        compensation=Compensation.from_config(config),
        sleep=sleep,
        clock=clock,
    )


def resolve_recheck(first: Measurement, recheck: MeasureOutcome) -> Measurement:
    """The higher body_c stands (IR under-reads far more than it over-reads): a recheck never clears fever."""
    if isinstance(recheck, Measurement) and recheck.body_c > first.body_c:
        return replace(recheck, rechecked=True)
    return replace(first, rechecked=True)


def take_reading(read: Callable[[], Reading], config: ThermometerConfig, *, fever_threshold_c: float,
                 sleep: Callable[[float], None], clock: Callable[[], float],
                 say: Callable[[str], None]) -> MeasureOutcome:
    """The reading a verdict uses: one measurement, and one more when it is at or over the threshold."""
    first = measure_with_config(read, config, sleep=sleep, clock=clock)
    if isinstance(first, Measurement) and first.recheck_due(fever_threshold_c):
        say("measure_again")
        return resolve_recheck(first, measure_with_config(read, config, sleep=sleep, clock=clock))
    if isinstance(first, Unstable):
        say("measure_again")
    return first
