"""The real MLX90614 driver against the chip-level emulator."""

import errno
import math
import threading
from collections.abc import Callable
from typing import Any, TypedDict

import pytest
from hypothesis import given
from hypothesis import strategies as st
from mlx_helpers import FakeTime
from smbus2 import i2c_msg

import drivers.mlx90614 as mlx
from drivers.emulated.mlx90614 import Mlx90614Emulator
from drivers.errors import DeviceError
from drivers.mlx90614 import (
    BusError,
    Mlx90614,
    OutOfRangeError,
    PecError,
    Reading,
    SensorFlagError,
    ThermometerError,
    crc8_pec,
    raw_to_c,
)

DEVICE = "thermometer mlx90614@0x5a"


class Delays(TypedDict):
    retry_delay_s: float
    sleep: Callable[[float], None]


def no_sleep(seconds: float) -> None:
    """The driver's waits, skipped."""


FAST = Delays(retry_delay_s=0.0, sleep=no_sleep)


def make(emu: Mlx90614Emulator, **options: Any) -> Mlx90614:
    """A driver with no waits, settled by one reading so fault injection hits the reading under test."""
    thermometer = Mlx90614(emu, **{**FAST, **options})
    thermometer.read()
    return thermometer


def raw_write(emu: Mlx90614Emulator, command: int, value: int, *, pec: int | None = None) -> None:
    """An SMBus write word with PEC sent straight to the emulator, bypassing the driver."""
    lsb, msb = value & 0xFF, value >> 8
    if pec is None:
        pec = crc8_pec(bytes([emu.address << 1, command, lsb, msb]))
    emu.i2c_rdwr(i2c_msg.write(emu.address, [command, lsb, msb, pec]))


# PEC


@pytest.mark.parametrize(
    ("data", "pec"),
    [
        (bytes([0x00, 0x2E, 0x00, 0x00]), 0x6F),  # Melexis: erase SMBus address via address 0
        (bytes([0x00, 0x2E, 0x5A, 0x00]), 0xE1),  # Melexis: write SMBus address 0x5A via address 0
        (bytes([0xB4, 0x07, 0xB5, 0xD2, 0x3A]), 0x30),  # datasheet: read Tobj1 = 0x3AD2
        (b"", 0x00),
    ],
)
def test_crc8_pec_check_vectors(data: bytes, pec: int) -> None:
    assert crc8_pec(data) == pec


def test_read_is_one_repeated_start_transfer_with_pec() -> None:
    seen: list[list[tuple[int, int, int]]] = []

    class Recorder(Mlx90614Emulator):
        def i2c_rdwr(self, *msgs: i2c_msg) -> None:
            seen.append([(m.addr, m.flags, len(m)) for m in msgs])
            super().i2c_rdwr(*msgs)

    thermometer = Mlx90614(Recorder(settle_reads=0), settle_reads=0, **FAST)
    _ = thermometer.object_c
    assert seen == [[(0x5A, 0, 1), (0x5A, 1, 3)]]


# conversion


@pytest.mark.parametrize("celsius", [36.61, 37.31, -0.01, 0.01, -39.99, 124.99, 22.45])
def test_ambient_round_trip(celsius: float) -> None:
    emu = Mlx90614Emulator(ambient_c=celsius, settle_reads=0)
    assert Mlx90614(emu, settle_reads=0, **FAST).ambient_c == celsius


@pytest.mark.parametrize("celsius", [36.61, 37.29, 41.99, -69.99, -12.33, 100.01, 382.19])
def test_object_round_trip(celsius: float) -> None:
    emu = Mlx90614Emulator(object_c=celsius, settle_reads=0)
    assert Mlx90614(emu, settle_reads=0, **FAST).object_c == celsius


def test_resolution_is_0_02_kelvin() -> None:
    emu = Mlx90614Emulator(settle_reads=0)
    thermometer = Mlx90614(emu, settle_reads=0, **FAST)
    readings = []
    for celsius in (36.59, 36.61, 36.63):
        emu.object_c = celsius
        readings.append(thermometer.object_c)
    assert readings == [36.59, 36.61, 36.63]
    emu.object_c = 36.604  # between two steps: the nearest step comes back
    assert thermometer.object_c == 36.61


