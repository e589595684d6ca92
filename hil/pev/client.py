"""``PevClient``: one simulated vehicle's J3072 session against the EVSE's 2030.5 server.

Follows docs/v2g-ac-profile.md, "The session": mutual TLS, then everything by following
links from ``/dcap`` (the only path it knows): Time, its own EndDevice (exactly one listed),
the site limits first (§4.6.1), its own data (§4.6.2), the program and its controls with a
"received" and a "started" Response each (§4.7.1), its mirrored metering, then the heartbeat
phase (``hil.pev.heartbeat``). The profile decides what it says and how it behaves; any failure
ends the session as a ``PevError`` recorded in the ``PevReport``, a refused handshake as
``tls_failure``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from cryptography.hazmat.primitives.serialization import Encoding

from firmware.logs import log_event
from firmware.sep2.base import Resource
from firmware.sep2.control import DefaultDERControl, DERControl, DERControlList
from firmware.sep2.curve import DERCurve, DERCurveList
from firmware.sep2.der import DER, DERList, DERSettings
from firmware.sep2.device import DeviceCapability, EndDevice, EndDeviceList, SelfDevice, Time
from firmware.sep2.identity import PkiError, lfdi, load_certificate
from firmware.sep2.program import DERProgram, DERProgramList, FunctionSetAssignmentsList
from firmware.sep2.response import STATUS_RECEIVED, STATUS_STARTED
from firmware.sep2.site import EVENT_ACTIVE, watts
from firmware.sep2.tls import TlsError, client_context, server_context
from firmware.sep2.values import Link, ListLink
from hil.pev import documents
from hil.pev.errors import PevError, TlsHandshakeError
from hil.pev.heartbeat import HeartbeatPhase
from hil.pev.http import Sep2Http
from hil.pev.profiles import Profile
from hil.pev.report import EnergizeChange, PevReport, SessionLog, Step

logger = logging.getLogger(__name__)

DCAP = "/dcap"  # the one path a 2030.5 client may know (the DNS-SD TXT record's dcap=)
RESPONSE_BITS = ((0x01, STATUS_RECEIVED, "received"), (0x02, STATUS_STARTED, "started"))


@dataclass(slots=True)
class Links:
    """The EVSE's hrefs the session learnt by following links (never guessed)."""

    mirrors: str = ""
    subscriptions: str | None = None
    der_status: str = ""
    default_control: str = ""
    control_list: str = ""
    curve_list: str | None = None
    device_information: str | None = None


def href_of(link: Link | ListLink | None) -> str | None:
    return link.href if link is not None else None


def need(link: Link | ListLink | str | None, what: str) -> str:
    """The href of a link the session cannot do without."""
    href = link if isinstance(link, str) or link is None else link.href
    if not href:
        raise PevError(f"no {what}")
    return href


