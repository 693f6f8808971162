"""The session's recorder: entries and alerts go to the outbox first, then the publisher is nudged."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from checkpoint.entry import EntryDraft, ResolvedBy
from kiosk.mqtt.publisher import Publisher
from kiosk.outbox import Outbox

log = logging.getLogger(__name__)


class OutboxRecorder:
    """The flow's recorder: entries and alerts go to the outbox first, then the publisher is nudged."""

    def __init__(self, outbox: Outbox, publisher: Publisher | None) -> None:
        self.outbox = outbox
        self.publisher = publisher
        self.last_seq: int | None = None

    def record(self, fields: dict[str, Any], *, attention: bool = False) -> str:
        entry = self.outbox.append(EntryDraft.model_validate(fields), attention=attention)
        self.last_seq = entry.seq
        self._wake()
        return str(entry.id)

    def resolve(self, entry_id: str, *, by: ResolvedBy, opened: bool, operator: str | None,
                ts: datetime) -> None:
        if self.outbox.resolve(entry_id, by=by, opened=opened, operator=operator, ts=ts) is None:
            log.warning("attention %s was not open: no resolution recorded", entry_id)
        self._wake()

    def open_attentions(self) -> list[str]:
        return self.outbox.open_attentions()

    def household_allowed_since(self, household: str, since: datetime) -> int:
        return self.outbox.count_allowed(household, since)

    def alert(self, kind: str, detail: str, entry_id: str | None = None) -> None:
        try:
            self.outbox.append_alert(kind, detail, entry_id)  # type: ignore[arg-type]
        except Exception:
            log.exception("cannot record the %s alert", kind)
            return
        self._wake()

    def _wake(self) -> None:
        if self.publisher is not None:
            self.publisher.wake()
