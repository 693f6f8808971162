"""Chip-level MLX90614 emulator: plugs in where `smbus2.SMBus` would, so the real driver code runs."""

from __future__ import annotations

import ctypes
import errno
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Self

from smbus2 import i2c_msg
from smbus2.smbus2 import I2C_M_RD

RAM_TA = 0x06
RAM_TOBJ1 = 0x07
RAM_TOBJ2 = 0x08
EEPROM_EMISSIVITY = 0x24
EEPROM_SMBUS_ADDRESS = 0x2E
_ERROR_FLAG = 0x8000


def _crc_table() -> tuple[int, ...]:
    table = []
    for index in range(256):
        crc = index
        for _ in range(8):
            crc = ((crc << 1) ^ 0x07) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
        table.append(crc)
    return tuple(table)


_CRC_TABLE = _crc_table()


def _pec(data: Iterable[int]) -> int:
    """Table-driven CRC-8 (poly 0x07), kept separate from the driver's so each checks the other."""
    crc = 0
    for byte in data:
        crc = _CRC_TABLE[crc ^ byte]
    return crc


def _bus_error(code: int) -> OSError:
    """The OSError smbus2's ioctl raises for `code`."""
    return OSError(code, os.strerror(code))


def _raw_k(celsius: float) -> int:
    """°C to the chip's 15-bit word, 0.02 K per LSB, clamped like the chip's output."""
    return min(max(round((celsius + 273.15) / 0.02), 0), 0x7FFF)