def test_raw_to_c() -> None:
    assert raw_to_c(0x3AD2) == 28.01  # the datasheet example word
    assert raw_to_c(0) == -273.15
    assert raw_to_c(0x7FFF) == 382.19


@given(st.integers(min_value=10_159, max_value=0x7FFF))
def test_object_every_raw_step_round_trips(raw: int) -> None:
    celsius = raw * 0.02 - 273.15
    emu = Mlx90614Emulator(object_c=celsius, settle_reads=0)
    assert Mlx90614(emu, settle_reads=0, **FAST).object_c == pytest.approx(celsius, abs=1e-9)


@given(
    st.floats(min_value=-39.99, max_value=124.99, allow_nan=False),
    st.floats(min_value=-69.99, max_value=382.19, allow_nan=False),
)
def test_conversion_over_the_whole_range(ambient: float, obj: float) -> None:
    emu = Mlx90614Emulator(ambient_c=ambient, object_c=obj, settle_reads=0)
    reading = Mlx90614(emu, settle_reads=0, **FAST).read()
    assert abs(reading.ambient_c - ambient) <= 0.01 + 1e-9  # half of the 0.02 K step
    assert abs(reading.object_c - obj) <= 0.01 + 1e-9


# settling


def test_first_readings_are_discarded() -> None:
    emu = Mlx90614Emulator(object_c=36.61, ambient_c=21.01, settle_reads=3)
    thermometer = Mlx90614(emu, settle_reads=3, **FAST)
    assert thermometer.object_c == 36.61
    assert emu.transactions == 4
    assert thermometer.read() == Reading(ambient_c=21.01, object_c=36.61)
    assert emu.transactions == 6


def test_emulator_is_unsettled_after_power_on() -> None:
    emu = Mlx90614Emulator(object_c=36.61, settle_reads=3)
    early = [emu.read_word_data(0x5A, 0x07) for _ in range(3)]
    settled = emu.read_word_data(0x5A, 0x07)
    assert settled == round((36.61 + 273.15) / 0.02)
    assert all(word < settled for word in early)
    emu.power_cycle()
    assert emu.read_word_data(0x5A, 0x07) < settled


def test_without_discard_the_unsettled_reading_shows() -> None:
    emu = Mlx90614Emulator(object_c=36.61, settle_reads=3)
    with pytest.raises(OutOfRangeError):
        _ = Mlx90614(emu, settle_reads=0, **FAST).object_c


# faults


def assert_names_device(error: DeviceError, device: str = DEVICE) -> None:
    assert isinstance(error, ThermometerError)
    assert error.device == device
    assert str(error).startswith(device + ": ")


TRANSIENT = [errno.EIO, errno.EREMOTEIO, errno.ETIMEDOUT]
NO_ERRORS = {"EIO": 0, "EREMOTEIO": 0, "ETIMEDOUT": 0}


@pytest.mark.parametrize("code", TRANSIENT, ids=errno.errorcode.get)
def test_transient_errno_is_retried_and_succeeds_within_budget(code: int) -> None:
    emu = Mlx90614Emulator(object_c=36.61)
    thermometer = make(emu, retries=3)
    before = emu.transactions
    emu.inject_errno(code, 3)
    assert thermometer.object_c == 36.61
    assert emu.transactions - before == 4
    assert thermometer.transient_errors == {**NO_ERRORS, errno.errorcode[code]: 3}


@pytest.mark.parametrize("retries", [0, 3])
@pytest.mark.parametrize("code", TRANSIENT, ids=errno.errorcode.get)
def test_transient_errno_beyond_budget_is_bus_error(code: int, retries: int) -> None:
    emu = Mlx90614Emulator()
    thermometer = make(emu, retries=retries)
    before = emu.transactions
    emu.inject_errno(code, retries + 1)
    with pytest.raises(BusError) as caught:
        _ = thermometer.object_c
    assert caught.value.errno == code
    assert f"after {retries + 1} attempt" in caught.value.detail
    assert isinstance(caught.value.__cause__, OSError)
    assert_names_device(caught.value)
    assert emu.transactions - before == retries + 1
    assert thermometer.transient_errors == {**NO_ERRORS, errno.errorcode[code]: retries + 1}
    assert thermometer.ambient_c == 22.05


