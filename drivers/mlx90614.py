"""MLX90614 infrared thermometer on SMBus: ambient and object temperature in °C, every word PEC-checked."""

from __future__ import annotations

import errno
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from smbus2 import SMBus, i2c_msg

from drivers.base import Device
from drivers.errors import DeviceError

_RAM_TA = 0x06
_RAM_TOBJ1 = 0x07
_EEPROM = 0x20
_EEPROM_EMISSIVITY = _EEPROM | 0x04
_ERROR_FLAG = 0x8000
_KELVIN_PER_LSB = 0.02
_ZERO_C_IN_K = 273.15
_EMISSIVITY_FULL_SCALE = 0xFFFF
_EEPROM_WRITE_MIN_S = 0.005  # datasheet: erasing or writing an EEPROM cell takes up to 5 ms
# EIO: the Pi 4's clock-stretching bug; EREMOTEIO: a NACK (how a Pi 5 mostly reports a glitch); ETIMEDOUT.
_TRANSIENT_ERRNOS = (errno.EIO, errno.EREMOTEIO, errno.ETIMEDOUT)

OBJECT_RANGE_C = (-70.0, 382.2)
AMBIENT_RANGE_C = (-40.0, 125.0)
EMISSIVITY_RANGE = (0.1, 1.0)

log = logging.getLogger(__name__)


class ThermometerError(DeviceError):
    """The thermometer failed or gave an unusable answer."""


class PecError(ThermometerError):
    """Every attempt returned a word whose PEC byte did not match."""


class SensorFlagError(ThermometerError):
    """The chip set its error flag (bit 15) in a temperature word."""


class OutOfRangeError(ThermometerError):
    """A converted temperature lies outside the sensor's measuring range."""


class EepromError(ThermometerError):
    """An EEPROM cell does not hold the value the driver wrote (or means) to be there."""


class BusError(ThermometerError):
    """The I2C transfer failed (non-retryable errno, or retries exhausted); `errno` keeps the cause."""

    def __init__(self, device: str, message: str, errno: int | None) -> None:
        super().__init__(device, message)
        self.errno = errno


class I2cBus(Protocol):
    """The part of `smbus2.SMBus` the driver uses: combined (repeated-start) transfers."""

    def i2c_rdwr(self, *i2c_msgs: i2c_msg) -> None: ...


@dataclass(frozen=True, slots=True)
class Reading:
    """One ambient and one object temperature, both in °C."""

    ambient_c: float
    object_c: float


def crc8_pec(data: bytes) -> int:
    """SMBus PEC of `data`: CRC-8, polynomial 0x07, initial value 0, no reflection."""
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = ((crc << 1) ^ 0x07) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


def raw_to_c(raw: int) -> float:
    """Convert a RAM temperature word (0.02 K per LSB) to °C, rounded to 0.01 °C."""
    return round(raw * _KELVIN_PER_LSB - _ZERO_C_IN_K, 2)


def emissivity_to_word(emissivity: float) -> int:
    """The EEPROM word for an emissivity of 0.1..1.0: round(65535 × ε), halves rounding up (datasheet)."""
    low, high = EMISSIVITY_RANGE
    if not low <= emissivity <= high:
        raise ValueError(f"emissivity {emissivity} outside {low}..{high}")
    return math.floor(emissivity * _EMISSIVITY_FULL_SCALE + 0.5)


def word_to_emissivity(word: int) -> float:
    """The emissivity (unitless) an EEPROM word stands for: word / 65535."""
    return word / _EMISSIVITY_FULL_SCALE


