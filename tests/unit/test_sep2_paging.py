"""List paging (firmware.sep2.paging): ``s``, ``a`` and ``l`` read strictly, one page cut."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from firmware.sep2.paging import Page, page_of
from firmware.sep2.xml import Sep2InputError


def test_no_parameters_is_the_whole_list() -> None:
    assert page_of({}) == Page(0, None, None)
    assert Page().cut("abcde") == tuple("abcde")


def test_start_limit_and_after() -> None:
    assert page_of({"s": "2", "l": "2", "a": "-5", "x": "ignored"}) == Page(2, -5, 2)
    assert Page(start=2, limit=2).cut("abcde") == ("c", "d")
    assert Page(start=9).cut("abc") == ()
    assert Page(limit=0).cut("abc") == ()
    times = {"a": 10, "b": 20, "c": 30}
    assert Page(after=20).cut("abc", times.__getitem__) == ("b", "c")
    assert Page(start=1, after=20).cut("abc", times.__getitem__) == ("c",)
    assert Page(after=99).cut("abc") == tuple("abc"), "a list without times ignores a"


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ({"s": "-1"}, "query parameter s: -1 is outside"),
        ({"l": "1e3"}, "query parameter l: not an integer"),
        ({"l": " 1"}, "query parameter l: not an integer"),
        ({"s": ""}, "query parameter s: not an integer"),
        ({"a": "١٢"}, "query parameter a: not an integer"),  # non-ASCII digits
        ({"l": "4294967296"}, "query parameter l: 4294967296 is outside"),
    ],
)
def test_bad_values_are_refused_with_the_parameter_named(
    query: dict[str, str], reason: str
) -> None:
    with pytest.raises(Sep2InputError, match=reason):
        page_of(query)


@given(st.lists(st.integers(), max_size=20), st.integers(0, 30), st.integers(0, 30))
def test_a_page_is_the_slice_it_names(items: list[int], start: int, limit: int) -> None:
    page = page_of({"s": str(start), "l": str(limit)})
    assert page.cut(items) == tuple(items[start : start + limit])
    assert len(page.cut(items)) <= limit