class Mlx90614Emulator:
    """An MLX90614 answering at one SMBus address, with PEC, EEPROM erase rules and injectable faults."""

    def __init__(
        self,
        *,
        address: int = 0x5A,
        ambient_c: float = 22.05,
        object_c: float = 22.05,
        settle_reads: int = 3,
        eeprom_busy_s: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Power on: the first `settle_reads` temperature reads are unsettled; EEPROM writes busy the chip.

        For `eeprom_busy_s` after each EEPROM write the chip does not acknowledge its address; `clock`
        (seconds) measures that, so a test can pair it with the sleep it gives the driver.
        """
        self.address = address
        self.ambient_c = ambient_c
        self.object_c = object_c
        self.settle_reads = settle_reads
        self.eeprom_busy_s = eeprom_busy_s
        self.clock = clock
        self.pec = 0
        self.closed = False
        self.transactions = 0
        self.eeprom: dict[int, int] = {command: 0x0000 for command in range(0x20, 0x40)}
        self.eeprom[EEPROM_EMISSIVITY] = 0xFFFF
        self.eeprom[EEPROM_SMBUS_ADDRESS] = address
        self.eeprom_writes: list[tuple[int, int]] = []
        self.rejected_writes: list[tuple[int, int, int, int]] = []
        self._lock = threading.RLock()
        self._errnos: deque[int] = deque()
        self._faults = {"bad_pec": 0, "error_flag": 0, "lost_eeprom_write": 0}
        self._busy_until = 0.0
        self._unsettled = 0
        self.power_cycle()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def open(self, bus: int | str) -> None:
        """Reopen (the bus number is ignored)."""
        self.closed = False

    def close(self) -> None:
        """Close like SMBus.close(); transfers then fail with EBADF."""
        self.closed = True

    def enable_pec(self, enable: bool = True) -> None:
        """Let the 'kernel' append and check PEC on read_word_data/write_word_data, like SMBus.enable_pec."""
        self.pec = int(enable)

    def power_cycle(self) -> None:
        """Power-on reset: the IIR filter starts again and pending faults are cleared."""
        with self._lock:
            self._unsettled = self.settle_reads
            self._busy_until = 0.0
            self._errnos.clear()
            self._faults = dict.fromkeys(self._faults, 0)

    def inject_errno(self, code: int, n: int = 1) -> None:
        """The next `n` transfers to this chip, after those already failing, raise OSError(`code`)."""
        with self._lock:
            self._errnos.extend([code] * n)

    def inject_nack(self, n: int = 1) -> None:
        """The next `n` transfers fail with OSError(121, EREMOTEIO): how a Pi's controller reports a NACK."""
        self.inject_errno(errno.EREMOTEIO, n)

    def inject_eio(self, n: int = 1) -> None:
        """The next `n` transfers to this chip fail with OSError(5, EIO), the Pi's clock-stretching bug."""
        self.inject_errno(errno.EIO, n)

    def inject_timeout(self, n: int = 1) -> None:
        """The next `n` transfers fail with OSError(110, ETIMEDOUT): the controller gave up on the bus."""
        self.inject_errno(errno.ETIMEDOUT, n)

    def inject_lost_eeprom_write(self, n: int = 1) -> None:
        """The next `n` EEPROM writes are acknowledged but leave the cell as it was (a worn-out cell)."""
        self._inject("lost_eeprom_write", n)

    def inject_bad_pec(self, n: int = 1) -> None:
        """The next `n` read words carry a corrupted PEC byte."""
        self._inject("bad_pec", n)

    def inject_error_flag(self, n: int = 1) -> None:
        """The next `n` object temperature reads have the chip's error flag (bit 15) set."""
        self._inject("error_flag", n)

    def i2c_rdwr(self, *i2c_msgs: i2c_msg) -> None:
        """Combined transfer: [write cmd, read 3] is a read word, [write cmd LSB MSB PEC] a write word."""
        with self._lock:
            self._begin([msg.addr for msg in i2c_msgs])
            shape = [(bool(msg.flags & I2C_M_RD), len(msg)) for msg in i2c_msgs]
            if len(shape) == 2 and shape[0] == (False, 1) and shape[1][0]:
                reply = self._read_reply(bytes(i2c_msgs[0])[0])
                reply = (reply + b"\xff" * shape[1][1])[: shape[1][1]]
                ctypes.memmove(i2c_msgs[1].buf, reply, len(reply))
            elif len(shape) == 1 and shape[0] == (False, 4):
                command, lsb, msb, pec = bytes(i2c_msgs[0])
                self._write(command, lsb, msb, pec)
            else:
                # Anything else is not an SMBus word transfer the chip understands; it NACKs.
                raise _bus_error(errno.EREMOTEIO)

    def read_word_data(self, i2c_addr: int, register: int, force: bool | None = None) -> int:
        """SMBus read word; with `pec` enabled a bad PEC raises EBADMSG, as the kernel does."""
        with self._lock:
            self._begin([i2c_addr])
            lsb, msb, pec = self._read_reply(register)
            if self.pec and pec != _pec([i2c_addr << 1, register, i2c_addr << 1 | 1, lsb, msb]):
                raise _bus_error(errno.EBADMSG)
            return lsb | msb << 8

    def write_word_data(self, i2c_addr: int, register: int, value: int, force: bool | None = None) -> None:
        """SMBus write word; without `pec` enabled no PEC byte is sent and the chip ignores the write."""
        with self._lock:
            self._begin([i2c_addr])
            if self.pec:
                lsb, msb = value & 0xFF, value >> 8 & 0xFF
                self._write(register, lsb, msb, _pec([i2c_addr << 1, register, lsb, msb]))

    def _inject(self, fault: str, n: int) -> None:
        with self._lock:
            self._faults[fault] += n

    def _take(self, fault: str) -> bool:
        if self._faults[fault] > 0:
            self._faults[fault] -= 1
            return True
        return False

    def _begin(self, addresses: list[int]) -> None:
        """Count the transfer and fail it the way the bus would."""
        self.transactions += 1
        if self.closed:
            raise _bus_error(errno.EBADF)
        if any(address != self.address for address in addresses):
            raise _bus_error(errno.EREMOTEIO)
        if self._errnos:
            raise _bus_error(self._errnos.popleft())
        if self.clock() < self._busy_until:
            # While programming EEPROM the chip does not acknowledge its address.
            raise _bus_error(errno.EREMOTEIO)

    def _word(self, command: int) -> int:
        if command in (RAM_TA, RAM_TOBJ1, RAM_TOBJ2):
            raw = _raw_k(self.ambient_c if command == RAM_TA else self.object_c)
            if self._unsettled > 0:
                # The IIR filter ramps up from zero after power-on.
                done = self.settle_reads - self._unsettled + 1
                raw = raw * done // (self.settle_reads + 1)
                self._unsettled -= 1
            if command != RAM_TA and self._take("error_flag"):
                raw |= _ERROR_FLAG
            return raw
        if command < 0x20:
            return 0x0000
        if command < 0x40:
            return self.eeprom[command]
        raise _bus_error(errno.EREMOTEIO)

    def _read_reply(self, command: int) -> bytes:
        """LSB, MSB, PEC for a read word of `command`."""
        word = self._word(command)
        lsb, msb = word & 0xFF, word >> 8
        pec = _pec([self.address << 1, command, self.address << 1 | 1, lsb, msb])
        if self._take("bad_pec"):
            pec ^= 0xA5
        return bytes([lsb, msb, pec])

    def _write(self, command: int, lsb: int, msb: int, pec: int) -> None:
        if pec != _pec([self.address << 1, command, lsb, msb]):
            self.rejected_writes.append((command, lsb, msb, pec))
            return  # the chip discards a write whose PEC does not match
        if not 0x20 <= command < 0x40:
            if command < 0x20:
                return  # RAM is read-only
            raise _bus_error(errno.EREMOTEIO)
        value = lsb | msb << 8
        self.eeprom_writes.append((command, value))
        self._busy_until = self.clock() + self.eeprom_busy_s
        if self._take("lost_eeprom_write"):
            return
        # Writing 0 erases the cell; programming can only add 1 bits, so an unerased cell keeps old bits.
        self.eeprom[command] = 0 if value == 0 else self.eeprom[command] | value
