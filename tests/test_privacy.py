"""How much of an ID number its display form gives away, counted exactly rather than brute-forced.

With the site key (on every kiosk's SD card) and an entry's `person.ref`, whoever holds `person.masked`
needs one HMAC per ID number consistent with it. `candidates` counts those numbers: every number that
`idnumber.parse` accepts (any 6-digit region code not starting with 0, a real birth date from 1900-01-01
to `TODAY`, any 3-digit sequence, the GB 11643 check character) and that agrees with every shown character.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterable
from datetime import date, timedelta
from functools import cache

import pytest
from hypothesis import given
from hypothesis import strategies as st

from checkpoint import idnumber

TODAY = date(2026, 11, 23)
EARLIEST = date(1900, 1, 1)
# GB 11643 written out again, independent of the code under test.
WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
CHECK = "10X98765432"
FREE_DIGITS = (0, 1, 2, 3, 4, 5, 14, 15, 16)  # region code and sequence: any digit (the first not 0)
OLD_FORM = "1101**********002X"  # the old display form of the standard's example 11010519491231002X


def digits_at(position: int, shown: str) -> Iterable[int]:
    lowest = 1 if position == 0 else 0
    return range(lowest, 10) if shown == "*" else [int(shown)] if int(shown) >= lowest else []


def add(sums: Counter[int], more: Counter[int]) -> Counter[int]:
    """The weighted sums (mod 11) of every pair of a part from `sums` and a part from `more`."""
    out: Counter[int] = Counter()
    for (a, m), (b, n) in itertools.product(sums.items(), more.items()):
        out[(a + b) % 11] += m * n
    return out


@cache
def date_sums(shown: str, today: date) -> Counter[int]:
    """Weighted sums (mod 11) of the real birth dates that agree with the 8 shown date characters."""
    sums: Counter[int] = Counter()
    day = EARLIEST
    while day <= today:
        text = day.strftime("%Y%m%d")
        if all(s in ("*", c) for s, c in zip(shown, text, strict=True)):
            sums[sum(int(c) * w for c, w in zip(text, WEIGHTS[6:14], strict=True)) % 11] += 1
        day += timedelta(days=1)
    return sums


def candidates(masked: str, today: date = TODAY) -> int:
    """How many valid ID numbers agree with `masked` (18 characters, `*` where hidden)."""
    assert len(masked) == 18
    sums = date_sums(masked[6:14], today)
    for position in FREE_DIGITS:
        sums = add(sums, Counter(d * WEIGHTS[position] % 11 for d in digits_at(position, masked[position])))
    return sum(sums.values()) if masked[17] == "*" else sums[CHECK.index(masked[17])]


def brute_force(masked: str, today: date = TODAY) -> int:
    """The same count by trying every filling of the `*`s with `idnumber.parse`, for small cases."""
    choices = [c if c != "*" else "0123456789X" if i == 17 else "0123456789" for i, c in enumerate(masked)]
    found = 0
    for chars in itertools.product(*choices):
        try:
            idnumber.parse("".join(chars), today=today)
        except idnumber.IdNumberError:
            continue
        found += 1
    return found


@pytest.mark.parametrize("masked", [
    "*1010519491231002X",  # region's first digit: never 0
    "1101**19491231002X",  # region
    "11010519**1231002X",  # birth year: 1900-1999
    "1101052026****002X",  # month and day, up to TODAY
    "11010519491231****",  # sequence and check character
    "110105194912310**X",
])
def test_the_count_agrees_with_the_validator(masked: str) -> None:
    assert candidates(masked) == brute_force(masked) > 0


def test_the_old_display_form_left_few_candidates() -> None:
    # Region prefix, sequence and check character shown: 100 region codes × ~46,000 birth dates / 11.
    assert candidates(OLD_FORM) < 10**6


@pytest.mark.parametrize("number", [
    "11010519491231002X", "44052419800101001" + idnumber.check_char("44052419800101001"),
    "370102199003071238", "31010420260101000" + idnumber.check_char("31010420260101000"),
])
def test_the_display_form_leaves_over_a_billion_candidates(number: str) -> None:
    masked = idnumber.parse(number, today=TODAY).masked
    assert candidates(masked) > 10**9
    assert candidates(masked) > 10**4 * candidates(OLD_FORM)


valid_numbers = st.builds(
    lambda region, born, sequence: (first17 := f"{region}{born:%Y%m%d}{sequence:03d}") + idnumber.check_char(
        first17),
    st.integers(100_000, 999_999), st.dates(EARLIEST, TODAY), st.integers(0, 999))


@given(valid_numbers)
def test_the_display_form_shows_at_most_four_characters(number: str) -> None:
    masked = idnumber.parse(number, today=TODAY).masked
    shown = [(i, c) for i, c in enumerate(masked) if c != "*"]
    assert len(masked) == 18 and len(shown) <= 4
    assert all(number[i] == c for i, c in shown)
    assert masked == idnumber.mask(number)
