"""PRC resident ID numbers (GB 11643): check digit, birth date, keyed person ref and masked form."""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import date

_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK_CHARS = "10X98765432"  # ISO 7064 MOD 11-2: index is the weighted sum mod 11
_SHAPE = re.compile(r"[1-9]\d{16}[\dX]")
_EARLIEST_BIRTH = date(1900, 1, 1)
SHOWN = 4  # characters of an ID number that a display form may show


class IdNumberError(ValueError):
    """Not a valid 18-digit resident ID number; the message never contains the number."""

    def __init__(self, problem: str) -> None:
        self.problem = problem
        super().__init__(problem)


@dataclass(frozen=True)
class IdNumber:
    """A validated ID number; `repr` and `str` show only the masked form."""

    _value: str

    def __repr__(self) -> str:
        return f"IdNumber({self.masked})"

    __str__ = __repr__

    @property
    def masked(self) -> str:
        """The display form: the region code's first four digits, the rest hidden, `3701**************`."""
        return mask(self._value)

    def person_ref(self, site_key: bytes) -> str:
        """HMAC-SHA256 of the normalised number under the site key, hex."""
        return person_ref(self._value, site_key)

    @property
    def birth_date(self) -> date:
        return date(int(self._value[6:10]), int(self._value[10:12]), int(self._value[12:14]))


def normalise(text: str) -> str:
    """Strip spaces and hyphens, upper-case the final x, and turn full-width digits into ASCII."""
    text = text.translate(_FULLWIDTH).replace(" ", "").replace("-", "")
    return text.upper()


_FULLWIDTH = str.maketrans("０１２３４５６７８９ｘＸ", "0123456789xX")


def check_char(first17: str) -> str:
    """The GB 11643 check character for the first 17 digits."""
    total = sum(int(d) * w for d, w in zip(first17, _WEIGHTS, strict=True))
    return _CHECK_CHARS[total % 11]


def parse(text: str, *, today: date | None = None) -> IdNumber:
    """Validate shape, check digit and birth date; IdNumberError says which failed."""
    value = normalise(text)
    if not _SHAPE.fullmatch(value):
        raise IdNumberError("not 18 digits (the last may be X)")
    if check_char(value[:17]) != value[17]:
        raise IdNumberError("wrong check digit")
    try:
        born = date(int(value[6:10]), int(value[10:12]), int(value[12:14]))
    except ValueError:
        raise IdNumberError("birth date is not a real date") from None
    if not _EARLIEST_BIRTH <= born <= (today or date.today()):
        raise IdNumberError("birth date out of range")
    return IdNumber(value)


def looks_like_id_number(text: str) -> bool:
    """True when the text has the shape of an ID number (valid or not), so it is classified as one."""
    return bool(_SHAPE.fullmatch(normalise(text))) if len(text) <= 40 else False


def mask(value: str) -> str:
    """Keep the province and prefecture (the first four digits) and hide the rest, the same length.

    Birth date, sequence and check character stay hidden: about 4.6e9 valid numbers fit each form, each
    an HMAC to try for whoever holds the site key and a person ref (tests/test_privacy.py counts them).
    The region prefix is the part an attacker could best guess anyway (most people at a gate come from
    around it), and it is part of what the old `3701**********123X` showed, so stored old forms can be
    masked again without the number.
    """
    return value[:SHOWN] + "*" * (len(value) - SHOWN)


def person_ref(value: str, site_key: bytes) -> str:
    """HMAC-SHA256 of an already normalised number under the site key, hex."""
    if not site_key:
        raise ValueError("the site HMAC key is empty")
    return hmac.new(site_key, value.encode("ascii"), hashlib.sha256).hexdigest()
