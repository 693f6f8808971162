"""TOML files validated by pydantic: errors name the key, its line, the bad value and what is expected."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError


class ConfigError(Exception):
    """A config file failed to parse or validate; `problems` holds one line per error."""

    def __init__(self, path: str, problems: list[str]) -> None:
        self.path = path
        self.problems = problems
        super().__init__(f"{path}: " + "; ".join(problems))


def find_line(text: str, dotted: str) -> int | None:
    """Best-effort 1-based line of a dotted key in TOML text (tables, keys and sub-tables)."""
    parts = dotted.split(".")
    table: list[str] = []
    arrays: dict[tuple[str, ...], int] = {}  # [[name]] headers seen so far: the pydantic loc has the index
    best, best_len = None, 0
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        header = re.fullmatch(r"\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?", line)
        key = None if header else re.match(r"([A-Za-z0-9_.\"' -]+?)\s*=", line)
        if header:
            table = [p.strip().strip("\"'") for p in header.group(1).split(".")]
            if line.startswith("[["):
                arrays[tuple(table)] = arrays.get(tuple(table), -1) + 1
                table = [*table, str(arrays[tuple(table)])]
            full = table
        elif key:
            full = table + [p.strip().strip("\"'") for p in key.group(1).split(".")]
        else:
            continue
        if full == parts:
            return number
        if full == parts[: len(full)] and len(full) > best_len:
            best, best_len = number, len(full)
    return best


_EXPECTED = {  # strict types: what a TOML file should say instead
    "int_type": "an integer, without quotes",
    "float_type": "a number, without quotes",
    "bool_type": "true or false, without quotes",
    "string_type": "a string in quotes",
}
MAX_SHOWN = 100


def _shown(value: Any) -> str:
    """The bad value as the error line shows it: short, and without a password from a URL."""
    text = re.sub(r"(?<=://)[^/\s'\"]*@", "***@", repr(value))
    return text if len(text) <= MAX_SHOWN else text[: MAX_SHOWN - 1] + "…"


def _describe(error: Mapping[str, Any], text: str) -> str:
    loc = tuple(str(p) for p in error["loc"] if not str(p).startswith("function-after"))
    dotted = ".".join(loc) or "(top level)"
    line = find_line(text, dotted) if loc else None
    where = f"{dotted} (line {line})" if line else dotted
    kind = error["type"]
    if kind == "extra_forbidden":
        return f"{where}: unknown key {loc[-1]!r}; remove it or check the spelling"
    if kind == "missing":
        return f"{where}: missing; this key is required"
    message = _EXPECTED.get(kind) or str(error["msg"]).removeprefix("Value error, ")
    if kind == "is_instance_of" and error.get("ctx", {}).get("class") in ("Path", "PosixPath"):
        message = "a path in quotes"
    if kind == "value_error" and isinstance(error.get("input"), Mapping):
        # A rule across a section's keys: its message names them, and the section itself is noise.
        return f"{where}: {message}" if loc else message
    return f"{where}: got {_shown(error.get('input'))}; expected {message}"


M = TypeVar("M", bound=BaseModel)


def validate_toml(model: type[M], text: str, *, source: str) -> M:
    """Parse TOML text into `model`; ConfigError has one line per problem, naming the key and its line."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(source, [f"TOML syntax error: {exc}"]) from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(source, [_describe(e, text) for e in exc.errors()]) from None


def read_toml_text(path: Path) -> str:
    """A config file's text; ConfigError when it cannot be read."""
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(str(path), [f"cannot read: {exc}"]) from None


def resolve_path(path: Path | None, base: Path) -> Path | None:
    """`~` expanded, and a relative path taken relative to `base` (the config file's directory)."""
    if path is None:
        return None
    path = path.expanduser()
    return path if path.is_absolute() else base / path
