"""The TOML writer the test harnesses use to write configs: it must round-trip through
tomllib for every shape the config has (tables, arrays of tables, nested arrays)."""

from __future__ import annotations

import tomllib
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from hil.daemon import toml_dumps

KEYS = st.from_regex(r"[a-z][a-z_]{0,8}", fullmatch=True)
SCALARS = st.one_of(
    st.booleans(),
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=False, allow_infinity=False, width=32).filter(lambda f: f == f),
    st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=12),
    st.lists(st.lists(st.integers(-200, 200), min_size=2, max_size=2), max_size=4),
)
TABLES = st.dictionaries(KEYS, SCALARS, max_size=4)


@given(
    st.dictionaries(
        KEYS,
        st.one_of(
            TABLES,
            st.fixed_dictionaries(
                {"max_w": st.integers(1, 9999)},
                optional={"functions": st.lists(TABLES.filter(bool), min_size=1, max_size=3)},
            ),
        ),
        max_size=4,
    )
)
def test_round_trip(data: dict[str, Any]) -> None:
    assert tomllib.loads(toml_dumps(data)) == data
