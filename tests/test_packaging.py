"""The office installs alone: requirements/office.txt covers what office/ and checkpoint/ import, without the
kiosk's camera, QR and GPIO stack, and agrees with pyproject.toml."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KIOSK_ONLY = {"opencv-python-headless", "pyzbar", "zxing-cpp", "numpy", "gpiozero", "smbus2"}
FIRST_PARTY = {"checkpoint", "kiosk", "office", "drivers"}


def _name(spec: str) -> str:
    match = re.match(r"[A-Za-z0-9_.-]+", spec)
    assert match, spec
    return _normal(match[0])


def _normal(distribution: str) -> str:
    """A distribution name as PEP 503 compares them: 'prometheus_client' is 'prometheus-client'."""
    return re.sub(r"[-_.]+", "-", distribution).lower()


def _requirements(path: Path) -> list[str]:
    lines = (line.split("#")[0].strip() for line in path.read_text(encoding="utf-8").splitlines())
    return [line for line in lines if line]


def _third_party_imports(*packages: str) -> set[str]:
    found: set[str] = set()
    for package in packages:
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                names: list[str] = []
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    names = [node.module]
                found.update(name.split(".")[0] for name in names)
    return {name for name in found
            if name not in FIRST_PARTY and name not in sys.stdlib_module_names and name != "_typeshed"}


def test_office_requirements_are_the_projects_own_specs() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    office = _requirements(ROOT / "requirements" / "office.txt")
    assert office and set(office) <= set(project["dependencies"])


def test_office_requirements_leave_out_the_camera_and_gpio_stack() -> None:
    office = {_name(spec) for spec in _requirements(ROOT / "requirements" / "office.txt")}
    assert office.isdisjoint(KIOSK_ONLY)


def test_office_requirements_cover_what_the_office_imports() -> None:
    office = {_name(spec) for spec in _requirements(ROOT / "requirements" / "office.txt")}
    distributions = packages_distributions()
    imported = _third_party_imports("office", "checkpoint")
    assert {"paho", "pydantic", "cryptography", "psycopg"} <= imported
    missing = sorted(f"{module} ({', '.join(distributions.get(module, ['?']))})" for module in imported
                     if not {_normal(d) for d in distributions.get(module, [])} & office)
    assert missing == []


def test_the_kiosk_imports_are_seen_as_not_the_offices() -> None:
    office = {_name(spec) for spec in _requirements(ROOT / "requirements" / "office.txt")}
    distributions = packages_distributions()
    kiosk_only = {module for module in _third_party_imports("kiosk", "drivers")
                  if not {_normal(d) for d in distributions.get(module, [])} & office}
    assert {"cv2", "pyzbar", "gpiozero", "smbus2", "numpy"} <= kiosk_only
