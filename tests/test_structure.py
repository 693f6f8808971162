"""The tree's shape: two deployables and a leaf contract package, no import cycles, no camera stack in office.

The import graph is read from the source (every `import` and `from … import` of a first-party module,
wherever it stands), so a cycle cannot hide inside a function. docs/layout.md explains the rules.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("checkpoint", "kiosk", "office", "drivers")
KIOSK_ONLY = ("cv2", "pyzbar", "zxingcpp", "gpiozero", "smbus2", "numpy")
# Subcommand handlers load their module when that subcommand runs, so `kiosk check-config` does not load
# OpenCV; the report renderer loads its PNG module (matplotlib, and with it numpy) only when a PNG is asked
# for, so the collector and the web app start without them. No other first-party import may stand inside a
# function.
LAZY_ALLOWED = {"kiosk.cli.main", "office.reports.render"}
DRAWS_WITH_MATPLOTLIB = {"office.reports.png"}  # loaded only by render_png, never by another module's import


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


MODULES = _modules()


def _resolve(name: str) -> str | None:
    """The first-party module an import names (`a.b.c` may be a module or a name in `a.b`)."""
    while name:
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


def _imports(path: Path) -> Iterator[tuple[str, bool]]:
    """(first-party module imported, whether the import stands inside a function)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    inside: set[ast.AST] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            inside.update(n for n in ast.walk(node) if n is not node)
    for node in ast.walk(tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            targets = [f"{node.module}.{alias.name}" for alias in node.names]
        for target in targets:
            module = _resolve(target)
            if module is not None:
                yield module, node in inside


GRAPH = {name: {m for m, _ in _imports(path)} - {name} for name, path in MODULES.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle, as the list of modules on it, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt):], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start)):
            return found
    return None


def test_the_tree_has_both_deployables_and_the_contract() -> None:
    assert {name.split(".")[0] for name in MODULES} == set(PACKAGES)
    assert "kiosk.app" in MODULES and "office.cli.main" in MODULES and "checkpoint.entry" in MODULES


def test_no_import_cycle() -> None:
    cycle = _cycle(GRAPH)
    assert cycle is None, " → ".join(cycle or [])


def test_the_cycle_check_finds_a_cycle() -> None:
    graph = {name: set(imports) for name, imports in GRAPH.items()}
    graph["checkpoint.topics"].add("checkpoint.entry")
    graph["checkpoint.entry"].add("checkpoint.topics")
    assert _cycle(graph) is not None


def test_first_party_imports_stand_at_module_level() -> None:
    lazy = sorted(f"{name} imports {module}" for name, path in MODULES.items() if name not in LAZY_ALLOWED
                  for module, in_function in _imports(path) if in_function)
    assert lazy == []


@pytest.mark.parametrize(("package", "may_import"), [
    ("checkpoint", {"checkpoint"}),
    ("office", {"checkpoint", "office"}),
    ("drivers", {"drivers"}),
])
def test_who_imports_whom(package: str, may_import: set[str]) -> None:
    wrong = sorted(f"{name} imports {module}" for name in MODULES if name.split(".")[0] == package
                   for module in GRAPH[name] if module.split(".")[0] not in may_import)
    assert wrong == []


def test_only_the_simulator_runs_the_office_beside_the_gate() -> None:
    wrong = sorted(f"{name} imports {module}" for name in MODULES
                   if name.startswith("kiosk.") and not name.startswith("kiosk.sim.")
                   for module in GRAPH[name] if module.startswith("office"))
    assert wrong == []


def test_the_office_loads_no_camera_or_gpio_stack() -> None:
    """Every office module (and the contract) imported in a fresh interpreter leaves these out."""
    names = sorted(name for name in MODULES if name.split(".")[0] in ("office", "checkpoint")
                   and name not in DRAWS_WITH_MATPLOTLIB)
    code = ("import importlib, json, sys\n"
            f"for name in {names!r}:\n"
            "    importlib.import_module(name)\n"
            f"print(json.dumps(sorted(m for m in {list(KIOSK_ONLY)!r} if m in sys.modules)))\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == []
    assert len(names) > 30


def test_the_split_check_would_see_the_camera_stack() -> None:
    code = ("import sys, kiosk.app\n"
            f"print(sorted(m for m in {list(KIOSK_ONLY)!r} if m in sys.modules))\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 0, done.stderr
    assert "cv2" in done.stdout and "gpiozero" in done.stdout
