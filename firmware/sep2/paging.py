"""List paging: the query parameters ``s`` (start), ``a`` (after) and ``l`` (limit) of a GET on a
2030.5 list (docs/v2g-ac-profile.md, "Response rules real clients depend on").

Owns reading them strictly (a bad value is a ``Sep2InputError``, so a 400 with its reason, never
a 500) and cutting one page out of a list. ``all`` is always the whole list, ``results`` the items
in the page. It knows no resource: the handlers pass the items, and for lists whose items carry a
time, how to read it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

from firmware.sep2.xml import Sep2InputError, parse_time, parse_uint

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Page:
    """Which part of a list a request asked for; ``limit`` None means the rest of the list.

    Without ``l`` the whole list is served. IEEE 2030.5 lets a server default to one item; the
    project does not, because a vehicle that never pages must still see every control in force
    (§4.9.1: what is absent, the vehicle disables).
    """

    start: int = 0
    after: int | None = None
    limit: int | None = None

    def cut(self, items: Sequence[T], time_of: Callable[[T], int] | None = None) -> tuple[T, ...]:
        """The items of this page; with ``time_of``, only those at or after ``after`` count."""
        if self.after is not None and time_of is not None:
            after = self.after
            items = [item for item in items if time_of(item) >= after]
        end = None if self.limit is None else self.start + self.limit
        return tuple(items[self.start : end])


def page_of(query: Mapping[str, str]) -> Page:
    """The page a GET's query string asks for; other parameters are ignored."""
    return Page(
        start=_uint(query, "s") or 0,
        after=_time(query, "a"),
        limit=_uint(query, "l"),
    )


def _uint(query: Mapping[str, str], key: str) -> int | None:
    text = query.get(key)
    if text is None:
        return None
    _refuse_blank(text, key)
    return parse_uint(text, 32, f"query parameter {key}")


def _time(query: Mapping[str, str], key: str) -> int | None:
    text = query.get(key)
    if text is None:
        return None
    _refuse_blank(text, key)
    return parse_time(text, f"query parameter {key}")


def _refuse_blank(text: str, key: str) -> None:
    # parse_int strips XML whitespace, which a URI has no business carrying
    if not text or text != text.strip():
        raise Sep2InputError(f"query parameter {key}: not an integer")
