"""Shared fixtures: gpiozero's own MockFactory, a real mosquitto, PostgreSQL and a headless Chromium."""

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from gpiozero import Device
from gpiozero.pins.mock import MockFactory
from pg import fresh_database
from playwright.sync_api import Browser, sync_playwright

from kiosk.mqtt.local_broker import LocalBroker
from office.store.base import Store
from office.store.opening import open_store


@pytest.fixture
def mock_factory() -> Iterator[MockFactory]:
    """Install a fresh MockFactory for one test and tear its pins down after."""
    previous = Device.pin_factory
    factory = MockFactory()
    Device.pin_factory = factory
    try:
        yield factory
    finally:
        factory.reset()
        factory.close()
        Device.pin_factory = previous


@pytest.fixture
def mqtt_broker() -> Iterator[LocalBroker]:
    """A real mosquitto on a free 127.0.0.1 port for one test."""
    with LocalBroker() as broker:
        yield broker


@pytest.fixture(scope="session")
def postgres_dsn() -> Iterator[str]:
    """A real PostgreSQL server on a free 127.0.0.1 port for the whole session: its superuser DSN.

    Each test should make its own database from it (`pg.fresh_database`). Without the server binaries
    (or psycopg) this skips, unless CHECKPOINT_REQUIRE_POSTGRES is set, as scripts/test does: then it fails.
    """
    import importlib.util

    from pg import REQUIRE_ENV, PostgresServer, PostgresUnavailable

    try:
        if importlib.util.find_spec("psycopg") is None:
            raise PostgresUnavailable("psycopg is not installed (pip install 'psycopg[binary]')")
        server = PostgresServer().start()
    except PostgresUnavailable as exc:
        if os.environ.get(REQUIRE_ENV):
            pytest.fail(f"{exc}; {REQUIRE_ENV} is set, so the PostgreSQL tests may not be skipped")
        pytest.skip(str(exc))
    try:
        yield server.dsn
    finally:
        server.stop()


CHROMIUM = Path("/usr/bin/chromium")  # Debian's; a browser is never downloaded
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """Debian's headless Chromium through Playwright; skips without it, unless CHECKPOINT_REQUIRE_BROWSER
    is set, as scripts/test does: then it fails."""
    if not CHROMIUM.exists():
        why = "no /usr/bin/chromium (Debian: apt-get install chromium; scripts/bootstrap dev)"
        if os.environ.get("CHECKPOINT_REQUIRE_BROWSER"):
            pytest.fail(why)
        pytest.skip(why)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS,
                                              headless=True)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture(params=["sqlite", "postgres"])
def each_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """An empty office store, once on SQLite and once on a fresh PostgreSQL database."""
    if request.param == "sqlite":
        with open_store("sqlite", path=tmp_path / "office.sqlite") as opened:
            yield opened
    else:
        with fresh_database(request.getfixturevalue("postgres_dsn")) as dsn, \
                open_store("postgres", dsn=dsn) as opened:
            yield opened
