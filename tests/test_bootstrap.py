"""scripts/bootstrap on a Pi: the checks and packages it needs there, run against stand-in commands."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

FAKE = """#!/usr/bin/env bash
echo "$(basename "$0") $*" >> "$LOG"
case "$(basename "$0") $1" in
  "python3 -m") [ "$2" = ensurepip ] && exit "${ENSUREPIP_RC:-0}"; exit 0 ;;
  "dpkg-query -W") exit 1 ;;
  "apt-cache show") [ "$2" = python3-picamera2 ] && exit "${PICAMERA2_RC:-0}"; exit 0 ;;
esac
exit 0
"""


def run_bootstrap(tmp_path: Path, *args: str, **env: str) -> list[str]:
    """Run bootstrap up to the venv, with apt, dpkg and python3 replaced by recording stand-ins."""
    tree = tmp_path / "tree"
    (tree / "scripts").mkdir(parents=True)
    shutil.copy(ROOT / "scripts" / "bootstrap", tree / "scripts" / "bootstrap")
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for name in ("python3", "apt-get", "apt-cache", "dpkg-query", "sudo", "sha256sum"):
        (bindir / name).write_text(FAKE)
        (bindir / name).chmod(0o755)
    log = tmp_path / "log"
    (tree / ".venv").mkdir()
    (tree / ".venv" / "pyvenv.cfg").write_text("include-system-site-packages = false\n")
    subprocess.run(["bash", str(tree / "scripts" / "bootstrap"), *args], cwd=tree, timeout=60, check=False,
                   env={**os.environ, "PATH": f"{bindir}:/usr/bin:/bin", "LOG": str(log), **env},
                   capture_output=True)
    return log.read_text().splitlines() if log.exists() else []


def installed(calls: list[str]) -> list[str]:
    return [word for call in calls if call.startswith("apt-get install") for word in call.split()[2:]
            if not word.startswith("-")]


def test_a_missing_ensurepip_brings_python3_venv(tmp_path: Path) -> None:
    """Issue 13, finding 7: `python3 -m venv --help` works without python3-venv; ensurepip does not."""
    assert "python3-venv" in installed(run_bootstrap(tmp_path, ENSUREPIP_RC="1"))
    assert "python3-venv" not in installed(run_bootstrap(tmp_path / "again", ENSUREPIP_RC="0"))


def test_the_pi_extras_bring_build_tools_picamera2_and_system_site_packages(tmp_path: Path) -> None:
    """Issue 13, finding 2: picamera2 needs apt's libcamera bindings and python-prctl a compiler."""
    calls = run_bootstrap(tmp_path, "pi")
    assert {"gcc", "python3-dev", "libcap-dev", "python3-picamera2"} <= set(installed(calls))
    assert "python3 -m venv --system-site-packages .venv" in calls
    plain = run_bootstrap(tmp_path / "plain")
    assert "gcc" not in installed(plain) and not any("--system-site-packages" in c for c in plain)


def test_without_raspberry_pi_os_packages_picamera2_is_not_asked_of_apt(tmp_path: Path) -> None:
    calls = run_bootstrap(tmp_path, "pi", PICAMERA2_RC="100")
    assert "python3-picamera2" not in installed(calls) and "gcc" in installed(calls)
