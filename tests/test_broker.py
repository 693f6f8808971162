"""The private loopback mosquitto and the reachability probe, against a real broker."""

import subprocess
import sys
from pathlib import Path

import pytest
from mqtt_helpers import wait_for
from proc_helpers import running

from kiosk.mqtt.local_broker import BrokerError, LocalBroker, free_port, probe_broker

ROOT = Path(__file__).resolve().parents[1]


def test_probe_connects_to_real_broker(mqtt_broker: LocalBroker) -> None:
    probe_broker(mqtt_broker.host, mqtt_broker.port, timeout_s=3)


def test_probe_reports_refused_port() -> None:
    port = free_port()
    with pytest.raises(BrokerError, match=f"127.0.0.1:{port}"):
        probe_broker("127.0.0.1", port, timeout_s=1)


def test_stop_is_idempotent_and_frees_port() -> None:
    broker = LocalBroker().start()
    port = broker.port
    broker.stop()
    broker.stop()
    with pytest.raises(BrokerError):
        probe_broker("127.0.0.1", port, timeout_s=1)


def test_loopback_only() -> None:
    with pytest.raises(ValueError, match="loopback"):
        LocalBroker(host="0.0.0.0")


def test_missing_mosquitto_is_a_clear_error() -> None:
    with pytest.raises(BrokerError, match="not found"):
        LocalBroker(mosquitto="no-such-mosquitto").start()


def test_mosquitto_goes_when_its_parent_is_killed() -> None:
    script = ("import time\nfrom kiosk.mqtt.local_broker import LocalBroker\n"
              "broker = LocalBroker().start()\nprint(broker.pid, broker.port, flush=True)\ntime.sleep(60)\n")
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, cwd=ROOT, text=True)
    try:
        assert parent.stdout is not None
        pid, port = (int(word) for word in parent.stdout.readline().split())
        assert running(pid)
        probe_broker("127.0.0.1", port, timeout_s=2)
    finally:
        parent.kill()
        parent.wait(10)
    wait_for(lambda: not running(pid), 10, "mosquitto to exit with its parent")


def test_mosquitto_is_found_outside_an_ordinary_users_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """Seen on a fresh arm64 Debian: as a user without /usr/sbin on PATH, `kiosk simulate` found no
    mosquitto."""
    monkeypatch.setenv("PATH", "/usr/local/bin:/usr/bin:/bin")
    with LocalBroker() as broker:
        probe_broker(broker.host, broker.port, timeout_s=5)  # raises BrokerError if it cannot connect
