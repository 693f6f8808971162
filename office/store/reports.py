"""The daily and zero reports kept for the web app's history, in portable SQL: a mixin of `SqlStore`."""

from __future__ import annotations

from abc import ABC


class ReportQueries(ABC):  # noqa: B024 (filled in by the reports page)
    """Each report made, with its JSON and PNG."""
