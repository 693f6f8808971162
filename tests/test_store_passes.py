"""Passes issued in the web app and revocations, on SQLite and on the real PostgreSQL: a taken or repeated
pid refuses the whole issue (nothing written, nothing audited), the audit line is in the same transaction,
lists newest first, expiring soonest first, and each site's revocation serial going up by one."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from office.store.base import IssuedPass, Store

AT = datetime(2026, 3, 19, 7, 0, tzinfo=UTC)
T = int(AT.timestamp())
DAY = 86_400


def issued(pid: str, *, cat: str = "green", hh: str | None = "9-1-101", days: int = 30,
           nbf: int = T) -> tuple[IssuedPass, str]:
    row = IssuedPass(pid, cat, hh, "张*", "ab" * 32, nbf, nbf + days * DAY, "0123456789abcdef")
    return row, f"CKP1.{pid}"


def test_issued_passes_join_the_registry_with_who_and_when(each_store: Store) -> None:
    store = each_store
    assert store.issue_passes("s1", [issued("P-1"), issued("P-2", cat="pink", hh=None)], by="clerk",
                              at=AT) == []
    assert store.issue_passes("s1", [issued("P-3")], by="boss", at=AT + timedelta(minutes=5)) == []
    store.import_registry([IssuedPass("P-0", "blue", "9-1-102", "李*", "cd" * 32, T - DAY, T + DAY,
                                      "0123456789abcdef")])
    assert [p.pid for p in store.registry()] == ["P-0", "P-1", "P-2", "P-3"]
    records = store.pass_records()
    assert [r.issued.pid for r in records] == ["P-3", "P-2", "P-1", "P-0"]  # newest issued, imported last
    newest = records[0]
    assert (newest.site, newest.issued_by, newest.issued_at, newest.text) == ("s1", "boss",
                                                                              AT + timedelta(minutes=5),
                                                                              "CKP1.P-3")
    assert (records[-1].site, records[-1].text, records[-1].issued_at) == (None, None, None)
    assert [r.issued.pid for r in store.pass_records(cat="pink")] == ["P-2"]
    assert [r.issued.pid for r in store.pass_records(hh="9-1-101")] == ["P-3", "P-1"]
    assert [r.issued.pid for r in store.passes_of(["P-3", "P-9", "P-0"])] == ["P-3", "P-0"]
    audits = [a for a in store.audit_log() if a.action == "pass.issue"]
    assert [(a.who, a.detail) for a in audits] == [("boss", "site=s1 pids=P-3"),
                                                   ("clerk", "site=s1 pids=P-1,P-2")]


def test_a_taken_or_repeated_pid_refuses_the_whole_issue(each_store: Store) -> None:
    store = each_store
    store.import_registry([IssuedPass("P-0", "blue", None, "", "cd" * 32, T, T + DAY, "0123456789abcdef")])
    assert store.issue_passes("s1", [issued("P-1")], by="clerk", at=AT) == []
    assert store.issue_passes("s1", [issued("P-5"), issued("P-1"), issued("P-0")], by="clerk",
                              at=AT) == ["P-1", "P-0"]
    assert store.issue_passes("s1", [issued("P-6"), issued("P-6")], by="clerk", at=AT) == ["P-6"]
    assert [p.pid for p in store.registry()] == ["P-0", "P-1"]
    assert [r.issued.pid for r in store.pass_records()] == ["P-1", "P-0"]
    assert len([a for a in store.audit_log() if a.action == "pass.issue"]) == 1


def test_expiring_passes_soonest_first(each_store: Store) -> None:
    store = each_store
    store.issue_passes("s1", [issued("P-1", days=3), issued("P-2", days=10), issued("P-3", days=1),
                              issued("P-4", days=1, nbf=T - 5 * DAY)], by="clerk", at=AT)
    week = store.expiring_passes(AT, AT + timedelta(days=7))
    assert [r.issued.pid for r in week] == ["P-3", "P-1"]  # P-4 ended before AT


def unix(at: datetime) -> int:
    return int(at.timestamp())


def test_a_web_list_follows_one_numbered_by_kiosk_admin(each_store: Store) -> None:
    """The web's serials started at 1, and a kiosk holding a `kiosk-admin revoke` list (numbered by the Unix
    time) refused every list from the web."""
    cli_serial = unix(AT) - 3600  # `kiosk-admin revoke` an hour earlier
    _, state = each_store.revoke_passes("s1", ["P-9"], by="clerk", at=AT, note="x")
    assert state.serial > cli_serial


def test_revocations_number_each_list_and_are_kept_with_who_and_why(each_store: Store) -> None:
    store = each_store
    state = store.revocation_state("s1")
    assert (state.serial, state.revoked, state.published) == (0, (), True)
    store.issue_passes("s1", [issued("P-1")], by="clerk", at=AT)
    new, state = store.revoke_passes("s1", ["P-1", "P-7", "P-1"], by="clerk", at=AT, note="证件遗失")
    first = unix(AT)  # the first list is numbered by the time, as `kiosk-admin revoke` numbers its lists
    assert new == ["P-1", "P-7"] and (state.serial, state.revoked, state.published) == (first, ("P-1", "P-7"),
                                                                                          False)
    new, state = store.revoke_passes("s1", ["P-7"], by="boss", at=AT, note="again")
    assert new == [] and state.serial == first  # nothing new: no new list
    new, state = store.revoke_passes("s2", ["P-7"], by="boss", at=AT + timedelta(minutes=1), note="搬离")
    assert new == ["P-7"] and state.serial == first + 60 and state.revoked == ("P-7",)
    store.revocations_published("s1", first, at=AT)
    assert store.revocation_state("s1").published and store.revocation_state("s1").published_at == AT
    state = store.renumber_revocations("s1", by="boss", at=AT + timedelta(minutes=2))
    assert (state.serial, state.published, state.revoked) == (first + 120, False, ("P-1", "P-7"))
    store.revocations_published("s1", first, at=AT)  # an older list taken late changes nothing
    assert store.revocation_state("s1").published_serial == first
    revoked = store.revocations()
    assert [(r.site, r.pid, r.by, r.note) for r in revoked] == [
        ("s2", "P-7", "boss", "搬离"), ("s1", "P-1", "clerk", "证件遗失"), ("s1", "P-7", "clerk", "证件遗失")]
    assert [r.pid for r in store.revocations(site="s2")] == ["P-7"]
    [record] = store.pass_records()
    assert [(r.site, r.note) for r in record.revoked] == [("s1", "证件遗失")]
    actions = [(a.action, a.who) for a in store.audit_log()]
    assert actions == [("pass.revoke.publish", "boss"), ("pass.revoke", "boss"), ("pass.revoke", "clerk"),
                       ("pass.issue", "clerk")]


def test_concurrent_revocations_never_share_a_serial(each_store: Store) -> None:
    store = each_store
    serials: list[int] = []

    def revoke(n: int) -> None:
        for i in range(5):
            _, state = store.revoke_passes("s1", [f"P-{n}-{i}"], by="clerk", at=AT, note="x")
            serials.append(state.serial)
            assert f"P-{n}-{i}" in state.revoked

    threads = [threading.Thread(target=revoke, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(serials) == list(range(unix(AT), unix(AT) + 20))
    assert len(store.revocation_state("s1").revoked) == 20
