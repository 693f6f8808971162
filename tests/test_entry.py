"""The MQTT payload models and topics of DESIGN §5: what validates and what does not."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import ValidationError

from checkpoint import idnumber
from checkpoint.entry import OFFLINE, Alert, Command, Entry, EntryDraft, PassInfo, Person, Status, Timing
from checkpoint.reasons import Reason
from checkpoint.topics import parse_topic, revocations_topic, shared_subscription, topics

REF = "0f" * 32
DESIGN_EXAMPLE = (
    '{"schema":"checkpoint.entry/1","id":"0195b0c4-6a2b-7c3d-8e4f-0123456789ab","site":"s1",'
    '"kiosk":"gate-north","seq":1042,'
    '"ts":"2026-03-19T07:02:11.123Z","direction":"in","decision":"allow","reasons":[],"override":null,'
    '"temperature":{"skin_c":35.1,"body_c":36.6,"ambient_c":5.2,"samples":5},'
    '"health":{"scheme":"token","status":"green"},'
    '"pass":{"pid":"P-00017","cat":"green","hh":"9-23-301"},'
    f'"person":{{"ref":"{REF}","masked":"3701**************"}},'
    '"timing_ms":{"decode":6.1,"decide":0.3,"session":1840}}'
)


def example(**changes: Any) -> str:
    data = json.loads(DESIGN_EXAMPLE)
    for key, value in changes.items():
        if value is ...:
            del data[key]
        else:
            data[key] = value
    return json.dumps(data)


def test_design_example_validates_and_round_trips() -> None:
    entry = Entry.model_validate_json(DESIGN_EXAMPLE)
    assert entry.seq == 1042 and entry.pass_ is not None and entry.pass_.hh == "9-23-301"
    assert entry.ts == datetime(2026, 3, 19, 7, 2, 11, 123000, tzinfo=UTC)
    assert entry.clock_unsynced is False and entry.passed
    out = json.loads(entry.to_json())
    assert list(out)[:6] == ["schema", "id", "site", "kiosk", "seq", "ts"]
    assert out["ts"] == "2026-03-19T07:02:11.123Z" and "pass" in out and "pass_" not in out
    assert Entry.model_validate_json(entry.to_json()) == entry


def test_clock_unsynced_is_optional_and_kept() -> None:
    entry = Entry.model_validate_json(example(clock_unsynced=True))
    assert entry.clock_unsynced and json.loads(entry.to_json())["clock_unsynced"] is True


@pytest.mark.parametrize("changes", [
    {"schema": "checkpoint.entry/2"},
    {"schema": ...},
    {"extra": 1},
    {"id": "not-a-uuid"},
    {"id": "0195b0c4-6a2b-4c3d-8e4f-0123456789ab"},  # a UUIDv4
    {"seq": 0},
    {"seq": "1042"},
    {"seq": 1.5},
    {"ts": "2026-03-19T07:02:11Z"},  # no milliseconds
    {"ts": "2026-03-19T07:02:11.123+08:00"},
    {"ts": 1774000000},
    {"direction": "sideways"},
    {"decision": "maybe"},
    {"reasons": ["fever", "fever"]},
    {"reasons": ["not_a_reason"]},
    {"override": "office"},
    {"temperature": {"skin_c": 35.1, "body_c": 99.0, "ambient_c": 5.2, "samples": 5}},
    {"temperature": {"skin_c": "35.1", "body_c": 36.6, "ambient_c": 5.2, "samples": 5}},
    {"temperature": {"skin_c": 35.1, "body_c": 36.6, "ambient_c": 5.2, "samples": True}},
    {"health": {"scheme": "fax", "status": "green"}},
    {"health": {"scheme": "token", "status": "green", "travel": "green"}},  # travel and star come together
    {"health": {"scheme": "token", "status": "green", "star": False}},
    {"health": {"scheme": "token", "status": "green", "travel": "blue", "star": False}},
    {"health": {"scheme": "token", "status": "green", "travel": "green", "star": "no"}},
    {"health": {"scheme": "token", "status": "green", "travel": "green", "star": False, "trip": ["x"]}},
    {"pass": {"pid": "P 17", "cat": "green", "hh": None}},
    {"pass": {"pid": "P-1", "cat": "purple", "hh": None}},
    {"pass_": {"pid": "P-1", "cat": "green", "hh": None}},
    {"person": {"ref": "XYZ", "masked": "3701**"}},
    {"person": {"ref": REF, "masked": "x" * 33}},
    {"person": {"ref": REF, "masked": "3701**********123X"}},  # the old display form: 8 characters shown
    {"person": {"ref": REF, "masked": "37010*************"}},
    {"person": {"ref": REF, "masked": "3701*************X"}},
    {"person": {"ref": REF, "masked": "11010519491231002X"}},
    {"person": {"ref": REF, "masked": "110105 19491231 002X"}},
    {"person": {"ref": REF, "masked": "１１０１０５１９４９１２３１００２Ｘ"}},
    {"site": "s1/other"},
    {"kiosk": "#"},
    {"timing_ms": {"decode": -1, "decide": 0.3, "session": 1840}},
    {"timing_ms": ...},
    {"clock_unsynced": "yes"},
])
def test_invalid_entries_are_refused(changes: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        Entry.model_validate_json(example(**changes))


@pytest.mark.parametrize("masked", [
    idnumber.mask("11010519491231002X"), "**************002X", "1101", "张*", "A******", "X*", "9号楼张*",
])
def test_person_masked_may_show_four_characters_of_an_id_number(masked: str) -> None:
    person = {"ref": REF, "masked": masked}
    assert Entry.model_validate_json(example(person=person)).person == Person(ref=REF, masked=masked)


@pytest.mark.parametrize("raw", ["", "[]", "null", "{", '{"schema":"checkpoint.entry/1"}', "\xff"])
def test_garbage_is_a_validation_error(raw: str) -> None:
    with pytest.raises(ValidationError):
        Entry.model_validate_json(raw)


def test_draft_takes_python_names_and_normalises_time() -> None:
    local = datetime(2026, 3, 19, 15, 2, 11, 123456, tzinfo=timezone(timedelta(hours=8)))
    draft = EntryDraft(ts=local, direction="out", decision="attention", override="staff",
                       reasons=[Reason.FEVER], pass_=PassInfo(pid="P-1", cat="blue", hh="9-1"),
                       timing_ms=Timing(decode=1, decide=2, session=3))
    assert draft.ts == datetime(2026, 3, 19, 7, 2, 11, 123000, tzinfo=UTC)
    assert draft.passed  # attention, but staff let the person through
    assert json.loads(draft.model_dump_json())["pass"]["hh"] == "9-1"
    with pytest.raises(ValidationError):
        EntryDraft(ts=datetime(2026, 3, 19), direction="in", decision="deny",
                   timing_ms=Timing(decode=1, decide=2, session=3))  # naive time


def test_status_alert_and_command() -> None:
    assert json.loads(OFFLINE.to_json()) == {"state": "offline"}
    status = Status.model_validate_json(
        '{"state":"online","ts":"2026-03-19T07:02:11.123Z","camera":"ok","thermometer":"fault",'
        '"outbox":{"backlog":3,"oldest_s":12.5},"version":"0.1.0"}')
    assert status.outbox is not None and status.outbox.backlog == 3 and status.outbox.refused == 0
    with pytest.raises(ValidationError):
        Status.model_validate_json('{"state":"online","camera":"melted"}')
    alert = Alert.model_validate_json('{"kind":"fever","ts":"2026-03-19T07:02:11.123Z","detail":"38.1"}')
    assert "entry_id" not in json.loads(alert.to_json())
    with pytest.raises(ValidationError):
        Alert.model_validate_json('{"kind":"fire","ts":"2026-03-19T07:02:11.123Z","detail":""}')
    assert Command.model_validate_json('{"by":"office","ts":"2026-03-19T07:02:11.123Z"}').by == "office"
    with pytest.raises(ValidationError):
        Command.model_validate_json('{"by":"office","ts":"2026-03-19T07:02:11.123Z","pulse_s":60}')


def test_topics() -> None:
    t = topics("s1", "gate-north")
    assert t.entry == "checkpoint/v1/s1/gate-north/entry"
    assert t.status == "checkpoint/v1/s1/gate-north/status"
    assert t.alert == "checkpoint/v1/s1/gate-north/alert"
    assert t.cmd_filter == "checkpoint/v1/s1/gate-north/cmd/#"
    assert revocations_topic("s1") == "checkpoint/v1/s1/revocations"
    assert shared_subscription("entry") == "$share/collectors/checkpoint/v1/+/+/entry"
    assert parse_topic(t.entry) == ("s1", "gate-north", "entry")
    assert parse_topic("checkpoint/v1/s1/revocations") is None
    for bad in ("s/1", "+", "#", ""):
        with pytest.raises(ValueError):
            topics(bad, "k")


def test_the_travel_status_is_optional_and_kept() -> None:
    """Issue 15: the entry carries the travel card's colour and star, not the itinerary; old ones validate."""
    old = Entry.model_validate_json(DESIGN_EXAMPLE)
    assert old.health is not None and (old.health.travel, old.health.star) == (None, None)
    assert json.loads(old.to_json())["health"] == {"scheme": "token", "status": "green"}  # no nulls added
    health = {"scheme": "token", "status": "green", "travel": "yellow", "star": True}
    entry = Entry.model_validate_json(example(health=health, reasons=["travel_risk"], decision="deny"))
    assert entry.health is not None and (entry.health.travel, entry.health.star) == ("yellow", True)
    assert json.loads(entry.to_json())["health"] == health
    assert Entry.model_validate_json(entry.to_json()) == entry
