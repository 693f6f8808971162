"""Seq bookkeeping of one kiosk (see office/store/base.py): how a batch of seqs changes its top and gaps."""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass, field


@dataclass
class SeqPlan:
    """How one kiosk's seq bookkeeping changes when a batch arrives."""

    top: int  # the new highest seq
    drop: list[int] = field(default_factory=list)  # first_seq of gaps to delete
    add: list[tuple[int, int]] = field(default_factory=list)  # gaps to insert (after the deletes)
    reseen: list[int] = field(default_factory=list)  # seqs at or below the old top that filled no gap


def plan_seqs(top: int, gaps: Iterable[tuple[int, int]], seqs: Iterable[int]) -> SeqPlan:
    """Apply `seqs` to a kiosk whose highest seq is `top`, given its open gaps that the seqs may fall in."""
    ordered = sorted(set(seqs))
    cut = bisect.bisect_right(ordered, top)
    below, above = ordered[:cut], ordered[cut:]
    plan = SeqPlan(top)
    filled: set[int] = set()
    for first, last in sorted(gaps):
        hits = below[bisect.bisect_left(below, first):bisect.bisect_right(below, last)]
        if not hits:
            continue
        plan.drop.append(first)
        filled.update(hits)
        start = first
        for seq in hits:
            if seq > start:
                plan.add.append((start, seq - 1))
            start = seq + 1
        if start <= last:
            plan.add.append((start, last))
    plan.reseen = [seq for seq in below if seq not in filled]
    for seq in above:
        if seq > plan.top + 1:
            plan.add.append((plan.top + 1, seq - 1))
        plan.top = seq
    return plan
