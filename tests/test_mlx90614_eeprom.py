"""The configured emissivity reaches the chip's EEPROM: checked on open, written only when it differs."""

import errno
import math
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from mlx_helpers import FakeTime
from smbus2 import i2c_msg
from smbus2.smbus2 import I2C_M_RD

import drivers.mlx90614 as mlx
from drivers.emulated.mlx90614 import Mlx90614Emulator
from drivers.mlx90614 import (
    BusError,
    EepromError,
    Mlx90614,
    ThermometerError,
    emissivity_to_word,
    word_to_emissivity,
)
from kiosk.config import KioskConfig, load_embedded
from kiosk.hardware import Emulation, Hardware

DEVICE = "thermometer mlx90614@0x5a"
EMISSIVITY = 0x24
FACTORY = 0xFFFF  # ε = 1.0 as shipped
E_095 = 62258  # round(0.95 × 65535) = 62258.25 → 0xF332


class Logged(Mlx90614Emulator):
    """The emulator, logging each EEPROM access with the time it happened and each write frame as sent."""

    def __init__(self, **options: Any) -> None:
        self.log: list[tuple[str, int, int | None, float]] = []
        self.frames: list[bytes] = []
        super().__init__(**options)

    def i2c_rdwr(self, *msgs: i2c_msg) -> None:
        command = bytes(msgs[0])[0]
        writing = len(msgs) == 1 and not msgs[0].flags & I2C_M_RD
        if writing:
            self.frames.append(bytes(msgs[0]))
        super().i2c_rdwr(*msgs)
        if command >= 0x20:
            value = bytes(msgs[0])[1] | bytes(msgs[0])[2] << 8 if writing else None
            self.log.append(("write" if writing else "read", command, value, self.clock()))


def driver(emu: Mlx90614Emulator, emissivity: float | None, **options: Any) -> Mlx90614:
    """A driver whose waits take no time."""
    return Mlx90614(emu, emissivity=emissivity, retry_delay_s=0.0, sleep=FakeTime().sleep, **options)


# conversion


@pytest.mark.parametrize(
    ("emissivity", "word"),
    [
        (1.0, 0xFFFF),  # upper bound, the factory setting
        (0.1, 0x199A),  # lower bound: 6553.5 rounds up
        (0.95, 0xF332),
        (0.98, 0xFAE0),
        (0.5, 0x8000),  # 32767.5 rounds up
        (0.7, 45875),  # 45874.5 rounds up, where Python's round() would go to even (45874)
    ],
)
def test_emissivity_to_word_and_back(emissivity: float, word: int) -> None:
    assert emissivity_to_word(emissivity) == word
    assert word_to_emissivity(word) == pytest.approx(emissivity, abs=0.5 / 65535)


def test_word_to_emissivity_bounds() -> None:
    assert word_to_emissivity(0xFFFF) == 1.0
    assert word_to_emissivity(0x199A) == 6554 / 65535
    assert word_to_emissivity(0) == 0.0


@pytest.mark.parametrize("emissivity", [0.0999, 1.0001, 0.0, -0.5, math.nan, math.inf])
def test_emissivity_outside_0_1_to_1_is_rejected(emissivity: float) -> None:
    with pytest.raises(ValueError, match="emissivity"):
        emissivity_to_word(emissivity)
    emu = Mlx90614Emulator()
    with pytest.raises(ValueError, match="emissivity"):
        driver(emu, emissivity)
    assert emu.transactions == 0


@given(st.integers(min_value=0x199A, max_value=0xFFFF))
def test_every_valid_word_round_trips(word: int) -> None:
    assert emissivity_to_word(word_to_emissivity(word)) == word


# checked on open, written only when it differs


def test_open_does_not_touch_the_bus() -> None:
    emu = Mlx90614Emulator()
    driver(emu, 0.95)
    assert emu.transactions == 0  # a chip missing at boot is a reading fault, not a failed start


