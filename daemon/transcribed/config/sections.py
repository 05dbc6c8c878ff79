"""Reading one TOML table: `Section` collects every problem (dotted key, what was expected) instead of
stopping at the first, and reports unknown keys at `finish()`; per-folder tables reuse a section's parser
through `section_overrides` and `merge_section`.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

# What Section.raw returns for a key the table leaves out.
MISSING: Any = object()


class Section:
    """Reads one TOML table, collecting problems instead of stopping at the first."""

    def __init__(self, table: object, name: str, problems: list[str], base: Path | None) -> None:
        self.name = name
        self.problems = problems
        self.base = base
        if not isinstance(table, dict):
            problems.append(f"{name}: expected a table ([{name}]), got {type(table).__name__}")
            table = {}
        self.table: dict[str, Any] = dict(table)
        self.known: set[str] = set()

    def raw(self, key: str) -> Any:
        """Return the key's value as written (MISSING when it is not set), marking the key as known."""
        self.known.add(key)
        return self.table.get(key, MISSING)

    def bad(self, key: str, expected: str, value: object) -> None:
        """Report `key`: what was expected, and the value (shortened) found instead."""
        shown = repr(value)
        shown = shown if len(shown) <= 60 else shown[:57] + "..."
        self.problems.append(f"{self.name}.{key}: expected {expected}, got {shown}")

    def string(self, key: str, default: str, choices: tuple[str, ...] = ()) -> str:
        value = self.raw(key)
        if value is MISSING:
            return default
        if not isinstance(value, str) or (choices and value not in choices):
            expected = "one of " + ", ".join(f'"{c}"' for c in choices) if choices else "a string"
            self.bad(key, expected, value)
            return default
        return value

    def optional_string(self, key: str) -> str | None:
        value = self.raw(key)
        if value is MISSING or value == "":
            return None
        if not isinstance(value, str):
            self.bad(key, "a string", value)
            return None
        return value

    def boolean(self, key: str, default: bool) -> bool:
        value = self.raw(key)
        if value is MISSING:
            return default
        if not isinstance(value, bool):
            self.bad(key, "true or false", value)
            return default
        return value

    def number(self, key: str, default: float, *, minimum: float = 0.0, above: bool = False,
               maximum: float | None = None) -> float:
        value = self.raw(key)
        if value is MISSING:
            return default
        ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        if ok and (value < minimum or (above and value == minimum) or (maximum is not None and value > maximum)):
            ok = False
        if not ok:
            bound = f"> {minimum:g}" if above else f">= {minimum:g}"
            if maximum is not None:
                bound += f" and <= {maximum:g}"
            self.bad(key, f"a number {bound}", value)
            return default
        return float(value)

    def integer(self, key: str, default: int, *, minimum: int, maximum: int) -> int:
        value = self.raw(key)
        if value is MISSING:
            return default
        if not isinstance(value, int) or isinstance(value, bool) or not minimum <= value <= maximum:
            self.bad(key, f"a whole number from {minimum} to {maximum}", value)
            return default
        return value

    def path(self, key: str, default: Path | None) -> Path | None:
        value = self.raw(key)
        if value is MISSING or value == "":
            return default
        if not isinstance(value, str):
            self.bad(key, "a path (string)", value)
            return default
        return self.resolve(value)

    def resolve(self, text: str) -> Path:
        """Return `text` as an absolute path (~ expanded; a relative one taken from the config file's folder)."""
        path = Path(text).expanduser()
        if not path.is_absolute() and self.base is not None:
            path = self.base / path
        return Path(os.path.abspath(path))  # noqa: PTH100 - absolute without resolving symlinks

    def strings(self, key: str, default: tuple[str, ...], *, nonempty: bool = False) -> tuple[str, ...]:
        value = self.raw(key)
        if value is MISSING:
            return default
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value) or (nonempty and not value):
            self.bad(key, "a non-empty list of strings" if nonempty else "a list of strings", value)
            return default
        return tuple(value)

    def paths(self, key: str, default: tuple[Path, ...]) -> tuple[Path, ...]:
        texts = self.strings(key, (), nonempty=True)
        return tuple(self.resolve(t) for t in texts) if texts else default

    def mode(self, key: str) -> int | None:
        value = self.raw(key)
        if value is MISSING or value == "":
            return None
        if isinstance(value, str):
            try:
                value = int(value, 8)
            except ValueError:
                self.bad(key, 'an octal mode such as "0640" or 0o640', value)
                return None
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 0o777:
            self.bad(key, 'an octal mode such as "0640" or 0o640', value)
            return None
        return value

    def finish(self) -> None:
        for key in sorted(set(self.table) - self.known):
            expected = ", ".join(sorted(self.known))
            self.problems.append(f"{self.name}.{key}: unknown key (expected one of: {expected})")


SectionT = TypeVar("SectionT")


def section_overrides(name: str, table: object, parser: Callable[[Section], object], problems: list[str],
                      allowed: tuple[str, ...]) -> dict[str, Any]:
    """Read a per-folder table with the main config's own section `parser`; return only the fields the table
    sets ({field: value}), for `merge_section` over the main config's section. A key outside `allowed` is
    reported (unknown, or read from the main config only); every problem is appended to `problems`."""
    if not isinstance(table, dict):
        problems.append(f"{name}: expected a table ([{name}]), got {type(table).__name__}")
        return {}
    for key in sorted(set(table) - set(allowed)):
        problems.append(f"{name}.{key}: not a per-folder key (a folder's [{name}] may set: {', '.join(allowed)})")
    kept = {key: value for key, value in table.items() if key in allowed}
    parsed = parser(Section(kept, name, problems, None))
    return {key: getattr(parsed, key) for key in kept}


def merge_section(base: SectionT, overrides: Mapping[str, Any]) -> SectionT:
    """`base` (a section dataclass) with `overrides` ({field: value}) laid over it."""
    return dataclasses.replace(base, **overrides)  # type: ignore[type-var]
