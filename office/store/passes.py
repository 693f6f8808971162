"""Passes issued in the web app and revocations, in portable SQL: a mixin of `SqlStore`."""

from __future__ import annotations

from abc import ABC


class PassQueries(ABC):  # noqa: B024 (filled in by the passes page)
    """The pass registry written from the web app, and each site's revocations."""
