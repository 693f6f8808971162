"""PRC resident ID numbers and the resident registry."""

from __future__ import annotations

import hashlib
import hmac
from datetime import date
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from checkpoint import idnumber
from checkpoint.residents import Registry, Resident

VALID = "11010519491231002X"  # the GB 11643 standard's own example
KEY = b"site key for tests"


def with_check(first17: str) -> str:
    return first17 + idnumber.check_char(first17)


def test_standard_example_is_valid_and_masked() -> None:
    number = idnumber.parse(VALID)
    assert number.masked == "1101**************"
    assert number.birth_date == date(1949, 12, 31)
    assert VALID not in repr(number) and VALID not in str(number)


def test_check_digit_vectors() -> None:
    assert idnumber.check_char("11010519491231002") == "X"
    assert idnumber.check_char("44052418800101001") == "4"
    assert idnumber.check_char("37010219900307123") == "8"  # weighted sum 246, 246 % 11 = 4 -> "8"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("110105194912310021", "wrong check digit"),
        ("11010519491231002", "not 18 digits"),
        ("01010519491231002X", "not 18 digits"),
        ("1101051949123100XX", "not 18 digits"),
        (with_check("11010519490231002"), "birth date is not a real date"),
        (with_check("11010518891231002"), "birth date out of range"),
        (with_check("11010530001231002"), "birth date out of range"),
    ],
)
def test_invalid_numbers_say_why_without_the_number(text: str, problem: str) -> None:
    with pytest.raises(idnumber.IdNumberError) as info:
        idnumber.parse(text, today=date(2026, 11, 23))
    assert info.value.problem.startswith(problem)
    assert text not in str(info.value)


def test_normalisation_accepts_lower_x_spaces_and_fullwidth() -> None:
    ref = idnumber.parse(VALID).person_ref(KEY)
    assert idnumber.parse("110105 19491231 002x").person_ref(KEY) == ref
    assert idnumber.parse("１１０１０５１９４９１２３１００２Ｘ").person_ref(KEY) == ref


def test_person_ref_is_hmac_sha256_under_the_site_key() -> None:
    expected = hmac.new(KEY, VALID.encode(), hashlib.sha256).hexdigest()
    assert idnumber.parse(VALID).person_ref(KEY) == expected
    assert idnumber.parse(VALID).person_ref(b"another site") != expected
    with pytest.raises(ValueError, match="empty"):
        idnumber.parse(VALID).person_ref(b"")


@given(st.from_regex(r"[1-9]\d{16}", fullmatch=True))
def test_exactly_one_check_char_is_accepted(first17: str) -> None:
    accepted = []
    for char in "0123456789X":
        try:
            idnumber.parse(first17 + char, today=date(9999, 1, 1))
            accepted.append(char)
        except idnumber.IdNumberError as exc:
            assert exc.problem != "not 18 digits (the last may be X)"
    assert accepted in ([], [idnumber.check_char(first17)])


@given(st.text(max_size=60))
def test_parse_raises_only_id_number_error(text: str) -> None:
    try:
        number = idnumber.parse(text)
    except idnumber.IdNumberError as exc:
        assert exc.problem
        assert len(text.strip()) < 8 or text.strip() not in exc.problem  # never echoes a number
    else:
        assert len(number.masked) == 18


def test_registry_round_trip_and_update(tmp_path: Path) -> None:
    ref = idnumber.parse(VALID).person_ref(KEY)
    path = tmp_path / "state" / "registry.sqlite"
    with Registry(path) as registry:
        assert registry.lookup(ref) is None
        assert registry.upsert([Resident(ref, "1101**************", "9-23-301")]) == 1
        registry.upsert([Resident(ref, "1101**************", "9-23-302")])
        assert registry.count() == 1
    with Registry(path) as registry:
        found = registry.lookup(ref)
        assert found == Resident(ref, "1101**************", "9-23-302")
        assert registry.remove(ref) and not registry.remove(ref)
    assert VALID.encode() not in path.read_bytes()


def test_registry_rejects_a_ref_that_is_not_a_hash(tmp_path: Path) -> None:
    with Registry(tmp_path / "r.sqlite") as registry, pytest.raises(Exception, match="CHECK"):
        registry.upsert([Resident(VALID, "x", None)])