NOT_TRANSIENT = [errno.ENXIO, errno.EAGAIN, errno.EBADMSG, errno.EOPNOTSUPP, errno.EINVAL]


@pytest.mark.parametrize("code", NOT_TRANSIENT, ids=errno.errorcode.get)
def test_other_errno_is_not_retried_or_counted(code: int) -> None:
    emu = Mlx90614Emulator()
    thermometer = make(emu, retries=3)
    before = emu.transactions
    emu.inject_errno(code)
    with pytest.raises(BusError) as caught:
        _ = thermometer.object_c
    assert caught.value.errno == code
    assert "attempt" not in caught.value.detail
    assert emu.transactions - before == 1
    assert thermometer.transient_errors == NO_ERRORS
    assert thermometer.object_c == 22.05


def test_mixed_transient_errnos_share_one_budget_and_are_counted_apart() -> None:
    emu = Mlx90614Emulator(object_c=36.61)
    thermometer = make(emu, retries=3)
    emu.inject_eio()
    emu.inject_nack()
    emu.inject_timeout()
    assert thermometer.object_c == 36.61
    emu.inject_nack(2)
    assert thermometer.object_c == 36.61
    assert thermometer.transient_errors == {"EIO": 1, "EREMOTEIO": 3, "ETIMEDOUT": 1}
    other = Mlx90614Emulator()
    short = make(other, retries=2)
    other.inject_nack()
    other.inject_eio()
    other.inject_timeout()
    with pytest.raises(BusError) as caught:
        _ = short.object_c
    assert caught.value.errno == errno.ETIMEDOUT


def test_transient_errors_is_a_snapshot() -> None:
    thermometer = make(Mlx90614Emulator())
    counts = thermometer.transient_errors
    assert counts == NO_ERRORS
    assert isinstance(counts, dict)
    counts["EIO"] = 99
    assert thermometer.transient_errors == NO_ERRORS


def test_each_retry_waits_retry_delay() -> None:
    emu = Mlx90614Emulator(settle_reads=0)
    clock = FakeTime()
    thermometer = Mlx90614(emu, settle_reads=0, retries=3, retry_delay_s=0.007, sleep=clock.sleep)
    emu.inject_nack()
    emu.inject_timeout()
    _ = thermometer.object_c
    assert clock.sleeps == [0.007, 0.007]


def test_wrong_address_is_a_nack() -> None:
    emu = Mlx90614Emulator(address=0x5A)
    thermometer = Mlx90614(emu, address=0x5B, retries=2, **FAST)
    with pytest.raises(BusError) as caught:
        _ = thermometer.object_c
    assert caught.value.errno == errno.EREMOTEIO
    assert_names_device(caught.value, "thermometer mlx90614@0x5b")
    assert emu.transactions == 3
    emu.address = 0x5B
    assert thermometer.object_c == 22.05


def test_single_bad_pec_is_retried() -> None:
    emu = Mlx90614Emulator(object_c=36.61)
    thermometer = make(emu)
    before = emu.transactions
    emu.inject_bad_pec()
    assert thermometer.object_c == 36.61
    assert emu.transactions - before == 2


def test_persistent_bad_pec_is_pec_error() -> None:
    emu = Mlx90614Emulator()
    thermometer = make(emu, retries=2)
    before = emu.transactions
    emu.inject_bad_pec(3)
    with pytest.raises(PecError) as caught:
        _ = thermometer.object_c
    assert_names_device(caught.value)
    assert "PEC" in caught.value.detail
    assert emu.transactions - before == 3