def test_matching_emissivity_is_not_written() -> None:
    emu = Logged(settle_reads=0)
    thermometer = driver(emu, 1.0, settle_reads=0)
    assert thermometer.object_c == 22.05
    assert emu.eeprom_writes == []
    assert [(kind, command) for kind, command, _, _ in emu.log] == [("read", EMISSIVITY)]
    thermometer.read()
    assert len(emu.log) == 1  # checked once per open, not per reading


def test_a_value_that_rounds_to_the_stored_word_is_not_written() -> None:
    emu = Mlx90614Emulator()
    emu.eeprom[EMISSIVITY] = E_095
    driver(emu, 0.95000001).read()
    assert emu.eeprom_writes == []


def test_differing_emissivity_is_erased_then_written_once() -> None:
    emu = Mlx90614Emulator(object_c=36.61)
    thermometer = driver(emu, 0.95)
    assert thermometer.object_c == 36.61
    assert emu.eeprom_writes == [(EMISSIVITY, 0x0000), (EMISSIVITY, E_095)]
    assert emu.eeprom[EMISSIVITY] == E_095
    thermometer.read()
    assert len(emu.eeprom_writes) == 2
    restarted = driver(emu, 0.95)
    restarted.read()
    assert len(emu.eeprom_writes) == 2
    assert restarted.emissivity == pytest.approx(0.95, abs=0.5 / 65535)


def test_no_emissivity_configured_leaves_the_eeprom_alone() -> None:
    emu = Logged()
    driver(emu, None).read()
    assert emu.log == []


def test_erase_then_write_each_followed_by_the_eeprom_write_time() -> None:
    clock = FakeTime()
    emu = Logged(clock=clock.monotonic, eeprom_busy_s=0.005, settle_reads=0)
    thermometer = Mlx90614(
        emu, emissivity=0.95, settle_reads=0, eeprom_write_delay_s=0.005, sleep=clock.sleep
    )
    thermometer.read()
    assert emu.log == [
        ("read", EMISSIVITY, None, 0.0),
        ("write", EMISSIVITY, 0x0000, 0.0),
        ("write", EMISSIVITY, E_095, pytest.approx(0.005)),
        ("read", EMISSIVITY, None, pytest.approx(0.010)),
    ]
    assert clock.sleeps == [0.005, 0.005]
    assert thermometer.transient_errors == {"EIO": 0, "EREMOTEIO": 0, "ETIMEDOUT": 0}  # never hit it busy


def test_default_eeprom_wait_is_at_least_5_ms() -> None:
    clock = FakeTime()
    emu = Mlx90614Emulator(clock=clock.monotonic, eeprom_busy_s=0.005, settle_reads=0)
    Mlx90614(emu, emissivity=0.95, settle_reads=0, sleep=clock.sleep).read()
    assert len(clock.sleeps) == 2 and all(seconds >= 0.005 for seconds in clock.sleeps)
    with pytest.raises(ValueError, match="eeprom_write_delay_s"):
        Mlx90614(emu, eeprom_write_delay_s=0.0049)


def test_every_eeprom_write_carries_its_pec() -> None:
    emu = Logged()
    driver(emu, 0.95).read()
    # PEC over 0xB4 (address 0x5A, write), command, LSB, MSB; 0x28 is the well-known erase-emissivity PEC.
    assert emu.frames == [bytes([0x24, 0x00, 0x00, 0x28]), bytes([0x24, 0x32, 0xF3, 0x2C])]
    assert emu.rejected_writes == []


def test_writes_with_a_wrong_pec_are_ignored_and_caught_by_read_back(monkeypatch: pytest.MonkeyPatch) -> None:
    good = mlx.crc8_pec

    def wrong_for_writes(data: bytes) -> int:
        return good(data) ^ 0x01 if len(data) == 4 else good(data)

    monkeypatch.setattr(mlx, "crc8_pec", wrong_for_writes)
    emu = Mlx90614Emulator()
    with pytest.raises(EepromError, match="not verified"):
        driver(emu, 0.95).read()
    assert len(emu.rejected_writes) == 2
    assert emu.eeprom[EMISSIVITY] == FACTORY


