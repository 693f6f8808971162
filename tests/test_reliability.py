"""Reliability on a real mosquitto: a crowd through a broker outage, and a kiosk killed mid-run."""

from __future__ import annotations

import json
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mqtt_helpers import Observer, assert_complete, wait_for

from checkpoint.topics import topics
from kiosk.config import KioskConfig, embedded_config_text, load_config
from kiosk.mqtt.local_broker import LocalBroker
from kiosk.sim.scenario import parse_scenario
from kiosk.sim.simulate import run_simulation

BIN = Path(sys.executable).parent
SIM = topics("sim", "gate-sim")


def crowd(count: int, spacing_s: float = 30.0) -> str:
    """A scenario of `count` residents, each from their own household, all expected through."""
    people = [
        f'[[person]]\nat_s = {i * spacing_s}\npass = {{ cat = "green", hh = "h-{i}" }}\n'
        f'health = {{ status = "green" }}\nexpect = "allow"\n'
        for i in range(count)
    ]
    return "start = 2026-11-23T07:00:00+08:00\n\n" + "\n".join(people)


def sim_config(tmp_path: Path, broker: LocalBroker) -> Path:
    frames = Path(__file__).resolve().parents[1] / "kiosk" / "sim" / "data" / "frames"
    text = embedded_config_text().replace('path = "frames"', f'path = "{frames}"')
    text = text.replace("port = 0            # 0 with local_broker: pick a free loopback port",
                        f"port = {broker.port}\nreconnect_min_s = 0.2\nreconnect_max_s = 1.0")
    text = text.replace("local_broker = true", "local_broker = false")
    text = text.replace("~/.local/state/checkpoint-kiosk/simulate", str(tmp_path / "state"))
    path = tmp_path / "kiosk.toml"
    path.write_text(text)
    return path


def distinct(observer: Observer) -> int:
    return len({e.id for e in observer.entries(SIM.entry)})


def outbox_seqs(state: Path) -> list[tuple[int, str]]:
    db = sqlite3.connect(state / "outbox.sqlite")
    try:
        return db.execute("SELECT seq, id FROM outbox WHERE kind = 'entry' ORDER BY seq").fetchall()
    finally:
        db.close()


def test_crowd_of_200_through_a_10_s_broker_outage(tmp_path: Path) -> None:
    broker = LocalBroker(persistence_dir=tmp_path).start()
    observer = Observer(broker, SIM.entry, client_id="collector-stand-in", persistent=True)
    config: KioskConfig = load_config(sim_config(tmp_path, broker))
    stopped_at: list[float] = []

    def outage(person: int) -> None:
        if person == 60:
            broker.stop()
            stopped_at.append(time.monotonic())
        elif person == 140:
            time.sleep(max(0.0, stopped_at[0] + 10.0 - time.monotonic()))  # a 10 s outage
            broker.start()

    try:
        result = run_simulation(config, parse_scenario(crowd(200)), out=lambda _: None,
                                state_dir=tmp_path / "state", on_arrival=outage)
        assert result == 0, "every person through and every entry acknowledged"
        wait_for(lambda: distinct(observer) >= 200, 20, "every entry at the subscriber")
    finally:
        observer.close()
        broker.stop()
    assert stopped_at, "the outage never happened"
    assert_complete(observer, 200, SIM.entry)
    assert [seq for seq, _ in outbox_seqs(tmp_path / "state")] == list(range(1, 201))