def test_eio_and_bad_pec_share_one_budget() -> None:
    emu = Mlx90614Emulator()
    thermometer = make(emu, retries=2)
    emu.inject_bad_pec(2)
    emu.inject_eio(1)
    with pytest.raises(PecError):
        _ = thermometer.object_c  # EIO, then two bad PECs: three attempts used up


def test_error_flag_is_sensor_flag_error() -> None:
    emu = Mlx90614Emulator(object_c=36.61)
    thermometer = make(emu)
    emu.inject_error_flag()
    with pytest.raises(SensorFlagError) as caught:
        _ = thermometer.object_c
    assert_names_device(caught.value)
    assert thermometer.object_c == 36.61


@pytest.mark.parametrize(
    ("attribute", "value"), [("object_c", -70.01), ("ambient_c", 125.01), ("ambient_c", -40.01)]
)
def test_out_of_range(attribute: str, value: float) -> None:
    emu = Mlx90614Emulator()
    thermometer = make(emu)
    setattr(emu, attribute, value)
    with pytest.raises(OutOfRangeError) as caught:
        getattr(thermometer, attribute)
    assert_names_device(caught.value)


# emissivity


def test_emissivity_write_erases_then_writes_and_verifies() -> None:
    emu = Mlx90614Emulator()
    thermometer = Mlx90614(emu, **FAST)
    assert thermometer.emissivity == 1.0
    thermometer.emissivity = 0.95
    raw = round(0.95 * 65535)
    assert emu.eeprom[0x24] == raw
    assert emu.eeprom_writes == [(0x24, 0), (0x24, raw)]
    assert thermometer.emissivity == pytest.approx(0.95, abs=1 / 65535)
    thermometer.emissivity = 0.98
    assert emu.eeprom[0x24] == round(0.98 * 65535)


def test_eeprom_write_without_erase_corrupts_the_cell() -> None:
    emu = Mlx90614Emulator()
    raw_write(emu, 0x24, round(0.95 * 65535))
    assert emu.eeprom[0x24] == 0xFFFF
    raw_write(emu, 0x24, 0)
    raw_write(emu, 0x24, 0x1234)
    raw_write(emu, 0x24, 0x4321)
    assert emu.eeprom[0x24] == 0x1234 | 0x4321
    raw_write(emu, 0x24, 0, pec=0x00)  # a wrong PEC: the chip ignores the write
    assert emu.eeprom[0x24] == 0x1234 | 0x4321
    assert len(emu.eeprom_writes) == 4


def test_driver_skipping_the_erase_fails_verification(monkeypatch: pytest.MonkeyPatch) -> None:
    emu = Mlx90614Emulator()
    thermometer = Mlx90614(emu, **FAST)
    write = thermometer._write_word
    monkeypatch.setattr(thermometer, "_write_word", lambda cmd, value: value and write(cmd, value))
    with pytest.raises(ThermometerError, match="not verified") as caught:
        thermometer.emissivity = 0.95
    assert_names_device(caught.value)


@pytest.mark.parametrize("value", [0.05, 1.01, -1.0, math.nan])
def test_emissivity_out_of_range_is_rejected(value: float) -> None:
    emu = Mlx90614Emulator()
    with pytest.raises(ValueError):
        Mlx90614(emu, **FAST).emissivity = value
    assert emu.transactions == 0


def test_a_chip_still_programming_nacks_and_the_nack_is_retried() -> None:
    clock = FakeTime()
    slow = Mlx90614Emulator(eeprom_busy_s=0.006, clock=clock.monotonic)
    impatient = Mlx90614(slow, retries=0, eeprom_write_delay_s=0.005, sleep=clock.sleep)
    with pytest.raises(BusError) as caught:
        impatient.emissivity = 0.9
    assert caught.value.errno == errno.EREMOTEIO
    clock = FakeTime()
    slow = Mlx90614Emulator(eeprom_busy_s=0.006, clock=clock.monotonic)
    retrying = Mlx90614(slow, retries=1, retry_delay_s=0.005, eeprom_write_delay_s=0.005, sleep=clock.sleep)
    retrying.emissivity = 0.9
    assert slow.eeprom[0x24] == round(0.9 * 65535)
    assert retrying.transient_errors["EREMOTEIO"] == 2