class PevClient:
    def __init__(
        self,
        server_url: str,
        pki_dir: Path,
        profile: Profile,
        *,
        notify_host: str | None = None,  # default: our address on the link to the EVSE
        on_step: Callable[[Step], None] | None = None,
        on_energize: Callable[[EnergizeChange], None] | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.server_url = server_url
        self.pki_dir = Path(pki_dir)
        self.profile = profile
        self.notify_host = notify_host
        self.wall_clock = wall_clock
        self.log = SessionLog()
        if on_step is not None:
            self.log.on_step = on_step
        if on_energize is not None:
            self.log.on_energize = on_energize
        self.links = Links()
        self.lfdi = ""
        self._offset_s = 0  # the EVSE's Time minus ours: documents carry the EVSE's time
        self._answered: set[str] = set()
        self._stop = asyncio.Event()
        self.silent = False  # True: no more heartbeats from now (a test picks the moment)
        self._http: Sep2Http | None = None
        self.set_max_w: float | None = None  # what we PUT in our DERSettings
        self.fixed_w_pct: float | None = None  # the dispatch (opModFixedW), % of setMaxW
        self.max_lim_w_pct: float | None = None  # the cap (opModMaxLimW), % of setMaxW

    @property
    def dispatched_w(self) -> float:
        """What this vehicle discharges: the dispatch, once energized (§4.8.2), capped by
        opModMaxLimW; else 0."""
        history = self.log.energize_history
        energized = bool(history) and history[-1].energize is True
        if not energized or self.fixed_w_pct is None or self.set_max_w is None:
            return 0.0
        percent = min(self.fixed_w_pct, self.max_lim_w_pct or 100.0)
        return max(0.0, percent / 100 * self.set_max_w)

    def stop(self) -> None:
        """End the heartbeat phase now (the session then completes normally)."""
        self._stop.set()

    def now(self) -> int:
        return int(self.wall_clock()) + self._offset_s

    @property
    def http(self) -> Sep2Http:
        if self._http is None:
            raise PevError("not connected")
        return self._http

    async def run(self, duration_s: float | None = None) -> PevReport:
        """The whole session; the heartbeat phase lasts ``duration_s`` (None: until stop())."""
        completed = False
        phase: HeartbeatPhase | None = None
        self.log.started_s = time.monotonic()
        try:
            context, listening = self._credentials()
            self._http = Sep2Http(self.server_url, context, self.log,
                                  per_request=self.profile.connection_per_request)  # fmt: skip
            self.log.evse_lfdi, local = await self.http.handshake()
            async with self.http:
                site = await self._setup()
                phase = HeartbeatPhase(self, site, listening, self.notify_host or local)
                await phase.start_watching()
                await self.read_controls("read")
                await self._mirror(site)
                await phase.run(duration_s, self._stop)
            completed = True
        except TlsHandshakeError as err:
            self.log.tls_failure = str(err)
        except PevError as err:
            self.log.errors.append(str(err))
        finally:
            if phase is not None:
                await phase.close()
        report = self.log.report(
            self.profile.name, self.server_url, completed, self.profile.expect_tls_failure
        )
        log_event(
            logger,
            "pev.done",
            profile=self.profile.name,
            ok=report.ok,
            heartbeats=report.heartbeats_sent,
            errors=len(report.errors),
        )
        return report

    def _credentials(self) -> tuple[ssl.SSLContext, ssl.SSLContext]:
        """Our TLS client context, and the server one for our notification listener."""
        serca = self.pki_dir / "serca.pem"
        cert, key = self.profile.cert_file(self.pki_dir), self.profile.key_file(self.pki_dir)
        try:
            self.lfdi = lfdi(load_certificate(cert).public_bytes(Encoding.DER))
            self.log.lfdi = self.lfdi
            return client_context(serca, cert, key), server_context(serca, cert, key)
        except (PkiError, TlsError) as err:
            raise PevError(f"credentials: {err}") from None

    # --- §4.6.1: find ourselves and the site limits ---------------------------------------

    async def _setup(self) -> DERSettings:
        http = self.http
        dcap = await http.get(DCAP, DeviceCapability, "DeviceCapability")
        self.links.mirrors = need(dcap.mirror_usage_point_list_link, "MirrorUsagePointListLink")
        clock = await http.get(need(dcap.time_link, "TimeLink"), Time, "Time")
        self._offset_s = clock.current_time - int(self.wall_clock())
        edev = await self._own_end_device(need(dcap.end_device_list_link, "EndDeviceListLink"))
        site = await self._site_limits(need(dcap.self_device_link, "SelfDeviceLink"))
        await self._put_pev_data(edev, site)
        await self._read_program(edev)
        return site

    async def _own_end_device(self, href: str) -> EndDevice:
        listed = (await self.http.get(href, EndDeviceList, "EndDeviceList")).end_devices
        if not listed:
            raise PevError("EndDeviceList is empty: not authorized, charging only (§4.5)")
        if len(listed) != 1 or (listed[0].lfdi or "").upper() != self.lfdi:
            lfdis = ", ".join(d.lfdi or "?" for d in listed)
            raise PevError(f"EndDeviceList must list only our EndDevice {self.lfdi}: {lfdis}")
        edev = listed[0]
        self.links.subscriptions = href_of(edev.subscription_list_link)
        return edev

    async def _site_limits(self, href: str) -> DERSettings:
        sdev = await self.http.get(href, SelfDevice, "SelfDevice")
        if sdev.lfdi and self.log.evse_lfdi and sdev.lfdi.upper() != self.log.evse_lfdi:
            raise PevError(f"SelfDevice lFDI {sdev.lfdi} is not the EVSE certificate's")
        der = await self._der(need(sdev.der_list_link, "SelfDevice DERListLink"), "EVSE")
        href = need(der.der_settings_link, "EVSE DERSettingsLink")
        return await self.http.get(href, DERSettings, "site limits (DERSettings)")

    async def _der(self, href: str, whose: str) -> DER:
        ders = (await self.http.get(href, DERList, f"{whose} DERList")).ders
        if not ders:
            raise PevError(f"{whose} DERList is empty")
        return await self.http.get(need(ders[0].href, f"{whose} DER href"), DER, f"{whose} DER")

    # --- §4.6.2: the PEV's data -----------------------------------------------------------

    async def _put_pev_data(self, edev: EndDevice, site: DERSettings) -> None:
        der = await self._der(need(edev.der_list_link, "EndDevice DERListLink"), "PEV")
        links, p, now = self.links, self.profile, self.now()
        links.der_status = need(der.der_status_link, "DERStatusLink")
        links.device_information = href_of(edev.device_information_link)
        self.set_max_w = watts(documents.der_settings(p, site, now).set_max_w)
        writes: tuple[tuple[Link | None, str, Resource], ...] = (
            (der.der_settings_link, "DERSettings", documents.der_settings(p, site, now)),
            (
                edev.device_information_link,
                "DeviceInformation",
                documents.device_information(p, self.lfdi, now),
            ),
            (der.der_capability_link, "DERCapability", documents.der_capability(p)),
            (
                der.der_availability_link,
                "DERAvailability",
                documents.der_availability(p, site, now),
            ),
            (edev.power_status_link, "PowerStatus", documents.power_status(p, site, now)),
        )
        for link, what, body in writes:  # §4.6.2, in the order the profile lists them
            await self.http.put(need(link, f"{what}Link"), body, f"PUT {what}")

    async def report_ism(self, ism: str) -> None:
        """PUT DeviceInformation again with another ISM number (an attacker's trick, or a
        vehicle changing what it says mid-session)."""
        self.profile = replace(self.profile, ism=ism)
        info = documents.device_information(self.profile, self.lfdi, self.now())
        await self.http.put(need(self.links.device_information, "DeviceInformationLink"), info,
                            "PUT DeviceInformation (again)")  # fmt: skip

    # --- §4.6.3 / §4.7.1: the program, its controls and our responses ---------------------

    async def _read_program(self, edev: EndDevice) -> None:
        http = self.http
        href = need(edev.function_set_assignments_list_link, "FunctionSetAssignmentsListLink")
        fsas = await http.get(href, FunctionSetAssignmentsList, "FSA list")
        if len(fsas.function_set_assignments) != 1:
            raise PevError(f"{len(fsas.function_set_assignments)} FSAs listed, not exactly one")
        fsa_href = need(fsas.function_set_assignments[0].href, "FSA href")
        fsa = await http.get(fsa_href, type(fsas.function_set_assignments[0]), "FSA")
        programs = await http.get(
            need(fsa.der_program_list_link, "DERProgramListLink"), DERProgramList, "DERProgramList"
        )
        if not programs.der_programs:
            raise PevError("DERProgramList is empty")
        program_href = need(programs.der_programs[0].href, "DERProgram href")
        program = await http.get(program_href, DERProgram, "DERProgram")
        self.links.default_control = need(program.default_der_control_link, "DefaultDERControlLink")
        self.links.control_list = need(program.der_control_list_link, "DERControlListLink")
        self.links.curve_list = href_of(program.der_curve_list_link)

    async def read_default_control(self, via: str, routine: bool = False) -> DefaultDERControl:
        name = "DefaultDERControl" + suffix(via)
        default = await self.http.get(self.links.default_control, DefaultDERControl, name, routine)
        self.log.saw_energize(default.der_control_base.op_mod_energize, via)
        return default

    async def read_controls(self, via: str) -> None:
        """DefaultDERControl, the DERControls and their curves; respond to the new ones."""
        await self.read_default_control(via)
        await self.follow_controls(via)

    async def follow_controls(self, via: str, routine: bool = False) -> None:
        """The DERControlList; when it holds controls we have not answered (a change, or
        the first read), their curves, our Responses, and the values we now follow. Only
        active controls count: a superseded one is history."""
        http = self.http
        links, more = self.links, suffix(via)
        listed = await http.get(links.control_list, DERControlList, "DERControlList" + more,
                                routine)  # fmt: skip
        active = [c for c in listed.der_controls if _active(c)]
        new = [c for c in active if c.mrid not in self._answered]
        if not new:
            return
        if links.curve_list:
            await http.get(links.curve_list, DERCurveList, "DERCurveList" + more)
        for control in new:
            for curve in curve_links(control):
                name = f"DERCurve of {control.description or '-'}{more}"
                await http.get(curve, DERCurve, name)
        for control in new:
            await self._respond(control)
            if via != "read":
                self.log.controls_followed.append(control.description or "-")
                self.log.on_control(control.description or "-")
        fixed = [c.der_control_base.op_mod_fixed_w for c in active]
        dispatch = [value for value in fixed if value is not None]
        self.fixed_w_pct = dispatch[0] / 100 if dispatch else None
        caps = [c.der_control_base.op_mod_max_lim_w for c in active]
        cap = [value for value in caps if value is not None]
        self.max_lim_w_pct = cap[0] / 100 if cap else None

    async def _respond(self, control: DERControl) -> None:
        if control.mrid in self._answered:
            return
        if not self.profile.respond:
            self._answered.add(control.mrid)  # seen, and left unanswered
            return
        for bit, status, word in RESPONSE_BITS:
            if (control.response_required or 0) & bit:
                href = need(control.reply_to, f"replyTo in DERControl {control.mrid}")
                response = documents.control_response(self.lfdi, control.mrid, status, self.now())
                await self.http.post(href, response, f"Response {word} {control.description}")
                self.log.responses_posted += 1
        self._answered.add(control.mrid)

    # --- mirrored metering ----------------------------------------------------------------

    async def _mirror(self, site: DERSettings) -> None:
        point = documents.mirror_usage_point(self.lfdi)
        location = await self.http.post(self.links.mirrors, point, "MirrorUsagePoint")
        href = need(location, "Location for the MirrorUsagePoint")
        for reading in documents.meter_readings(self.profile, site, self.lfdi, self.now()):
            await self.http.post(href, reading, f"MirrorMeterReading {reading.description}")


def _active(control: DERControl) -> bool:
    status = control.event_status
    return status is None or status.current_status == EVENT_ACTIVE


def suffix(via: str) -> str:
    """How a step's name says why it was made again: " (poll)", " (wake)", …"""
    return "" if via == "read" else f" ({via})"


def curve_links(control: DERControl) -> list[str]:
    """The DERCurve hrefs a control's modes link to (volt-var, ride-through, …)."""
    base = control.der_control_base
    values = (getattr(base, f.name) for f in dataclasses.fields(base))
    return [v.href for v in values if isinstance(v, Link)]
