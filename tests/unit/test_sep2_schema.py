"""Every model's output validates against the IEEE 2030.5 schema (when one is available).

The schema is IEEE-copyrighted and never shipped: set ``SEP2_SCHEMA_PATH`` to a local sep.xsd
(2030.5-2018) to run these; without it they skip.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from firmware.sep2.base import Resource
from tests.unit.test_sep2_models import ALL, Strategies, minimal, populated

SIMPLE_URI = st.from_regex(r"/[a-z0-9]{1,8}(/[a-z0-9]{1,8}){0,3}", fullmatch=True)
STRATEGIES = Strategies(SIMPLE_URI)


@pytest.fixture(scope="module")
def schema() -> Any:
    path = os.environ.get("SEP2_SCHEMA_PATH")
    if not path:
        pytest.skip(
            "SEP2_SCHEMA_PATH is not set: the IEEE 2030.5 schema is copyrighted and not shipped;"
            " point it at a local sep.xsd to run"
        )
    return etree.XMLSchema(etree.parse(path))


def _assert_valid(schema: Any, model: Resource) -> None:
    document = etree.fromstring(model.to_xml())
    if not schema.validate(document):
        pytest.fail(f"{type(model).__name__}: {schema.error_log.last_error}")


def test_the_schema_is_live(schema: Any) -> None:
    """A document out of schema order fails, so a vacuous schema cannot pass the rest."""
    bad = b'<Response xmlns="urn:ieee:std:2030.5:ns"><subject>00</subject></Response>'
    assert not schema.validate(etree.fromstring(bad))


@pytest.mark.parametrize("cls", ALL, ids=lambda cls: cls.TAG)
def test_fully_populated_output_validates(schema: Any, cls: type[Resource]) -> None:
    _assert_valid(schema, populated(cls))


@pytest.mark.parametrize("cls", ALL, ids=lambda cls: cls.TAG)
def test_minimal_output_validates(schema: Any, cls: type[Resource]) -> None:
    _assert_valid(schema, minimal(cls))


@pytest.mark.parametrize("cls", ALL, ids=lambda cls: cls.TAG)
@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_generated_output_validates(schema: Any, cls: type[Resource], data: st.DataObject) -> None:
    _assert_valid(schema, data.draw(STRATEGIES.model(cls)))
