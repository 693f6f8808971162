"""The attentions waiting for staff while the lane serves the next people: oldest first, bounded in number."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class OpenAttention:
    """An attention entry already recorded, waiting for its resolution until `deadline` (monotonic)."""

    entry_id: str
    deadline: float


class OpenAttentions:
    """At most `limit` open attentions; the staff button acts on the latest, a remote open names one."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._open: list[OpenAttention] = []

    def __len__(self) -> int:
        return len(self._open)

    def __bool__(self) -> bool:
        return bool(self._open)

    @property
    def full(self) -> bool:
        """No more attentions can wait: the lane asks the next person to wait instead of serving them."""
        return len(self._open) >= self.limit

    def ids(self) -> list[str]:
        """The open entries' ids, oldest first."""
        return [a.entry_id for a in self._open]

    def add(self, entry_id: str, deadline: float) -> None:
        self._open.append(OpenAttention(entry_id, deadline))

    def take(self, entry_id: str | None = None) -> OpenAttention | None:
        """Remove and return the attention for `entry_id` (None: the latest), or None if it is not open."""
        for i in range(len(self._open) - 1, -1, -1):
            if entry_id is None or self._open[i].entry_id == entry_id:
                return self._open.pop(i)
        return None

    def take_due(self, now: float) -> list[OpenAttention]:
        """Remove and return every attention whose deadline has come."""
        due = [a for a in self._open if a.deadline <= now]
        self._open = [a for a in self._open if a.deadline > now]
        return due

    def next_deadline(self) -> float | None:
        return min((a.deadline for a in self._open), default=None)
