"""The 2030.5 side of the daemon as one part: the server, the per-vehicle store, the
notifier and the DNS-SD announcement, built from the config.

It reports what vehicles send as ``PevEvent``s and takes one decision back:
``set_energize(lfdi, value)``, the DefaultDERControl.opModEnergize that vehicle sees
(subscribers are notified). Credentials that cannot be used, or a port that is taken, stop
the start with a ``ConfigError`` naming the key: the daemon refuses to run half-configured.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives.serialization import Encoding

from firmware.daemon.config import Config
from firmware.errors import ConfigError, GatekeeperError
from firmware.logs import log_event
from firmware.plc.config import PLC_MOCK
from firmware.sep2 import paths
from firmware.sep2.clock import TimeQuality
from firmware.sep2.control import DERControlList
from firmware.sep2.discovery import Announcement, Discovery, DiscoveryError
from firmware.sep2.functions import Mode, SiteFunction, incompatible, replaced
from firmware.sep2.identity import PkiError, lfdi, load_certificate, sfdi
from firmware.sep2.notify import SubscriptionNotifier
from firmware.sep2.server import Sep2Server, ServerSettings
from firmware.sep2.site import IssuedControl, SiteResources
from firmware.sep2.store import PevEvent, PevRecord, Sep2Store
from firmware.sep2.tls import PeerIdentity, TlsError, client_context, probe_ccm8

logger = logging.getLogger(__name__)


class FunctionRefused(GatekeeperError):
    """A run-time change that would leave an unpublishable set; one line, nothing changed."""


def credentials(config: Config) -> tuple[Path, Path, Path]:
    """(ca_file, cert_file, key_file): the loader requires all three when sep2.enabled."""
    tls = config.tls
    assert tls.ca_file is not None and tls.cert_file is not None and tls.key_file is not None
    return tls.ca_file, tls.cert_file, tls.key_file


def evse_identity(config: Config) -> PeerIdentity:
    path = config.tls.cert_file
    assert path is not None  # the loader requires it when sep2.enabled
    try:
        der = load_certificate(path).public_bytes(Encoding.DER)
    except PkiError as err:
        raise ConfigError([f"tls.cert_file: {err}"]) from err
    value = lfdi(der)
    return PeerIdentity(value, sfdi(value), der, None)


class Sep2Service:
    def __init__(
        self,
        config: Config,
        on_event: Callable[[PevEvent], None] = lambda event: None,
        clock_ns: Callable[[], int] = time.monotonic_ns,
        host: str | None = None,
        time_quality: TimeQuality | None = None,
    ) -> None:
        """``host``: the address to listen on, when not ``[sep2] host`` as written (the
        EVSE's address on the PLC link for ``host = "plc"``). ``time_quality``: the Time
        resource's quality (the daemon's clock watch; by default the kernel, asked anew)."""
        self.config = config
        self.evse = evse_identity(config)
        self.site = SiteResources(config.site, self.evse.lfdi, clock_ns=clock_ns)
        self.store = Sep2Store(on_event)
        sep2 = config.sep2
        self.host = host or sep2.host
        settings = ServerSettings(self.host, sep2.port, *credentials(config))
        self.server = Sep2Server(settings, self.site, self.store, self.evse, clock_ns,
                                 time_quality=time_quality)  # fmt: skip
        self.notifier: SubscriptionNotifier | None = None
        self.discovery: Discovery | None = None

    async def start(self) -> None:
        # lxml is imported by the first document parsed or made (firmware.sep2.xml): load it
        # now, so that the server's footprint is known at start and no request waits for it
        import lxml.etree  # noqa: F401

        sep2 = self.config.sep2
        try:
            ciphers = probe_ccm8()
            self.notifier = SubscriptionNotifier(client_context(*credentials(self.config)))
            await self.server.start()
        except TlsError as err:
            raise ConfigError([f"tls: {err}"]) from err
        except OSError as err:
            where = f"[{self.host}]:{sep2.port}"
            raise ConfigError([f"sep2.port: cannot listen on {where}: {err.strerror}"]) from err
        log_event(logger, "sep2.tls", ciphers=ciphers, seclevel0="@SECLEVEL=0" in ciphers,
                  evse_lfdi=self.evse.lfdi, evse_sfdi=self.evse.sfdi)  # fmt: skip
        await self._announce()

    async def _announce(self) -> None:
        ifname = self.config.plc_link_interface  # the PLC link only, never the site
        if not self.config.sep2.discovery or ifname in (None, PLC_MOCK):
            log_event(logger, "sep2.discovery_off", plc=ifname or "none")
            return
        assert ifname is not None
        self.discovery = Discovery(Announcement(ifname, self.server.port, f"evse-{self.evse.sfdi}"))
        try:
            await self.discovery.start()
        except (DiscoveryError, OSError) as err:  # the server still answers a known address
            log_event(logger, "sep2.discovery_failed", logging.WARNING, error=str(err))
            self.discovery = None

    def set_energize(self, vehicle_lfdi: str, energize: bool) -> None:
        """The J3072 decision for one vehicle: DefaultDERControl.opModEnergize."""
        record = self.store.get(vehicle_lfdi)
        if record is None or record.energize == energize:
            return
        record.energize = energize
        log_event(logger, "sep2.energize", lfdi=vehicle_lfdi, value=energize)
        if self.notifier is not None:
            href = paths.under(record.n, paths.DEFAULT_CONTROL)
            self.notifier.changed(record, href, self.site.default_control(record))

    def change_function(self, function: SiteFunction) -> SiteFunction | None:
        """The site owner puts ``function`` in effect at run time: refused (FunctionRefused,
        nothing changed) unless the whole set stays publishable; otherwise every running
        session gets a superseding DERControl and its subscribers a notification. Returns the
        function it replaced, if any."""
        functions, _ = replaced(self.site.functions, function)
        problems = incompatible(functions, self.config.site.enter_service)
        if problems:
            raise FunctionRefused(problems[0].removeprefix("site.functions: "))
        records = self.store.records()
        old = self.site.change(function, records)
        log_event(logger, "sep2.control_changed", mode=function.mode.value,
                  sessions=sum(r.program is not None for r in records))  # fmt: skip
        for record in records:
            if record.program is not None:
                self._notify_controls(record)
        return old

    def dispatch(self, vehicle_lfdi: str, function: SiteFunction, set_by: str) -> IssuedControl:
        """A superseding DERControl for one vehicle's session only (a CSMS's dispatch); the
        site's functions stay as they are. The caller checked the vehicle is authorized."""
        record = self.store.get(vehicle_lfdi)
        if record is None:
            raise FunctionRefused(f"no 2030.5 session for {vehicle_lfdi}")
        issued = self.site.supersede(record, function, set_by)
        log_event(logger, "sep2.control_dispatched", mode=function.mode.value,
                  lfdi=vehicle_lfdi, mrid=issued.mrid, set_by=set_by)  # fmt: skip
        self._notify_controls(record)
        return issued

    def restore(self, vehicle_lfdi: str, mode: Mode) -> IssuedControl | None:
        """One vehicle's session back to the site's own function of ``mode``."""
        record = self.store.get(vehicle_lfdi)
        if record is None or record.program is None:
            return None
        issued = self.site.restore(record, mode)
        log_event(logger, "sep2.control_restored", mode=mode.value, lfdi=vehicle_lfdi,
                  mrid=issued.mrid if issued else "withdrawn")  # fmt: skip
        self._notify_controls(record)
        return issued

    def _notify_controls(self, record: PevRecord) -> None:
        if self.notifier is None:
            return
        href = paths.under(record.n, paths.CONTROL_LIST)
        controls = self.site.controls(record)
        listed = DERControlList(href=href, subscribable=1, all=len(controls),
                                results=len(controls), der_controls=controls)  # fmt: skip
        self.notifier.changed(record, href, listed)

    async def stop(self) -> None:
        if self.discovery is not None:
            await self.discovery.stop()
        await self.server.stop()
        if self.notifier is not None:
            await self.notifier.close()
