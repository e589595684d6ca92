"""The resources of the V2G-AC profile, one handler each (docs/v2g-ac-profile.md,
"Resources the EVSE serves").

``/dcap`` links to Time, SelfDevice, the EndDeviceList, the MirrorUsagePointList and the
Response sets, never to a DERProgramList. The EndDeviceList shows only the caller's own
EndDevice (no RegistrationLink); anything under another vehicle's ``/edev/<n>`` is a 404.
The PEV's PUTs are parsed strictly and stored; the site limits are read-only (405).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

from firmware.sep2 import paths
from firmware.sep2.base import Resource
from firmware.sep2.clock import ClockQuality, TimeQuality
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
from firmware.sep2.handlers_base import POLL_RATE_S, at, page
from firmware.sep2.handlers_lists import ListHandlers, xml
from firmware.sep2.site import SiteResources
from firmware.sep2.store import PevRecord, Sep2Store, SiteRead
from firmware.sep2.tls import PeerIdentity
from firmware.sep2.values import Link, ListLink
from firmware.sep2.xml import Sep2InputError

# PUT-able per-vehicle resources: tail -> (model, the store's field name)
PEV_RESOURCES: dict[str, tuple[type[Resource], str]] = {
    paths.DEVICE_INFORMATION: (DeviceInformation, "device_information"),
    paths.POWER_STATUS: (PowerStatus, "power_status"),
    paths.DER_CAPABILITY: (DERCapability, "der_capability"),
    paths.DER_SETTINGS: (DERSettings, "der_settings"),
    paths.DER_AVAILABILITY: (DERAvailability, "der_availability"),
    paths.DER_STATUS: (DERStatus, "der_status"),
}


class Handlers(ListHandlers):
    def __init__(
        self,
        site: SiteResources,
        store: Sep2Store,
        evse: PeerIdentity,
        clock_ns: Callable[[], int],
        wall_clock: Callable[[], float] = time.time,
        clock_quality: TimeQuality | None = None,
    ) -> None:
        super().__init__(site, store, clock_ns, wall_clock)
        self.evse = evse
        self.clock_quality: TimeQuality = clock_quality or ClockQuality()

    def register(self, router: web.UrlDispatcher) -> None:
        router.add_get(paths.DCAP, self.dcap)
        router.add_get(paths.TIME, self.time)
        router.add_get(paths.SELF_DEVICE, self.self_device)
        router.add_get(paths.SELF_DER_LIST, self.self_der_list)
        router.add_get(paths.SELF_DER, self.self_der)
        router.add_get(paths.SELF_DER_CAPABILITY, self.self_capability)
        router.add_get(paths.SELF_DER_SETTINGS, self.site_limits)
        router.add_get(paths.END_DEVICES, self.end_devices)
        router.add_get("/edev/{n:\\d+}", self.end_device)
        router.add_get("/edev/{n:\\d+}/der", self.der_list)
        router.add_get("/edev/{n:\\d+}/der/0", self.der)
        for tail in PEV_RESOURCES:
            router.add_get(f"/edev/{{n:\\d+}}/{tail}", self.pev_get)
            router.add_put(f"/edev/{{n:\\d+}}/{tail}", self.pev_put)
        router.add_post(f"/edev/{{n:\\d+}}/{paths.DER_STATUS}", self.pev_put)  # the heartbeat
        self.register_lists(router)

    # --- the EVSE's own resources ------------------------------------------------------

    async def dcap(self, request: web.Request) -> web.Response:
        self.record(request)
        return xml(
            DeviceCapability(
                href=paths.DCAP,
                poll_rate=POLL_RATE_S,
                response_set_list_link=ListLink(href=paths.RESPONSE_SETS, all=1),
                time_link=Link(href=paths.TIME),
                end_device_list_link=ListLink(href=paths.END_DEVICES, all=1),
                mirror_usage_point_list_link=ListLink(href=paths.MIRRORS),
                self_device_link=Link(href=paths.SELF_DEVICE),
            )
        )

    async def time(self, request: web.Request) -> web.Response:
        now = int(self.wall_clock())
        return xml(
            Time(
                href=paths.TIME,
                poll_rate=900,
                current_time=now,
                dst_end_time=0,
                dst_offset=0,
                dst_start_time=0,
                local_time=now,
                quality=self.clock_quality.quality(),
                tz_offset=0,
            )
        )

    async def self_device(self, request: web.Request) -> web.Response:
        return xml(
            SelfDevice(
                href=paths.SELF_DEVICE,
                der_list_link=ListLink(href=paths.SELF_DER_LIST, all=1),
                lfdi=self.evse.lfdi,
                sfdi=self.evse.sfdi,
                poll_rate=POLL_RATE_S,
            )
        )

    async def self_der_list(self, request: web.Request) -> web.Response:
        der = self._der(paths.SELF_DER, paths.SELF_DER_CAPABILITY, paths.SELF_DER_SETTINGS)
        ders, total = page(request, (der,))
        return xml(DERList(href=paths.SELF_DER_LIST, all=total, results=len(ders), ders=ders))

    async def self_der(self, request: web.Request) -> web.Response:
        return xml(self._der(paths.SELF_DER, paths.SELF_DER_CAPABILITY, paths.SELF_DER_SETTINGS))

    async def self_capability(self, request: web.Request) -> web.Response:
        return xml(self.site.capability())

    async def site_limits(self, request: web.Request) -> web.Response:
        """Step 1 of the session (§4.6.1): the PEV reads the site limits first."""
        self.store.note_read(self.record(request), SiteRead.SITE_LIMITS, self.clock_ns())
        return xml(self.site.settings(int(self.wall_clock())))

    # --- the vehicle's EndDevice -------------------------------------------------------

    async def end_devices(self, request: web.Request) -> web.Response:
        found, total = page(request, (self._end_device(self.record(request)),))
        return xml(EndDeviceList(href=paths.END_DEVICES, all=total, results=len(found),
                                 poll_rate=POLL_RATE_S, end_devices=found))  # fmt: skip

    async def end_device(self, request: web.Request) -> web.Response:
        return xml(self._end_device(self.mine(request)))

    async def der_list(self, request: web.Request) -> web.Response:
        n = self.mine(request).n
        ders, total = page(request, (self._pev_der(n),))
        href = paths.under(n, paths.DER_LIST)
        return xml(DERList(href=href, all=total, results=len(ders), ders=ders))

    async def der(self, request: web.Request) -> web.Response:
        return xml(self._pev_der(self.mine(request).n))

    async def pev_get(self, request: web.Request) -> web.Response:
        record = self.mine(request)
        tail = self._tail(request)
        model, field = PEV_RESOURCES[tail]
        value = getattr(record, field)
        if value is None:
            raise web.HTTPNotFound(text=f"no {model.TAG} yet: PUT it first")
        assert isinstance(value, Resource)
        return xml(at(value, paths.under(record.n, tail)))  # as PUT, with the href it has here

    async def pev_put(self, request: web.Request) -> web.Response:
        record = self.mine(request)
        model, field = PEV_RESOURCES[self._tail(request)]
        value: Any = model.from_xml(await request.read())
        if isinstance(value, DeviceInformation) and value.lfdi.upper() != record.lfdi:
            raise Sep2InputError("DeviceInformation lFDI is not the certificate's LFDI")
        self.store.put(record, field, value, self.clock_ns())
        return web.Response(status=204)

    # --- helpers -----------------------------------------------------------------------

    def _tail(self, request: web.Request) -> str:
        prefix = paths.edev(int(request.match_info["n"])) + "/"
        return request.path[len(prefix) :]

    def _end_device(self, record: PevRecord) -> EndDevice:
        n = record.n
        return EndDevice(
            href=paths.edev(n),
            der_list_link=ListLink(href=paths.under(n, paths.DER_LIST), all=1),
            device_information_link=Link(href=paths.under(n, paths.DEVICE_INFORMATION)),
            lfdi=record.lfdi,
            power_status_link=Link(href=paths.under(n, paths.POWER_STATUS)),
            sfdi=record.identity.sfdi,
            changed_time=record.created_at,
            enabled=True,
            function_set_assignments_list_link=ListLink(href=paths.under(n, paths.FSA_LIST), all=1),
            post_rate=POLL_RATE_S,
            subscription_list_link=ListLink(
                href=paths.under(n, paths.SUBSCRIPTIONS), all=len(record.subscriptions)
            ),
        )

    def _pev_der(self, n: int) -> DER:
        der = self._der(
            paths.under(n, paths.DER),
            paths.under(n, paths.DER_CAPABILITY),
            paths.under(n, paths.DER_SETTINGS),
        )
        return DER(
            href=der.href,
            der_availability_link=Link(href=paths.under(n, paths.DER_AVAILABILITY)),
            der_capability_link=der.der_capability_link,
            der_settings_link=der.der_settings_link,
            der_status_link=Link(href=paths.under(n, paths.DER_STATUS)),
        )

    @staticmethod
    def _der(href: str, capability: str, settings: str) -> DER:
        return DER(
            href=href,
            der_capability_link=Link(href=capability),
            der_settings_link=Link(href=settings),
        )
