"""The 2030.5 models: round trips, schema element order (golden), and strict parsing.

The golden sequences below are written out by hand from the IEEE 2030.5-2018 schema (sep.xsd,
version 2.1.0), base-type elements first; they are deliberately *not* derived from the models.
``populated``/``minimal``/``Strategies`` build instances from the models' own field specs and are
shared with ``test_sep2_schema``.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from firmware.errors import GatekeeperError
from firmware.sep2.base import Resource
from firmware.sep2.control import DERControl, DERControlBase, DERControlList
from firmware.sep2.curve import CurveData, DERCurve
from firmware.sep2.fields import (
    URI,
    AnyResource,
    BoolCodec,
    HexIntCodec,
    HexStrCodec,
    IntCodec,
    Sep2ValueError,
    StrCodec,
)
from firmware.sep2.model import Sep2Model, specs_of
from firmware.sep2.registry import RESOURCE_TYPES
from firmware.sep2.response import DERControlResponse, Response
from firmware.sep2.values import DateTimeInterval, EventStatus
from firmware.sep2.xml import MEDIA_TYPE, NS, Sep2InputError

ALL = sorted(RESOURCE_TYPES.values(), key=lambda cls: cls.TAG)
XSI_TYPE = "{http://www.w3.org/2001/XMLSchema-instance}type"


def _sample(kind: Any) -> Any:
    if isinstance(kind, IntCodec):
        return max(kind.low, min(kind.high, 7))
    if isinstance(kind, HexIntCodec):
        return 1
    if isinstance(kind, HexStrCodec):
        return "AB" * kind.max_bytes
    if isinstance(kind, StrCodec):
        return "/x" if kind is URI else "text"
    assert isinstance(kind, BoolCodec)
    return True


def _build(cls: type[Sep2Model], everything: bool) -> Any:
    kwargs: dict[str, Any] = {}
    for attr, spec in specs_of(cls):
        if not (everything or spec.required):
            continue
        if spec.kind is AnyResource:
            value = _build(DERControlList, everything)
        elif spec.is_scalar:
            value = _sample(spec.kind)
        else:
            value = _build(spec.kind, everything)
        kwargs[attr] = (value, value) if spec.many else value
    return cls(**kwargs)


def populated(cls: type[Sep2Model]) -> Any:
    """Every element and attribute present; repeated elements twice."""
    return _build(cls, everything=True)


def minimal(cls: type[Sep2Model]) -> Any:
    """Only what the schema requires."""
    return _build(cls, everything=False)


def _fit(text: str, max_bytes: int) -> str:
    while len(text.encode("utf-8")) > max_bytes:
        text = text[:-1]
    return text


class Strategies:
    """Hypothesis strategies for any model, built from its field specs."""

    def __init__(self, uri: st.SearchStrategy[str]) -> None:
        self._uri = uri
        self._cache: dict[type[Sep2Model], st.SearchStrategy[Any]] = {}

    def scalar(self, kind: Any) -> st.SearchStrategy[Any]:
        if isinstance(kind, IntCodec):
            return st.integers(kind.low, kind.high)
        if isinstance(kind, HexIntCodec):
            return st.integers(0, (1 << (8 * kind.nbytes)) - 1)
        if isinstance(kind, HexStrCodec):
            return st.binary(min_size=1, max_size=kind.max_bytes).map(lambda b: b.hex().upper())
        if kind is URI:
            return self._uri
        if isinstance(kind, StrCodec):
            chars = st.characters(exclude_categories=("Cs", "Cc", "Cn")) | st.sampled_from("\t\n\r")
            n = kind.max_bytes
            return st.text(chars, max_size=n).map(lambda s: _fit(s, n))
        assert isinstance(kind, BoolCodec)
        return st.booleans()

    def model(self, cls: type[Sep2Model]) -> st.SearchStrategy[Any]:
        if cls not in self._cache:
            kwargs: dict[str, st.SearchStrategy[Any]] = {}
            for attr, spec in specs_of(cls):
                if spec.kind is AnyResource:  # any resource but Notification itself
                    one = st.sampled_from([c for c in ALL if c.TAG != "Notification"])
                    value = one.flatmap(self.model)
                elif spec.is_scalar:
                    value = self.scalar(spec.kind)
                else:
                    value = self.model(spec.kind)
                if spec.many:
                    top = min(spec.max_occurs or 3, 3)
                    value = st.lists(value, min_size=int(spec.required), max_size=top).map(tuple)
                elif not spec.required:
                    value = st.none() | value
                kwargs[attr] = value
            self._cache[cls] = st.builds(cls, **kwargs)
        return self._cache[cls]


ANY_TEXT = Strategies(st.text(st.characters(exclude_categories=("Cs", "Cc", "Cn")), max_size=64))


def children(element: Any) -> list[str]:
    return [etree.QName(child).localname for child in element]


def document(model: Resource) -> Any:
    return etree.fromstring(model.to_xml())


# --- round trips -------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", ALL, ids=lambda cls: cls.TAG)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_round_trip_property(cls: type[Resource], data: st.DataObject) -> None:
    model = data.draw(ANY_TEXT.model(cls))
    assert cls.from_xml(model.to_xml()) == model


@pytest.mark.parametrize("cls", ALL, ids=lambda cls: cls.TAG)
def test_round_trip_of_populated_and_minimal_instances(cls: type[Resource]) -> None:
    for model in (populated(cls), minimal(cls)):
        assert cls.from_xml(model.to_xml()) == model


# --- golden element order (hand-written from sep.xsd) ------------------------------------------

ID = ["mRID", "description", "version"]
EVENT = [*ID, "creationTime", "EventStatus", "interval", "randomizeDuration", "randomizeStart"]
GOLDEN: dict[str, tuple[set[str], list[str]]] = {
    "DeviceCapability": (
        {"href", "pollRate"},
        [
            "ResponseSetListLink",
            "TimeLink",
            "EndDeviceListLink",
            "MirrorUsagePointListLink",
            "SelfDeviceLink",
        ],
    ),
    "Time": (
        {"href", "pollRate"},
        [
            "currentTime",
            "dstEndTime",
            "dstOffset",
            "dstStartTime",
            "localTime",
            "quality",
            "tzOffset",
        ],
    ),
    "SelfDevice": (
        {"href", "subscribable", "pollRate"},
        [
            "DERListLink",
            "deviceCategory",
            "DeviceInformationLink",
            "lFDI",
            "PowerStatusLink",
            "sFDI",
        ],
    ),
    "EndDevice": (
        {"href", "subscribable"},
        [
            "DERListLink",
            "deviceCategory",
            "DeviceInformationLink",
            "lFDI",
            "PowerStatusLink",
            "sFDI",
            "changedTime",
            "enabled",
            "FunctionSetAssignmentsListLink",
            "postRate",
            "SubscriptionListLink",
        ],
    ),
    "EndDeviceList": (
        {"href", "subscribable", "all", "results", "pollRate"},
        ["EndDevice", "EndDevice"],
    ),
    "DeviceInformation": (
        {"href", "pollRate"},
        [
            "DRLCCapabilities",
            "functionsImplemented",
            "gpsLocation",
            "lFDI",
            "mfDate",
            "mfHwVer",
            "mfID",
            "mfInfo",
            "mfModel",
            "mfSerNum",
            "primaryPower",
            "secondaryPower",
            "SupportedLocaleListLink",
            "swActTime",
            "swVer",
        ],
    ),
    "PowerStatus": (
        {"href", "pollRate"},
        [
            "batteryStatus",
            "changedTime",
            "currentPowerSource",
            "estimatedChargeRemaining",
            "estimatedTimeRemaining",
            "PEVInfo",
            "sessionTimeOnBattery",
            "totalTimeOnBattery",
        ],
    ),
    "DER": (
        {"href", "subscribable"},
        [
            "AssociatedDERProgramListLink",
            "AssociatedUsagePointLink",
            "CurrentDERProgramLink",
            "DERAvailabilityLink",
            "DERCapabilityLink",
            "DERSettingsLink",
            "DERStatusLink",
        ],
    ),
    "DERList": ({"href", "all", "results", "pollRate"}, ["DER", "DER"]),
    "DERCapability": (
        {"href"},
        [
            "modesSupported",
            "rtgAbnormalCategory",
            "rtgMaxA",
            "rtgMaxAh",
            "rtgMaxChargeRateVA",
            "rtgMaxChargeRateW",
            "rtgMaxDischargeRateVA",
            "rtgMaxDischargeRateW",
            "rtgMaxV",
            "rtgMaxVA",
            "rtgMaxVar",
            "rtgMaxVarNeg",
            "rtgMaxW",
            "rtgMaxWh",
            "rtgMinPFOverExcited",
            "rtgMinPFUnderExcited",
            "rtgMinV",
            "rtgNormalCategory",
            "rtgOverExcitedPF",
            "rtgOverExcitedW",
            "rtgReactiveSusceptance",
            "rtgUnderExcitedPF",
            "rtgUnderExcitedW",
            "rtgVNom",
            "type",
        ],
    ),
    "DERSettings": (
        {"href", "subscribable"},
        [
            "modesEnabled",
            "setESDelay",
            "setESHighFreq",
            "setESHighVolt",
            "setESLowFreq",
            "setESLowVolt",
            "setESRampTms",
            "setESRandomDelay",
            "setGradW",
            "setMaxA",
            "setMaxAh",
            "setMaxChargeRateVA",
            "setMaxChargeRateW",
            "setMaxDischargeRateVA",
            "setMaxDischargeRateW",
            "setMaxV",
            "setMaxVA",
            "setMaxVar",
            "setMaxVarNeg",
            "setMaxW",
            "setMaxWh",
            "setMinPFOverExcited",
            "setMinPFUnderExcited",
            "setMinV",
            "setSoftGradW",
            "setVNom",
            "setVRef",
            "setVRefOfs",
            "updatedTime",
        ],
    ),
    "DERAvailability": (
        {"href", "subscribable"},
        [
            "availabilityDuration",
            "maxChargeDuration",
            "readingTime",
            "reserveChargePercent",
            "reservePercent",
            "statVarAvail",
            "statWAvail",
        ],
    ),
    "DERStatus": (
        {"href", "subscribable"},
        [
            "alarmStatus",
            "genConnectStatus",
            "inverterStatus",
            "localControlModeStatus",
            "manufacturerStatus",
            "operationalModeStatus",
            "readingTime",
            "stateOfChargeStatus",
            "storageModeStatus",
            "storConnectStatus",
        ],
    ),
    "FunctionSetAssignments": (
        {"href", "subscribable"},
        ["DERProgramListLink", "ResponseSetListLink", "TimeLink", *ID],
    ),
    "FunctionSetAssignmentsList": (
        {"href", "subscribable", "all", "results", "pollRate"},
        ["FunctionSetAssignments", "FunctionSetAssignments"],
    ),
    "DERProgram": (
        {"href", "subscribable"},
        [
            *ID,
            "ActiveDERControlListLink",
            "DefaultDERControlLink",
            "DERControlListLink",
            "DERCurveListLink",
            "primacy",
        ],
    ),
    "DERProgramList": (
        {"href", "subscribable", "all", "results", "pollRate"},
        ["DERProgram", "DERProgram"],
    ),
    "DefaultDERControl": (
        {"href", "subscribable"},
        [
            *ID,
            "DERControlBase",
            "setESDelay",
            "setESHighFreq",
            "setESHighVolt",
            "setESLowFreq",
            "setESLowVolt",
            "setESRampTms",
            "setESRandomDelay",
            "setGradW",
            "setSoftGradW",
        ],
    ),
    "DERControl": (
        {"href", "replyTo", "responseRequired", "subscribable"},
        [*EVENT, "DERControlBase", "deviceCategory"],
    ),
    "DERControlList": ({"href", "subscribable", "all", "results"}, ["DERControl", "DERControl"]),
    "DERCurve": (
        {"href"},
        [
            *ID,
            "autonomousVRefEnable",
            "autonomousVRefTimeConstant",
            "creationTime",
            "CurveData",
            "CurveData",
            "curveType",
            "openLoopTms",
            "rampDecTms",
            "rampIncTms",
            "rampPT1Tms",
            "vRef",
            "xMultiplier",
            "yMultiplier",
            "yRefType",
        ],
    ),
    "DERCurveList": ({"href", "all", "results"}, ["DERCurve", "DERCurve"]),
    "MirrorUsagePoint": (
        {"href"},
        [
            *ID,
            "roleFlags",
            "serviceCategoryKind",
            "status",
            "deviceLFDI",
            "MirrorMeterReading",
            "MirrorMeterReading",
            "postRate",
        ],
    ),
    "MirrorUsagePointList": (
        {"href", "all", "results", "pollRate"},
        ["MirrorUsagePoint", "MirrorUsagePoint"],
    ),
    "MirrorMeterReading": (
        {"href"},
        [
            *ID,
            "lastUpdateTime",
            "MirrorReadingSet",
            "MirrorReadingSet",
            "nextUpdateTime",
            "Reading",
            "ReadingType",
        ],
    ),
    "Response": ({"href"}, ["createdDateTime", "endDeviceLFDI", "status", "subject"]),
    "DERControlResponse": ({"href"}, ["createdDateTime", "endDeviceLFDI", "status", "subject"]),
    "ResponseList": ({"href", "all", "results"}, ["Response", "Response"]),
    "ResponseSet": ({"href"}, [*ID, "ResponseListLink"]),
    "ResponseSetList": ({"href", "all", "results", "pollRate"}, ["ResponseSet", "ResponseSet"]),
    "Subscription": (
        {"href"},
        ["subscribedResource", "Condition", "encoding", "level", "limit", "notificationURI"],
    ),
    "SubscriptionList": (
        {"href", "all", "results", "pollRate"},
        ["Subscription", "Subscription"],
    ),
    "Notification": (
        {"href"},
        ["subscribedResource", "newResourceURI", "Resource", "status", "subscriptionURI"],
    ),
}

CONTROL_BASE = [
    "opModConnect",
    "opModEnergize",
    "opModFixedPFAbsorbW",
    "opModFixedPFInjectW",
    "opModFixedVar",
    "opModFixedW",
    "opModFreqDroop",
    "opModFreqWatt",
    "opModHFRTMayTrip",
    "opModHFRTMustTrip",
    "opModHVRTMayTrip",
    "opModHVRTMomentaryCessation",
    "opModHVRTMustTrip",
    "opModLFRTMayTrip",
    "opModLFRTMustTrip",
    "opModLVRTMayTrip",
    "opModLVRTMomentaryCessation",
    "opModLVRTMustTrip",
    "opModMaxLimW",
    "opModVoltVar",
    "opModVoltWatt",
    "opModWattPF",
    "opModWattVar",
    "rampTms",
]
QUANTITY = ["multiplier", "value"]
STATUS = ["dateTime", "value"]
NESTED_GOLDEN: list[tuple[str, str, list[str]]] = [
    ("DERControl", "DERControlBase", CONTROL_BASE),
    ("DefaultDERControl", "DERControlBase", CONTROL_BASE),
    (
        "DERControl",
        "EventStatus",
        [
            "currentStatus",
            "dateTime",
            "potentiallySuperseded",
            "potentiallySupersededTime",
            "reason",
        ],
    ),
    ("DERControl", "interval", ["duration", "start"]),
    (
        "DERControl",
        "DERControlBase/opModFixedPFAbsorbW",
        ["displacement", "excitation", "multiplier"],
    ),
    ("DERControl", "DERControlBase/opModFixedVar", ["refType", "value"]),
    ("DERControl", "DERControlBase/opModFreqDroop", ["dBOF", "dBUF", "kOF", "kUF", "openLoopTms"]),
    (
        "PowerStatus",
        "PEVInfo",
        [
            "chargingPowerNow",
            "energyRequestNow",
            "maxForwardPower",
            "minimumChargingDuration",
            "targetStateOfCharge",
            "timeChargeIsNeeded",
            "timeChargingStatusPEV",
        ],
    ),
    ("PowerStatus", "PEVInfo/chargingPowerNow", QUANTITY),
    ("PowerStatus", "PEVInfo/energyRequestNow", QUANTITY),
    ("DERSettings", "setMaxW", QUANTITY),
    ("DERSettings", "setMaxVA", QUANTITY),
    ("DERSettings", "setVRef", QUANTITY),
    ("DERCapability", "rtgMinPFOverExcited", ["displacement", "multiplier"]),
    ("DERCapability", "rtgReactiveSusceptance", QUANTITY),
    ("DERStatus", "genConnectStatus", STATUS),
    ("DERStatus", "inverterStatus", STATUS),
    ("DERStatus", "manufacturerStatus", STATUS),
    ("DERStatus", "stateOfChargeStatus", STATUS),
    ("DERCurve", "CurveData", ["excitation", "xvalue", "yvalue"]),
    (
        "MirrorMeterReading",
        "Reading",
        ["consumptionBlock", "qualityFlags", "timePeriod", "touTier", "value", "localID"],
    ),
    ("MirrorMeterReading", "MirrorReadingSet", [*ID, "timePeriod", "Reading", "Reading"]),
    ("MirrorMeterReading", "ReadingType/calorificValue", ["multiplier", "unit", "value"]),
    ("DeviceInformation", "DRLCCapabilities", ["averageEnergy", "maxDemand", "optionsImplemented"]),
    ("DeviceInformation", "gpsLocation", ["lat", "lon"]),
    ("Subscription", "Condition", ["attributeIdentifier", "lowerThreshold", "upperThreshold"]),
    (
        "MirrorMeterReading",
        "ReadingType",
        [
            "accumulationBehaviour",
            "calorificValue",
            "commodity",
            "conversionFactor",
            "dataQualifier",
            "flowDirection",
            "intervalLength",
            "kind",
            "maxNumberOfIntervals",
            "numberOfConsumptionBlocks",
            "numberOfTouTiers",
            "phase",
            "powerOfTenMultiplier",
            "subIntervalLength",
            "supplyLimit",
            "tieredConsumptionBlocks",
            "uom",
        ],
    ),
    ("Notification", "Resource", ["DERControl", "DERControl"]),
    ("Notification", "Resource/DERControl", [*EVENT, "DERControlBase", "deviceCategory"]),
]


def test_golden_covers_every_model() -> None:
    assert set(GOLDEN) == set(RESOURCE_TYPES)


@pytest.mark.parametrize("tag", sorted(GOLDEN))
def test_golden_element_order(tag: str) -> None:
    attributes, expected = GOLDEN[tag]
    root = document(populated(RESOURCE_TYPES[tag]))
    assert root.tag == f"{{{NS}}}{tag}"
    assert children(root) == expected
    assert set(root.attrib) == attributes


@pytest.mark.parametrize(("tag", "path", "expected"), NESTED_GOLDEN, ids=lambda x: str(x)[:30])
def test_golden_nested_element_order(tag: str, path: str, expected: list[str]) -> None:
    root = document(populated(RESOURCE_TYPES[tag]))
    steps = "/".join(f"s:{step}" for step in path.split("/"))
    [element, *_] = root.xpath(steps, namespaces={"s": NS})
    assert children(element) == expected


def test_links_carry_href_and_list_links_their_count() -> None:
    root = document(populated(RESOURCE_TYPES["DeviceCapability"]))
    time_link, end_devices = root.find(f"{{{NS}}}TimeLink"), root.find(f"{{{NS}}}EndDeviceListLink")
    assert dict(time_link.attrib) == {"href": "/x"} and len(time_link) == 0
    assert dict(end_devices.attrib) == {"href": "/x", "all": "7"}


def test_notification_resource_is_typed_with_xsi_type() -> None:
    root = document(populated(RESOURCE_TYPES["Notification"]))
    assert root.find(f"{{{NS}}}Resource").get(XSI_TYPE) == "DERControlList"


def test_output_uses_the_default_namespace_without_declaration_or_prefix() -> None:
    body = populated(RESOURCE_TYPES["DERSettings"]).to_xml()
    assert body.startswith(b'<DERSettings xmlns="urn:ieee:std:2030.5:ns"')
    assert b"<?xml" not in body and b"ns0:" not in body
    assert MEDIA_TYPE == "application/sep+xml"


def test_output_is_utf8() -> None:
    response = minimal(Response)
    body = Response(end_device_lfdi=response.end_device_lfdi, subject="0A", href="/rsp/é").to_xml()
    assert 'href="/rsp/é"'.encode() in body


def test_der_control_response_is_its_own_document_type() -> None:
    response = minimal(DERControlResponse)
    assert response.to_xml().startswith(b"<DERControlResponse ")
    assert response != minimal(Response)
    with pytest.raises(Sep2InputError, match="expected root element Response"):
        Response.from_xml(response.to_xml())


# --- strict parsing ----------------------------------------------------------------------------


def _swap_first_distinct_pair(root: Any) -> None:
    """Swap the first two different neighbouring elements (inside a list item for lists)."""
    for element in root.iter():
        kids = list(element)
        for first, second in itertools.pairwise(kids):
            if first.tag != second.tag:
                second.addnext(first)
                return
    raise AssertionError("no two distinct neighbours")


@pytest.mark.parametrize("cls", ALL, ids=lambda cls: cls.TAG)
def test_out_of_schema_order_is_refused(cls: type[Resource]) -> None:
    root = document(populated(cls))
    _swap_first_distinct_pair(root)
    with pytest.raises(Sep2InputError, match="out of schema order"):
        cls.from_xml(etree.tostring(root))


@pytest.mark.parametrize("cls", ALL, ids=lambda cls: cls.TAG)
def test_each_missing_required_element_is_named(cls: type[Resource]) -> None:
    required = [s.name for _, s in specs_of(cls) if s.required and not s.attr]
    for name in required:
        root = document(populated(cls))
        for child in root.findall(f"{{{NS}}}{name}"):
            root.remove(child)
        with pytest.raises(Sep2InputError, match=f"missing required element {name}$"):
            cls.from_xml(etree.tostring(root))


def test_missing_required_attribute_is_named() -> None:
    body = b'<DERControlList xmlns="urn:ieee:std:2030.5:ns" results="0"/>'
    with pytest.raises(Sep2InputError, match="missing required attribute all"):
        DERControlList.from_xml(body)


@pytest.mark.parametrize(
    ("cls", "intruder"),
    [
        ("DeviceCapability", "DERProgramListLink"),  # no public programs (§4.5.1)
        ("EndDevice", "RegistrationLink"),  # registration is prohibited (§4.5.3)
        ("DERSettings", "rtgMaxW"),  # a DERCapability element, not a setting
        ("DERSettings", "mRID"),  # known elsewhere, not here
    ],
)
def test_element_outside_the_profile_model_is_refused_by_name(cls: str, intruder: str) -> None:
    root = document(minimal(RESOURCE_TYPES[cls]))
    root.append(etree.Element(f"{{{NS}}}{intruder}", href="/x"))
    with pytest.raises(Sep2InputError, match=f"unknown element {intruder}$"):
        RESOURCE_TYPES[cls].from_xml(etree.tostring(root))


def test_repeated_single_element_is_refused() -> None:
    root = etree.fromstring(populated(Response).to_xml())
    root.insert(1, etree.fromstring(etree.tostring(root[1])))
    with pytest.raises(Sep2InputError, match="endDeviceLFDI out of schema order or repeated"):
        Response.from_xml(etree.tostring(root))


def test_more_than_ten_curve_points_is_refused_both_ways() -> None:
    curve = populated(DERCurve)
    root = document(curve)
    point = root.find(f"{{{NS}}}CurveData")
    for _ in range(9):
        point.addnext(etree.fromstring(etree.tostring(point)))
    with pytest.raises(Sep2InputError, match="more than 10 CurveData"):
        DERCurve.from_xml(etree.tostring(root))
    too_many = tuple(CurveData(xvalue=i, yvalue=i) for i in range(11))
    with pytest.raises(Sep2ValueError):
        DERCurve(**{**_fields(curve), "curve_data": too_many}).to_xml()


@pytest.mark.parametrize(
    ("element", "text", "reason"),
    [
        ("modesSupported", "001", "modesSupported: odd number of hex digits"),
        ("modesSupported", "0000000001", "modesSupported: longer than 4 bytes"),
        ("rtgAbnormalCategory", "256", "rtgAbnormalCategory: 256 is outside 0..255"),
        ("rtgAbnormalCategory", "1_0", "rtgAbnormalCategory: not an integer"),
        ("type", "-1", "type: -1 is outside 0..255"),
    ],
)
def test_bad_values_are_refused_with_the_element_named(
    element: str, text: str, reason: str
) -> None:
    root = document(populated(RESOURCE_TYPES["DERCapability"]))
    root.find(f"{{{NS}}}{element}").text = text
    with pytest.raises(Sep2InputError, match=reason):
        RESOURCE_TYPES["DERCapability"].from_xml(etree.tostring(root))


@pytest.mark.parametrize(
    ("tag", "path", "text", "reason"),
    [
        ("DERSettings", "setMaxW/multiplier", "10", r"multiplier: 10 is outside -9\.\.9"),
        ("DERControl", "randomizeStart", "3601", r"3601 is outside -3600\.\.3600"),
        ("DERControl", "DERControlBase/opModFixedW", "10001", r"outside -10000\.\.10000"),
        ("DERControl", "DERControlBase/opModMaxLimW", "10001", r"outside 0\.\.10000"),
    ],
)
def test_documented_ranges_are_enforced(tag: str, path: str, text: str, reason: str) -> None:
    root = document(populated(RESOURCE_TYPES[tag]))
    steps = "/".join(f"s:{step}" for step in path.split("/"))
    root.xpath(steps, namespaces={"s": NS})[0].text = text
    with pytest.raises(Sep2InputError, match=reason):
        RESOURCE_TYPES[tag].from_xml(etree.tostring(root))


def test_empty_identifier_is_refused() -> None:
    root = document(populated(Response))
    root.find(f"{{{NS}}}subject").text = ""
    with pytest.raises(Sep2InputError, match="Response/subject: not hex"):
        Response.from_xml(etree.tostring(root))


def test_over_long_string_and_bad_boolean_are_refused() -> None:
    info = document(populated(RESOURCE_TYPES["DeviceInformation"]))
    info.find(f"{{{NS}}}mfModel").text = "M" * 33
    with pytest.raises(Sep2InputError, match="mfModel: longer than 32 bytes"):
        RESOURCE_TYPES["DeviceInformation"].from_xml(etree.tostring(info))
    control = document(populated(DERControl))
    control.find(f"{{{NS}}}DERControlBase/{{{NS}}}opModEnergize").text = "yes"
    with pytest.raises(Sep2InputError, match="opModEnergize: not a boolean"):
        DERControl.from_xml(etree.tostring(control))


def test_stray_text_and_children_of_simple_elements_are_refused() -> None:
    root = document(populated(Response))
    root.text = "smuggled"
    with pytest.raises(Sep2InputError, match="Response: unexpected text"):
        Response.from_xml(etree.tostring(root))
    root = document(populated(Response))
    root.find(f"{{{NS}}}status").append(etree.Element(f"{{{NS}}}status"))
    with pytest.raises(Sep2InputError, match="unexpected child elements"):
        Response.from_xml(etree.tostring(root))


def test_boolean_and_integer_lexical_forms_accepted() -> None:
    control = document(populated(DERControl))
    control.find(f"{{{NS}}}DERControlBase/{{{NS}}}opModEnergize").text = " 0 "
    control.find(f"{{{NS}}}creationTime").text = "+42"
    parsed = DERControl.from_xml(etree.tostring(control))
    assert parsed.der_control_base.op_mod_energize is False and parsed.creation_time == 42


def _notification_with_type(xsi_type: str, extra_ns: str = "") -> bytes:
    return (
        f'<Notification xmlns="{NS}" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"'
        f"{extra_ns}><subscribedResource>/d</subscribedResource>"
        f'<Resource xsi:type="{xsi_type}" all="0" results="0"/>'
        "<status>0</status><subscriptionURI>https://h/n</subscriptionURI></Notification>"
    ).encode()


def test_notification_resource_type_is_resolved_through_its_prefix() -> None:
    body = _notification_with_type("sep:DERControlList", f' xmlns:sep="{NS}"')
    parsed = RESOURCE_TYPES["Notification"].from_xml(body)
    assert parsed.resource == DERControlList(all=0, results=0)


@pytest.mark.parametrize(
    ("xsi_type", "reason"),
    [
        ("Bogus", "unsupported xsi:type Bogus"),
        ("x:DERControlList", "is not a 2030.5 type"),
    ],
)
def test_notification_with_a_bad_xsi_type_is_refused(xsi_type: str, reason: str) -> None:
    body = _notification_with_type(xsi_type, ' xmlns:x="urn:evil"')
    with pytest.raises(Sep2InputError, match=reason):
        RESOURCE_TYPES["Notification"].from_xml(body)


def test_notification_resource_without_xsi_type_is_refused() -> None:
    body = _notification_with_type("DERControlList").replace(b'xsi:type="DERControlList" ', b"")
    with pytest.raises(Sep2InputError, match="missing xsi:type"):
        RESOURCE_TYPES["Notification"].from_xml(body)


# --- serialization refuses what the schema cannot carry ----------------------------------------


def _fields(model: Any) -> dict[str, Any]:
    return {attr: getattr(model, attr) for attr, _ in specs_of(type(model))}


@pytest.mark.parametrize(
    ("model", "change"),
    [
        (DERControlBase(), {"op_mod_fixed_w": 10_001}),
        (DERControlBase(), {"op_mod_energize": 1}),
        (
            EventStatus(current_status=1, date_time=0, potentially_superseded=False),
            {"reason": "r" * 193},
        ),
        (DateTimeInterval(duration=0, start=0), {"duration": -1}),
    ],
)
def test_values_outside_their_type_cannot_be_serialized(model: Any, change: dict[str, Any]) -> None:
    control = populated(DERControl)
    if isinstance(model, DERControlBase):
        control = DERControl(**{**_fields(control), "der_control_base": DERControlBase(**change)})
    elif isinstance(model, EventStatus):
        status = EventStatus(**{**_fields(model), **change})
        control = DERControl(**{**_fields(control), "event_status": status})
    else:
        control = DERControl(
            **{**_fields(control), "interval": DateTimeInterval(**{**_fields(model), **change})}
        )
    with pytest.raises(Sep2ValueError):
        control.to_xml()


def test_identifiers_must_be_upper_case_hex_of_whole_bytes() -> None:
    response = minimal(Response)
    for bad in ("abc", "ab", "", "XYZ1"):
        with pytest.raises(Sep2ValueError):
            Response(end_device_lfdi=response.end_device_lfdi, subject=bad).to_xml()


def test_a_curve_without_points_cannot_be_serialized() -> None:
    with pytest.raises(Sep2ValueError, match="curve_data is required"):
        DERCurve(**{**_fields(minimal(DERCurve)), "curve_data": ()}).to_xml()


def test_errors_belong_to_the_firmware_tree() -> None:
    assert issubclass(Sep2InputError, GatekeeperError)
    assert issubclass(Sep2ValueError, GatekeeperError)
