"""The entry fields a session or a manual opening records, checked against the published contract."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from checkpoint.entry import EntryDraft
from checkpoint.reasons import Reason
from kiosk.credentials.verdict import HealthFacts, PassFacts, PersonFacts, Verdict
from kiosk.policy import Outcome
from kiosk.session.entry_fields import Stamp, manual_entry, session_entry
from kiosk.session.temperature import Measurement

IDH = "ab" * 32
# 15:02:11.123987 at UTC+8 is 07:02:11.123 UTC: the zone is converted and the microseconds cut, not rounded.
STAMP = Stamp(datetime(2026, 3, 19, 15, 2, 11, 123987, tzinfo=timezone(timedelta(hours=8))), "in", False)
PASS = Verdict("pass", valid=True, status="valid", pass_=PassFacts(
    pid="P-00017", cat="pink", kid="k1", hh="9-23-301", name="张*", idh=IDH, nbf=0, exp=2**31))
HEALTH = Verdict("health_token", valid=True, status="yellow", reasons=(Reason.HEALTH_CODE_YELLOW,),
                 health=HealthFacts(scheme="token", status="yellow"))
ID_CARD = Verdict("id_number", valid=True, status="registered", person=PersonFacts(
    ref="cd" * 32, masked="1101**************", registered=True, household="9-23-301"))


def test_a_session_entry_is_a_valid_draft_with_every_fact() -> None:
    outcome = Outcome("deny", (Reason.HEALTH_CODE_YELLOW,), PASS, HEALTH, "pink", "9-23-301")
    fields = session_entry(outcome, Measurement(35.123, 36.649, 5.2, 5), decode_ms=6.127, decide_ms=0.31249,
                           session_ms=1840.06, stamp=STAMP)
    draft = EntryDraft.model_validate(fields)
    assert fields["ts"] == "2026-03-19T07:02:11.123Z"
    assert (draft.direction, draft.decision, draft.override) == ("in", "deny", None)
    assert draft.clock_unsynced is False
    assert draft.reasons == [Reason.HEALTH_CODE_YELLOW]
    assert fields["temperature"] == {"skin_c": 35.12, "body_c": 36.65, "ambient_c": 5.2, "samples": 5}
    assert fields["health"] == {"scheme": "token", "status": "yellow"}
    assert fields["pass"] == {"pid": "P-00017", "cat": "pink", "hh": "9-23-301"}
    assert fields["person"] == {"ref": IDH, "masked": "张*"}  # a pass carries its holder's keyed hash
    assert fields["timing_ms"] == {"decode": 6.13, "decide": 0.312, "session": 1840.1}


def test_a_pass_without_a_name_still_makes_a_valid_entry() -> None:
    """A pass signed with an empty name (the CLI's default) made an entry the recorder refused: the lane
    crashed at the gate."""
    unnamed = Verdict("pass", valid=True, status="valid", pass_=PassFacts(
        pid="P-00018", cat="green", kid="k1", hh="9-23-302", name="", idh=IDH, nbf=0, exp=2**31))
    outcome = Outcome("allow", (), unnamed, HEALTH, "green", "9-23-302")
    fields = session_entry(outcome, None, decode_ms=0, decide_ms=0, session_ms=0, stamp=STAMP)
    assert EntryDraft.model_validate(fields).person is not None
    assert fields["person"] == {"ref": IDH, "masked": "*"}


def test_an_id_card_entry_names_the_person_by_keyed_hash_and_masked_number() -> None:
    outcome = Outcome("allow", (), ID_CARD, None, None, "9-23-301")
    fields = session_entry(outcome, None, decode_ms=0, decide_ms=0, session_ms=0, stamp=STAMP)
    EntryDraft.model_validate(fields)
    assert fields["person"] == {"ref": "cd" * 32, "masked": "1101**************"}
    assert (fields["pass"], fields["temperature"], fields["health"]) == (None, None, None)


@pytest.mark.parametrize(("configured", "recorded"), [("in", "in"), ("out", "out"), ("both", "in")])
def test_direction(configured: str, recorded: str) -> None:
    stamp = Stamp(datetime.now(UTC), configured, True)  # type: ignore[arg-type]
    fields = manual_entry("staff", stamp)
    assert (fields["direction"], fields["clock_unsynced"]) == (recorded, True)


@pytest.mark.parametrize("override", ["staff", "remote"])
def test_a_manual_opening_is_an_allowed_entry_with_nobody_read(override: str) -> None:
    draft = EntryDraft.model_validate(manual_entry(override, STAMP))  # type: ignore[arg-type]
    assert (draft.decision, draft.override, draft.reasons, draft.passed) == ("allow", override, [], True)
    assert (draft.pass_, draft.person, draft.temperature, draft.health) == (None, None, None, None)
