"""An independent check of what goes over the wire: every body the server sends in the profile
tree (a session over TLS, the vehicle's data read back, a Notification) and every body the
vehicle simulator sends parse with the pydantic-xml models of the ``envoy-schema`` package
(PyPI, the dev extra), a reading of the IEEE 2030.5-2018 schema written by others.

Where envoy-schema departs from the standard it is named here and the test works around the
library, never our output:

- its DERCapability requires ``csipaus:doeModesSupported``, a CSIP-AUS extension that is not
  part of IEEE 2030.5; the check uses a subclass in which that element is optional;
- its ``subscriptionURI`` type also accepts a local path, where the schema says the URI SHALL
  be absolute; the check asserts the absolute form itself;
- it has no models of SelfDevice, DeviceInformation, PowerStatus, DERCurve(List): those bodies
  are not checked here (the element-order golden tests and the SEP2_SCHEMA_PATH tests cover
  them);
- it matches elements in any order and ignores ones it does not know, so it checks presence,
  types and required attributes, not order (that is the golden tests' job).
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

import pytest
from envoy_schema.server.schema.sep2 import (
    der,
    device_capability,
    end_device,
    function_set_assignments,
    metering_mirror,
    primitive_types,
    pub_sub,
    response,
    time,
)
from lxml import etree
from pydantic_xml import BaseXmlModel, element

from firmware.sep2.control import DERControlList
from firmware.sep2.notify import SubscriptionNotifier
from firmware.sep2.pubsub import Notification
from tests.integration.test_pev_simulator import CERTIFIED_4Q, record_parsed_bodies, session
from tests.integration.test_sep2_response_rules import crawl, populate
from tests.integration.test_sep2_server import Bench, pev_lfdi, run
from tests.integration.test_sep2_server import pki as pki  # the module's fixture

pytestmark = pytest.mark.integration


class DERCapability(der.DERCapability, tag="DERCapability"):
    """envoy-schema's DERCapability with its CSIP-AUS element optional, as 2030.5 has it."""

    doeModesSupported: primitive_types.HexBinary8 | None = element(ns="csipaus", default=None)


ENVOY: dict[str, type[BaseXmlModel]] = {
    "DeviceCapability": device_capability.DeviceCapabilityResponse,
    "Time": time.TimeResponse,
    "EndDeviceList": end_device.EndDeviceListResponse,
    "EndDevice": end_device.EndDeviceResponse,
    "DERList": der.DERListResponse,
    "DER": der.DER,
    "DERCapability": DERCapability,
    "DERSettings": der.DERSettings,
    "DERAvailability": der.DERAvailability,
    "DERStatus": der.DERStatus,
    "FunctionSetAssignmentsList": function_set_assignments.FunctionSetAssignmentsListResponse,
    "FunctionSetAssignments": function_set_assignments.FunctionSetAssignmentsResponse,
    "DERProgramList": der.DERProgramListResponse,
    "DERProgram": der.DERProgramResponse,
    "DefaultDERControl": der.DefaultDERControl,
    "DERControlList": der.DERControlListResponse,
    "DERControl": der.DERControlResponse,  # envoy's name for the DERControl document
    "SubscriptionList": pub_sub.SubscriptionListResponse,
    "Subscription": pub_sub.Subscription,
    "Notification": pub_sub.Notification,
    "ResponseSetList": response.ResponseSetList,
    "ResponseSet": response.ResponseSet,
    "ResponseList": response.ResponseListResponse,
    "Response": response.Response,
    "DERControlResponse": response.DERControlResponse,
    "MirrorUsagePointList": metering_mirror.MirrorUsagePointListResponse,
    "MirrorUsagePoint": metering_mirror.MirrorUsagePointRequest,
    "MirrorMeterReading": metering_mirror.MirrorMeterReadingRequest,
}
NO_ENVOY_MODEL = {"SelfDevice", "DeviceInformation", "PowerStatus", "DERCurveList", "DERCurve"}


def check(body: bytes) -> str:
    """Parse ``body`` with envoy-schema's model of its document element; returns the tag."""
    tag = etree.QName(etree.fromstring(body)).localname
    if tag in NO_ENVOY_MODEL:
        return tag
    model = ENVOY[tag].from_xml(body)  # raises on a missing element or a bad value
    if isinstance(model, pub_sub.Notification):
        parts = urlsplit(str(model.subscriptionURI))
        assert parts.scheme == "https" and parts.netloc, "absolute, as the schema requires"
    return tag


def test_every_body_the_server_sends_parses_with_envoy_schema(pki: Any) -> None:
    owner = pev_lfdi(pki)
    bodies: dict[str, bytes] = {}

    async def scenario(bench: Bench) -> None:
        async with bench.client() as pev:
            await populate(bench, pev, owner)
            bodies.update(await crawl(bench, pev))
        bodies["notification"] = await _notification(bench, owner)

    run(pki, scenario)
    tags = {path: check(body) for path, body in bodies.items()}
    # populate posts DERControlResponses, so a plain Response is never read back
    assert set(ENVOY) - {"Response"} <= set(tags.values()), "every model used"


async def _notification(bench: Bench, owner: str) -> bytes:
    """The Notification the EVSE builds for the subscription ``populate`` made (delivery is
    replaced by a recorder: what is checked is the body)."""
    sent: list[Notification] = []

    async def recorder(uri: str, note: Notification, lfdi: str) -> None:
        sent.append(note)

    notifier = SubscriptionNotifier(ssl.create_default_context())
    notifier._deliver = recorder  # type: ignore[method-assign]
    record = bench.store.get(owner)
    assert record is not None
    target = "/edev/0/derp/0/derc"
    controls = bench.server.handlers.site.controls(record)
    listed = DERControlList(href=target, all=len(controls), results=len(controls),
                            der_controls=controls)  # fmt: skip
    assert notifier.changed(record, target, listed) == 1
    await asyncio.sleep(0)  # the delivery task runs
    await notifier.close()
    (note,) = sent
    return note.to_xml()


def test_every_body_the_simulator_sends_parses_with_envoy_schema(
    pki: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    received = record_parsed_bodies(monkeypatch)
    report, _ = session(pki.directory, replace(CERTIFIED_4Q, heartbeats=2), duration_s=2.5)
    assert report.ok, report.summary()
    tags = {check(body) for body in received}
    sent = {"DERSettings", "DERCapability", "DERAvailability", "DERStatus", "DERControlResponse",
            "MirrorUsagePoint", "MirrorMeterReading", "Subscription"}  # fmt: skip
    assert sent <= tags, tags