class Mlx90614(Device):
    """An MLX90614 on an I2C bus; `ambient_c`, `object_c` and `read()` give °C, `emissivity` is in EEPROM.

    Wiring (Pi, I2C-1): VIN to 3V3 (pin 1), GND to pin 9, SDA to GPIO2 (pin 3), SCL to GPIO3 (pin 5).
    Use a 3.3 V breakout and run the bus at 100 kHz, the chip's SMBus maximum
    (`dtparam=i2c_arm=on,i2c_arm_baudrate=100000`); its factory address is 0x5A.
    """

    error = ThermometerError

    def __init__(
        self,
        bus: I2cBus | int,
        *,
        address: int = 0x5A,
        retries: int = 3,
        retry_delay_s: float = 0.005,
        settle_reads: int = 3,
        eeprom_write_delay_s: float = 0.01,
        emissivity: float | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """Use `bus` (an SMBus-like object, left open on close) or open `/dev/i2c-<bus>` when it is an int.

        A transfer failing with EIO, EREMOTEIO or ETIMEDOUT (or a word with a bad PEC) is tried again up
        to `retries` times, `retry_delay_s` apart; `transient_errors` counts those errnos. Any other errno
        fails at once.

        With `emissivity` (0.1..1.0) the first reading after open first checks the chip's EEPROM and
        rewrites it only if it holds another value (see `emissivity`). Opening does no I2C transfer, so a
        chip that is missing at start fails its readings rather than the constructor.
        `eeprom_write_delay_s` (at least 5 ms) is the wait after each EEPROM write; `sleep` does every
        wait, so a test can pass its own.
        """
        if not 0 <= address <= 0x7F:
            raise ValueError(f"address 0x{address:x} is not a 7-bit I2C address")
        if retries < 0 or settle_reads < 0:
            raise ValueError("retries and settle_reads must be >= 0")
        if retry_delay_s < 0:
            raise ValueError("retry_delay_s must be >= 0 s")
        if not eeprom_write_delay_s >= _EEPROM_WRITE_MIN_S:
            raise ValueError(f"eeprom_write_delay_s must be >= {_EEPROM_WRITE_MIN_S} s (EEPROM write time)")
        if emissivity is not None:
            emissivity_to_word(emissivity)  # ValueError outside 0.1..1.0, before any transfer
        self.address = address
        self.device = f"thermometer mlx90614@0x{address:02x}"
        self._retries = retries
        self._retry_delay_s = retry_delay_s
        self._settle_reads = settle_reads
        self._eeprom_write_delay_s = eeprom_write_delay_s
        self._sleep = sleep
        self._transient_errors = dict.fromkeys((errno.errorcode[code] for code in _TRANSIENT_ERRNOS), 0)
        self._settled = False
        self._emissivity = emissivity
        self._emissivity_checked = emissivity is None
        self._emissivity_rewritten = False
        self._lock = threading.RLock()
        self._owned: SMBus | None = None
        if isinstance(bus, int):
            try:
                self._owned = SMBus(bus)
            except OSError as err:
                raise BusError(self.device, f"cannot open I2C bus {bus}: {err}", err.errno) from err
            self._bus: I2cBus | None = self._owned
        else:
            self._bus = bus

    def __repr__(self) -> str:
        return f"<Mlx90614 {self.device}{' closed' if self.closed else ''}>"

    @property
    def closed(self) -> bool:
        """True once `close()` has been called."""
        return self._bus is None

    def close(self) -> None:
        """Release the bus (closing it only if this driver opened it); safe to call again."""
        with self._lock:
            self._bus = None
            owned, self._owned = self._owned, None
            if owned is not None:
                owned.close()

    @property
    def transient_errors(self) -> dict[str, int]:
        """How many transfers failed with each retried errno ("EIO", "EREMOTEIO", "ETIMEDOUT") since open.

        Every such failure counts, including the last one when the retries run out; a copy, for metrics.
        """
        with self._lock:
            return dict(self._transient_errors)

    @property
    def ambient_c(self) -> float:
        """Die (ambient) temperature in °C, -40..125."""
        return self._temperature(_RAM_TA, AMBIENT_RANGE_C, "ambient")

    @property
    def object_c(self) -> float:
        """Object temperature (zone 1) in °C, -70..382.2."""
        return self._temperature(_RAM_TOBJ1, OBJECT_RANGE_C, "object")

    def read(self) -> Reading:
        """Read ambient then object temperature, both in °C."""
        with self._lock:
            return Reading(ambient_c=self.ambient_c, object_c=self.object_c)

    @property
    def emissivity(self) -> float:
        """Emissivity (unitless, 0.1..1.0) from EEPROM address 0x04, which holds round(65535 × ε)."""
        with self._lock:
            return word_to_emissivity(self._read_word(_EEPROM_EMISSIVITY))

    @emissivity.setter
    def emissivity(self, value: float) -> None:
        """Store a new emissivity in EEPROM if the chip holds another: erase, write, read back and verify.

        The cell is written only when its word differs, as EEPROM cells wear out. Some parts use a new
        emissivity only after a power cycle of the chip, which the driver cannot do: it logs a warning
        after each change, and readings until then may still use the old value. EepromError if the
        read-back differs.
        """
        word = emissivity_to_word(value)
        with self._lock:
            stored = self._read_word(_EEPROM_EMISSIVITY)
            if stored != word:
                self._program_emissivity(value, word, stored)
            self._emissivity = value
            self._emissivity_checked = True

    def _temperature(self, command: int, limits: tuple[float, float], what: str) -> float:
        with self._lock:
            self._prepare()
            raw = self._read_word(command)
        if raw & _ERROR_FLAG:
            raise SensorFlagError(self.device, f"error flag set in {what} reading (raw 0x{raw:04x})")
        value = raw_to_c(raw)
        low, high = limits
        if not low <= value <= high:
            raise OutOfRangeError(self.device, f"{what} temperature {value:.2f} °C outside {low}..{high} °C")
        return value

    def _prepare(self) -> None:
        """Before the first reading after open: set the EEPROM emissivity if needed, then settle the IIR."""
        if self._emissivity is not None and not self._emissivity_checked:
            self._check_emissivity(self._emissivity)
            self._emissivity_checked = True
        if not self._settled:
            # Readings straight after power-on/open come from an unsettled IIR filter: drop them.
            for _ in range(self._settle_reads):
                self._read_word(_RAM_TOBJ1)
            self._settled = True

    def _check_emissivity(self, value: float) -> None:
        """Rewrite the configured emissivity if the chip holds another, at most once per open."""
        word = emissivity_to_word(value)
        stored = self._read_word(_EEPROM_EMISSIVITY)
        if stored == word:
            return
        if self._emissivity_rewritten:
            raise EepromError(
                self.device,
                f"emissivity in EEPROM is 0x{stored:04x}, not the configured {value:g} (0x{word:04x}); "
                "not rewritten again before the next open, to spare the EEPROM",
            )
        self._emissivity_rewritten = True
        self._program_emissivity(value, word, stored)

    def _program_emissivity(self, value: float, word: int, old: int) -> None:
        """Erase the emissivity cell, write `word`, and read it back."""
        # An EEPROM cell must be erased (written 0) first, or the new bits mix with the old.
        self._write_word(_EEPROM_EMISSIVITY, 0)
        self._sleep(self._eeprom_write_delay_s)
        self._write_word(_EEPROM_EMISSIVITY, word)
        self._sleep(self._eeprom_write_delay_s)
        stored = self._read_word(_EEPROM_EMISSIVITY)
        if stored != word:
            raise EepromError(
                self.device,
                f"emissivity {value:g} not verified in EEPROM: wrote 0x{word:04x}, read back 0x{stored:04x}",
            )
        log.warning(
            "%s: emissivity in EEPROM changed from %.4f to %.4f; some parts use it only after a power cycle",
            self.device, word_to_emissivity(old), word_to_emissivity(word),
        )

    def _read_word(self, command: int) -> int:
        """SMBus read word with PEC: write the command, repeated start, read LSB, MSB, PEC."""
        attempts = self._retries + 1
        problem = ""
        for attempt in range(1, attempts + 1):
            write, read = i2c_msg.write(self.address, [command]), i2c_msg.read(self.address, 3)
            if not self._transfer(write, read, attempt=attempt, attempts=attempts):
                continue
            lsb, msb, pec = bytes(read)
            expected = crc8_pec(bytes([self.address << 1, command, self.address << 1 | 1, lsb, msb]))
            if pec == expected:
                return lsb | msb << 8
            # One bad PEC is usually a bus glitch, so it shares the retry budget of the transient errnos.
            problem = f"bad PEC reading 0x{command:02x}: got 0x{pec:02x}, expected 0x{expected:02x}"
            if attempt < attempts:
                self._sleep(self._retry_delay_s)
        raise PecError(self.device, f"{problem} (after {attempts} attempts)")

    def _write_word(self, command: int, value: int) -> None:
        """SMBus write word with PEC: command, LSB, MSB, PEC over the address byte and those three."""
        lsb, msb = value & 0xFF, value >> 8 & 0xFF
        pec = crc8_pec(bytes([self.address << 1, command, lsb, msb]))
        attempts = self._retries + 1
        for attempt in range(1, attempts + 1):
            if self._transfer(
                i2c_msg.write(self.address, [command, lsb, msb, pec]), attempt=attempt, attempts=attempts
            ):
                return

    def _transfer(self, *msgs: i2c_msg, attempt: int, attempts: int) -> bool:
        """Run one combined transfer; False after a transient errno (having waited), BusError otherwise."""
        bus = self._bus
        if bus is None:
            raise ThermometerError(self.device, "device is closed")
        try:
            bus.i2c_rdwr(*msgs)
        except OSError as err:
            if err.errno not in _TRANSIENT_ERRNOS:
                raise BusError(self.device, f"I2C transfer failed: {err}", err.errno) from err
            self._transient_errors[errno.errorcode[err.errno]] += 1
            if attempt == attempts:
                tries = f"{attempt} attempt{'' if attempt == 1 else 's'}"
                raise BusError(self.device, f"I2C transfer failed after {tries}: {err}", err.errno) from err
            self._sleep(self._retry_delay_s)
            return False
        return True