# verification


def test_a_write_that_does_not_stick_raises_eeprom_error() -> None:
    emu = Mlx90614Emulator()
    emu.inject_lost_eeprom_write()  # the erase is lost, so the new bits mix with the old
    thermometer = driver(emu, 0.95)
    with pytest.raises(EepromError) as caught:
        thermometer.read()
    error = caught.value
    assert isinstance(error, ThermometerError)
    assert error.device == DEVICE and str(error).startswith(DEVICE + ": ")
    assert error.detail == "emissivity 0.95 not verified in EEPROM: wrote 0xf332, read back 0xffff"


def test_after_a_failed_write_readings_fail_without_writing_again() -> None:
    emu = Mlx90614Emulator()
    emu.inject_lost_eeprom_write(2)
    thermometer = driver(emu, 0.95)
    with pytest.raises(EepromError, match="not verified"):
        thermometer.read()
    for _ in range(3):
        with pytest.raises(EepromError, match="not rewritten"):
            thermometer.read()
    assert len(emu.eeprom_writes) == 2  # a worn cell is not hammered on every reading
    driver(emu, 0.95).read()  # the next open tries once more, and this time it sticks
    assert emu.eeprom[EMISSIVITY] == E_095


@pytest.mark.parametrize(
    "inject",
    [lambda emu: emu.inject_nack(4), lambda emu: emu.inject_errno(errno.ENXIO)],
    ids=["nack", "enxio"],
)
def test_a_bus_error_while_checking_is_retried_at_the_next_reading(
    inject: Callable[[Mlx90614Emulator], None],
) -> None:
    emu = Mlx90614Emulator(object_c=36.61)
    thermometer = driver(emu, 0.95)
    inject(emu)
    with pytest.raises(BusError):
        thermometer.read()
    assert emu.eeprom_writes == []
    assert thermometer.object_c == 36.61
    assert emu.eeprom[EMISSIVITY] == E_095


def test_setter_writes_only_when_the_value_differs() -> None:
    emu = Mlx90614Emulator()
    thermometer = driver(emu, None)
    thermometer.emissivity = 1.0
    assert emu.eeprom_writes == []
    thermometer.emissivity = 0.95
    thermometer.emissivity = 0.95
    assert emu.eeprom_writes == [(EMISSIVITY, 0x0000), (EMISSIVITY, E_095)]


def test_setter_overrides_the_configured_value_for_this_open() -> None:
    emu = Mlx90614Emulator()
    thermometer = driver(emu, 0.95)
    thermometer.emissivity = 0.98
    thermometer.read()
    assert emu.eeprom[EMISSIVITY] == emissivity_to_word(0.98)
    assert len(emu.eeprom_writes) == 2


# kiosk/hardware.py passes the configured value


def with_emissivity(emissivity: float | None) -> KioskConfig:
    config = load_embedded()
    thermometer = config.thermometer.model_copy(update={"emissivity": emissivity})
    return config.model_copy(update={"thermometer": thermometer})


def test_hardware_applies_the_configured_emissivity_to_the_emulated_chip() -> None:
    hardware = Hardware(with_emissivity(0.95), emulation=Emulation())
    assert hardware.emulation is not None and hardware.emulation.chip is not None
    chip = hardware.emulation.chip
    with hardware.thermometer() as sensor:
        sensor.read()
    assert chip.eeprom[EMISSIVITY] == E_095
    with hardware.thermometer() as sensor:
        sensor.read()
    assert chip.eeprom_writes == [(EMISSIVITY, 0x0000), (EMISSIVITY, E_095)]


def test_hardware_without_emissivity_does_not_write() -> None:
    hardware = Hardware(with_emissivity(None), emulation=Emulation())
    assert hardware.emulation is not None and hardware.emulation.chip is not None
    with hardware.thermometer() as sensor:
        sensor.read()
    assert hardware.emulation.chip.eeprom_writes == []
    assert hardware.emulation.chip.eeprom[EMISSIVITY] == FACTORY