@pytest.mark.parametrize("code", TRANSIENT, ids=errno.errorcode.get)
def test_transient_errno_during_eeprom_write_is_retried(code: int) -> None:
    emu = Mlx90614Emulator()
    thermometer = Mlx90614(emu, **FAST)
    emu.inject_errno(code, 2)
    thermometer.emissivity = 0.5
    assert emu.eeprom[0x24] == round(0.5 * 65535)
    assert thermometer.transient_errors[errno.errorcode[code]] == 2


# lifetime


def test_close_is_idempotent_and_leaves_a_passed_bus_open() -> None:
    emu = Mlx90614Emulator()
    thermometer = make(emu)
    thermometer.close()
    thermometer.close()
    assert thermometer.closed
    assert not emu.closed
    with pytest.raises(ThermometerError, match="closed") as caught:
        _ = thermometer.object_c
    assert_names_device(caught.value)


def test_context_manager_closes() -> None:
    emu = Mlx90614Emulator(object_c=36.61)
    with Mlx90614(emu, **FAST) as thermometer:
        assert thermometer.object_c == 36.61
        assert "0x5a" in repr(thermometer)
    assert thermometer.closed
    assert not emu.closed


def test_bus_number_opens_and_closes_its_own_bus(monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[int] = []
    emu = Mlx90614Emulator(object_c=36.61)

    def fake_smbus(bus: int) -> Mlx90614Emulator:
        opened.append(bus)
        return emu

    monkeypatch.setattr(mlx, "SMBus", fake_smbus)
    with Mlx90614(1, **FAST) as thermometer:
        assert thermometer.object_c == 36.61
    assert opened == [1]
    assert emu.closed


def test_missing_bus_is_bus_error() -> None:
    with pytest.raises(BusError) as caught:
        Mlx90614(250)
    assert caught.value.errno is not None
    assert_names_device(caught.value)


@pytest.mark.parametrize(
    "options",
    [
        {"address": 0x80},
        {"address": -1},
        {"retries": -1},
        {"settle_reads": -1},
        {"retry_delay_s": -1.0},
        {"eeprom_write_delay_s": 0.0},
        {"emissivity": 1.5},
    ],
)
def test_bad_options_are_rejected(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        Mlx90614(Mlx90614Emulator(), **options)


def test_concurrent_readers() -> None:
    emu = Mlx90614Emulator(object_c=36.61, ambient_c=21.01)
    thermometer = make(emu)
    results: list[Reading] = []

    def worker() -> None:
        for _ in range(50):
            results.append(thermometer.read())

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [Reading(21.01, 36.61)] * 200


# smbus2-shaped use of the emulator


def test_emulator_smbus_word_calls() -> None:
    emu = Mlx90614Emulator(ambient_c=25.01, settle_reads=0)
    assert emu.read_word_data(0x5A, 0x06) == round((25.01 + 273.15) / 0.02)
    assert emu.read_word_data(0x5A, 0x2E) == 0x5A
    emu.write_word_data(0x5A, 0x24, 0)  # no PEC byte: the chip ignores it
    assert emu.eeprom[0x24] == 0xFFFF
    emu.enable_pec()
    emu.write_word_data(0x5A, 0x24, 0)
    assert emu.eeprom[0x24] == 0
    emu.inject_bad_pec()
    with pytest.raises(OSError) as caught:
        emu.read_word_data(0x5A, 0x06)
    assert caught.value.errno == errno.EBADMSG
    with pytest.raises(OSError) as nack:
        emu.read_word_data(0x3C, 0x06)
    assert nack.value.errno == errno.EREMOTEIO


def test_closed_emulator_fails_transfers() -> None:
    with Mlx90614Emulator() as emu:
        pass
    with pytest.raises(BusError) as caught:
        _ = Mlx90614(emu, **FAST).object_c
    assert caught.value.errno == errno.EBADF
    emu.open(1)
    assert Mlx90614(emu, **FAST).object_c == 22.05
