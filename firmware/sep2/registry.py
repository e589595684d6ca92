"""Every 2030.5 resource the firmware models, by document element name.

Owns the answer to "is this a known element?" for the hardened parser and "which class is this
``xsi:type``?" for Notification. Adding a resource means adding it to ``RESOURCE_TYPES``.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache

from firmware.sep2.base import Resource
from firmware.sep2.control import DefaultDERControl, DERControl, DERControlList
from firmware.sep2.curve import DERCurve, DERCurveList
from firmware.sep2.der import DER, DERCapability, DERList, DERSettings
from firmware.sep2.der_status import DERAvailability, DERStatus
from firmware.sep2.device import (
    DeviceCapability,
    DeviceInformation,
    EndDevice,
    EndDeviceList,
    PowerStatus,
    SelfDevice,
    Time,
)
from firmware.sep2.fields import AnyResource
from firmware.sep2.metering import MirrorMeterReading, MirrorUsagePoint, MirrorUsagePointList
from firmware.sep2.model import Sep2Model, specs_of
from firmware.sep2.program import (
    DERProgram,
    DERProgramList,
    FunctionSetAssignments,
    FunctionSetAssignmentsList,
)
from firmware.sep2.pubsub import Notification, Subscription, SubscriptionList
from firmware.sep2.response import (
    DERControlResponse,
    Response,
    ResponseList,
    ResponseSet,
    ResponseSetList,
)

_ALL: tuple[type[Resource], ...] = (
    DeviceCapability,
    Time,
    SelfDevice,
    EndDevice,
    EndDeviceList,
    DeviceInformation,
    PowerStatus,
    DER,
    DERList,
    DERCapability,
    DERSettings,
    DERAvailability,
    DERStatus,
    FunctionSetAssignments,
    FunctionSetAssignmentsList,
    DERProgram,
    DERProgramList,
    DefaultDERControl,
    DERControl,
    DERControlList,
    DERCurve,
    DERCurveList,
    MirrorUsagePoint,
    MirrorUsagePointList,
    MirrorMeterReading,
    Response,
    DERControlResponse,
    ResponseList,
    ResponseSet,
    ResponseSetList,
    Subscription,
    SubscriptionList,
    Notification,
)
RESOURCE_TYPES: Mapping[str, type[Resource]] = {cls.TAG: cls for cls in _ALL}


def resource_type(tag: str) -> type[Resource] | None:
    """The model class whose document element (or ``xsi:type``) is ``tag``, if any."""
    return RESOURCE_TYPES.get(tag)


@cache
def known_element_names() -> frozenset[str]:
    """Every element name any model can contain, document elements included."""
    names: set[str] = set(RESOURCE_TYPES)
    pending: list[type[Sep2Model]] = list(_ALL)
    seen: list[type[Sep2Model]] = []
    while pending:
        cls = pending.pop()
        if cls in seen:
            continue
        seen.append(cls)
        for _, spec in specs_of(cls):
            if spec.attr:
                continue
            names.add(spec.name)
            if isinstance(spec.kind, type) and spec.kind is not AnyResource:
                pending.append(spec.kind)
    return frozenset(names)
