"""Range-checked getters for one TOML table, collecting problems instead of stopping at one.

Klipper's pattern: a section's owner reads every option in one place; whatever is left over
afterwards is an unknown key and is reported as ``section.key: unknown key``.
"""

from __future__ import annotations

import math
from typing import Any, TypeVar

T = TypeVar("T")
_MISSING = object()


class SectionReader:
    def __init__(self, name: str, table: Any, problems: list[str]) -> None:
        self.name = name
        self.problems = problems
        if table is _MISSING or table is None:
            table = {}
        if not isinstance(table, dict):
            problems.append(f"{name}: must be a table")
            table = {}
        self._table: dict[str, Any] = table
        self._read: set[str] = set()

    def table(self, key: str) -> Any:
        """A nested table (``[hal.mock]``), marked as known."""
        self._read.add(key)
        return self._table.get(key, _MISSING)

    def has(self, key: str) -> bool:
        return key in self._table

    def raw_list(self, key: str) -> Any:
        """An array (of tables or values) for the caller to check; None when absent."""
        self._read.add(key)
        return self._table.get(key)

    def _problem(self, key: str, why: str) -> None:
        self.problems.append(f"{self.name}.{key}: {why}")

    def _raw(self, key: str) -> Any:
        self._read.add(key)
        return self._table.get(key, _MISSING)

    def string(self, key: str, default: str, choices: tuple[str, ...] = ()) -> str:
        value = self._raw(key)
        if value is _MISSING:
            return default
        if not isinstance(value, str):
            self._problem(key, f"must be a string, got {type(value).__name__}")
            return default
        if choices and value not in choices:
            self._problem(key, f"must be one of {', '.join(choices)}; got {value!r}")
            return default
        if not choices and not value.strip():
            self._problem(key, "must not be empty")
            return default
        return value

    def optional_string(self, key: str) -> str | None:
        if self._table.get(key, _MISSING) is _MISSING:
            self._read.add(key)
            return None
        return self.string(key, "")

    def boolean(self, key: str, default: bool) -> bool:
        value = self._raw(key)
        if value is _MISSING:
            return default
        if not isinstance(value, bool):
            self._problem(key, f"must be true or false, got {value!r}")
            return default
        return value

    def integer(self, key: str, default: int, low: int, high: int) -> int:
        value = self._raw(key)
        if value is _MISSING:
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            self._problem(key, f"must be an integer, got {value!r}")
            return default
        if not low <= value <= high:
            self._problem(key, f"must be between {low} and {high}, got {value}")
            return default
        return value

    def optional_integer(self, key: str, low: int, high: int) -> int | None:
        if self._table.get(key, _MISSING) is _MISSING:
            self._read.add(key)
            return None
        return self.integer(key, low, low, high)

    def integer_or_none(self, key: str, default: int | None, low: int, high: int) -> int | None:
        """An integer, or the string "none" for something not fitted (TOML has no null)."""
        value = self._raw(key)
        if value is _MISSING:
            return default
        if value == "none":
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            self._problem(key, f'must be an integer or "none", got {value!r}')
            return default
        if not low <= value <= high:
            self._problem(key, f"must be between {low} and {high}, got {value}")
            return default
        return value

    def number(self, key: str, default: float, low: float, high: float) -> float:
        value = self._raw(key)
        if value is _MISSING:
            return default
        if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
            self._problem(key, f"must be a number, got {value!r}")
            return default
        if not low <= value <= high:
            self._problem(key, f"must be between {low:g} and {high:g}, got {value:g}")
            return default
        return float(value)

    def finish(self) -> None:
        for key in sorted(set(self._table) - self._read):
            self._problem(key, "unknown key")
