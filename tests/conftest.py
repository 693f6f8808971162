"""Shared fixtures: gpiozero's own MockFactory as the pin factory."""

from collections.abc import Iterator

import pytest
from gpiozero import Device
from gpiozero.pins.mock import MockFactory

from kiosk.mqtt.local_broker import LocalBroker


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
    import os

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