@pytest.mark.parametrize("kills", [3])
def test_kiosk_killed_three_times_loses_nothing(tmp_path: Path, kills: int) -> None:
    broker = LocalBroker(persistence_dir=tmp_path).start()
    observer = Observer(broker, SIM.entry, client_id="collector-stand-in", persistent=True)
    scenario = tmp_path / "crowd.toml"
    scenario.write_text(crowd(40))
    command = [str(BIN / "kiosk"), "simulate", "--config", str(sim_config(tmp_path, broker)),
               "--scenario", str(scenario), "--state-dir", str(tmp_path / "state"), "--json"]
    rng = random.Random(4)
    progress: list[int] = []
    try:
        for _ in range(kills):
            before = len(outbox_seqs(tmp_path / "state")) if (tmp_path / "state").exists() else 0
            proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            deadline = time.monotonic() + 30
            # Kill it at a random moment once it has committed something new.
            while time.monotonic() < deadline:
                time.sleep(0.1)
                outbox = tmp_path / "state" / "outbox.sqlite"
                if outbox.exists() and len(outbox_seqs(tmp_path / "state")) > before:
                    break
            time.sleep(rng.uniform(0.0, 0.8))
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            progress.append(len(outbox_seqs(tmp_path / "state")))
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 0, done.stderr
        assert len([json.loads(line) for line in done.stdout.splitlines()]) == 40
        rows = outbox_seqs(tmp_path / "state")
        wait_for(lambda: distinct(observer) >= len(rows), 20, "every committed entry")
    finally:
        observer.close()
        broker.stop()
    assert progress == sorted(progress) and progress[0] > 0, progress
    seqs = [seq for seq, _ in rows]
    assert seqs == list(range(1, len(rows) + 1)), "seq continues across kills without reuse or gaps"
    assert len({entry_id for _, entry_id in rows}) == len(rows)
    assert len(rows) >= 40 + progress[0]
    assert_complete(observer, len(rows), SIM.entry)


FEVER = """start = 2026-11-23T07:00:00+08:00
[[person]]
at_s = 0
pass = { cat = "green", hh = "7-1-101" }
health = { status = "green" }
together = true
skin_c = 37.2
ambient_c = 22.0
expect = "attention"
"""


def open_attentions(state: Path) -> list[str]:
    db = sqlite3.connect(state / "outbox.sqlite")
    try:
        return [row[0] for row in db.execute("SELECT entry_id FROM attention").fetchall()]
    except sqlite3.OperationalError:  # the kiosk has made the file but not yet its tables
        return []
    finally:
        db.close()


def test_a_fever_waiting_for_staff_survives_a_kill_9(tmp_path: Path) -> None:
    """Issue 12, finding 2: the attention entry was held in memory until staff came; a kill lost it."""
    broker = LocalBroker(persistence_dir=tmp_path).start()
    observer = Observer(broker, f"{SIM.prefix}/#", client_id="collector-stand-in", persistent=True)
    config = sim_config(tmp_path, broker)
    text = config.read_text().replace("relay_pulse_s = 1.5", "relay_pulse_s = 1.5\nattention_timeout_s = 5")
    config.write_text(text)
    scenario = tmp_path / "fever.toml"
    scenario.write_text(FEVER)
    state = tmp_path / "state"
    simulate = [str(BIN / "kiosk"), "simulate", "--realtime", "--config", str(config), "--scenario",
                str(scenario), "--state-dir", str(state)]
    try:
        proc = subprocess.Popen(simulate, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_for(lambda: (state / "outbox.sqlite").exists() and open_attentions(state), 30,
                     "the attention recorded")
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
        [(seq, entry_id)] = outbox_seqs(state)
        assert open_attentions(state) == [entry_id], "the open attention is on disk, not only in memory"
        daemon = subprocess.Popen([str(BIN / "kiosk"), "run", "--config", str(config)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            wait_for(lambda: observer.json(SIM.resolution), 30, "the restarted kiosk's resolution")
        finally:
            daemon.send_signal(signal.SIGTERM)
            _, stderr = daemon.communicate(timeout=20)
        entries = observer.entries(SIM.entry)
        assert {e.id for e in entries} == {entry_id} and entries[0].decision == "attention"
        assert entries[0].reasons == ["fever"]
        assert [(r["entry_id"], r["by"]) for r in observer.json(SIM.resolution)] == [(entry_id, "timeout")]
        assert outbox_seqs(state) == [(seq, entry_id)], "stored once: no second entry for the same person"
        assert open_attentions(state) == []
        assert b"Traceback" not in stderr
    finally:
        observer.close()
        broker.stop()
