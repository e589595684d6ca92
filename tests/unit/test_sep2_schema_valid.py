"""Every schema-valid body a vehicle may send is accepted: each optional element the profile
does not use is parsed, bounded and kept (docs/v2g-ac-profile.md, "XML hardening"), while what
is not schema-valid around it is still refused with its reason."""

from __future__ import annotations

from typing import Any

import pytest
from lxml import etree

from firmware.sep2.registry import RESOURCE_TYPES
from firmware.sep2.xml import Sep2InputError
from tests.unit.sep2_maximal import MAXIMAL, NS, UNUSED, find, with_only


def _paths(root: Any) -> list[str]:
    """Every element below ``root`` as its path of local names, in document order."""
    tree = root.getroottree()
    return [tree.getelementpath(e).replace(f"{{{NS}}}", "") for e in root.iter()]


@pytest.mark.parametrize("tag", sorted(MAXIMAL))
def test_a_maximal_body_is_accepted_and_kept_in_schema_order(tag: str) -> None:
    body = MAXIMAL[tag]()
    model = RESOURCE_TYPES[tag].from_xml(body)
    again = etree.fromstring(model.to_xml())
    assert _paths(again) == _paths(etree.fromstring(body)), "every element kept, in order"
    assert dict(again.attrib) == dict(etree.fromstring(body).attrib)


@pytest.mark.parametrize(("tag", "path"), UNUSED, ids=[f"{t}/{p}" for t, p in UNUSED])
def test_an_optional_element_the_profile_does_not_use_is_accepted(tag: str, path: str) -> None:
    body = with_only(tag, path)
    assert find(etree.fromstring(body), path), "the body carries the element under test"
    model = RESOURCE_TYPES[tag].from_xml(body)
    assert find(etree.fromstring(model.to_xml()), path), f"{path} is kept"


@pytest.mark.parametrize(
    ("tag", "path", "text", "reason"),
    [
        ("DeviceInformation", "gpsLocation/lat", "1" * 33, "lat: longer than 32 bytes"),
        ("DERSettings", "setVNom/value", "65536", r"value: 65536 is outside 0\.\.65535"),
        ("MirrorMeterReading", "Reading/localID", "010203", "localID: longer than 2 bytes"),
        ("MirrorMeterReading", "ReadingType/supplyLimit", "-1", "supplyLimit: -1 is outside"),
        ("MirrorMeterReading", "ReadingType/tieredConsumptionBlocks", "no", "not a boolean"),
        ("Subscription", "Condition/lowerThreshold", "x", "lowerThreshold: not an integer"),
    ],
)
def test_a_bad_value_in_an_unused_element_is_still_refused(
    tag: str, path: str, text: str, reason: str
) -> None:
    root = etree.fromstring(MAXIMAL[tag]())
    find(root, path)[0].text = text
    with pytest.raises(Sep2InputError, match=reason):
        RESOURCE_TYPES[tag].from_xml(etree.tostring(root))


@pytest.mark.parametrize(
    ("tag", "path", "reason"),
    [
        ("DeviceInformation", "gpsLocation", "gpsLocation out of schema order"),
        ("Subscription", "Condition", "Condition out of schema order"),
        ("DERSettings", "setVNom", "setVNom out of schema order"),
    ],
)
def test_an_unused_element_out_of_schema_order_is_still_refused(
    tag: str, path: str, reason: str
) -> None:
    root = etree.fromstring(MAXIMAL[tag]())
    element = find(root, path)[0]
    root.remove(element)
    root.append(element)  # last: after elements the schema puts after it
    with pytest.raises(Sep2InputError, match=reason):
        RESOURCE_TYPES[tag].from_xml(etree.tostring(root))


def test_a_condition_missing_a_threshold_is_refused() -> None:
    root = etree.fromstring(MAXIMAL["Subscription"]())
    condition = find(root, "Condition")[0]
    condition.remove(find(condition, "upperThreshold")[0])
    with pytest.raises(Sep2InputError, match="Condition: missing required element upperThreshold"):
        RESOURCE_TYPES["Subscription"].from_xml(etree.tostring(root))


def test_reading_sets_are_dropped_before_a_reading_is_kept() -> None:
    reading = RESOURCE_TYPES["MirrorMeterReading"].from_xml(MAXIMAL["MirrorMeterReading"]())
    assert (
        len(reading.mirror_reading_sets) == 1 and len(reading.mirror_reading_sets[0].readings) == 2
    )
    kept = reading.latest_only()
    assert kept.mirror_reading_sets == () and kept.reading == reading.reading
    point = RESOURCE_TYPES["MirrorUsagePoint"].from_xml(MAXIMAL["MirrorUsagePoint"]())
    assert all(not m.mirror_reading_sets for m in point.latest_only().mirror_meter_readings)
