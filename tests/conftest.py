"""Shared fixtures: gpiozero's own MockFactory as the pin factory."""

from collections.abc import Iterator

import pytest
from gpiozero import Device
from gpiozero.pins.mock import MockFactory

from kiosk.broker import LocalBroker


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
