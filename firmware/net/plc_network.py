"""The PLC link's IP side in the daemon: the EVSE's address and router advertisements on the
PLC interface, and the site bridge gate, which follows the J3072 authorization.

At start it removes a bridge and filter left by a crash, takes ``<prefix>::1`` on the PLC
interface (the ULA /64 from ``[bridge] prefix`` or derived from the EVSE's certificate) and
advertises the prefix there (``firmware.net``). While a session is authorized (and the policy
allows it) the gate joins the PLC and site interfaces; on revocation, unplug, link loss or
exit it separates them. The netlink and ``nft`` calls block, so they run in a worker thread,
one at a time, always towards the latest wish: the loop is never held up by them.

It does not decide anything: ``follow`` is told whether the session is authorized.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import subprocess
from collections.abc import Callable, Coroutine
from ipaddress import IPv6Interface, IPv6Network
from typing import Any

from firmware.daemon.config import Config
from firmware.errors import ConfigError
from firmware.logs import log_event
from firmware.net.addressing import AddressingError, assign_evse_address, evse_interface
from firmware.net.bridge import (
    BRIDGE_NAME,
    TOOL_TIMEOUT_S,
    BridgeError,
    BridgeGate,
    LinuxBridge,
    MockBridge,
    one_line,
    tool_path,
)
from firmware.net.config import BridgeBackend, BridgePolicy, effective_prefix
from firmware.net.isolation import TABLE as ISOLATION_TABLE
from firmware.net.isolation import IsolationError, isolation_ruleset
from firmware.net.ra import RaSender

logger = logging.getLogger(__name__)

RETRY_S = 5.0  # a missing PLC netdev is looked for again this often (as the PLC stack does)

Watched = Callable[[Coroutine[Any, Any, None], str], "asyncio.Task[None]"]


class PlcLink:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.prefix: IPv6Network | None = None
        self.address: IPv6Interface | None = None
        self.gate: BridgeGate | None = None
        self._sep2_port: int | None = None  # known once isolate() was told it
        self._ra: RaSender | None = None
        self._wanted: tuple[bool, str] = (False, "start")  # (bridged, session or reason)
        self._applied = False
        self._kick = asyncio.Event()

    async def start(self, watched: Watched) -> None:
        bridge = self.config.bridge
        plc_if = self.config.plc_link_interface
        if plc_if is None and bridge.backend is BridgeBackend.LINUX:
            if bridge.site_interface is not None:
                raise ConfigError(["bridge.site_interface: needs [bridge] plc_interface "
                                   "(or a [plc] interface netdev) to bridge from"])  # fmt: skip
            log_event(logger, "bridge.off", reason="no PLC link interface")
            return
        if plc_if is not None:  # before the link has an address: never a moment unfiltered
            sep2 = self.config.sep2
            await self.isolate(sep2.port if sep2.enabled and sep2.port else None)
        self.prefix = effective_prefix(bridge, _identity(self.config))
        self.address = evse_interface(self.prefix)
        if bridge.backend is BridgeBackend.MOCK:
            self._start_mock(plc_if)
        else:
            assert plc_if is not None
            await self._start_linux(plc_if, watched)
        if self.gate is not None:
            watched(self._follow(), "net.bridge")
        log_event(logger, "bridge.configured", backend=bridge.backend.value,
                  plc=plc_if or "mock", site=bridge.site_interface or "none",
                  policy=bridge.policy.value, prefix=str(self.prefix),
                  address=str(self.address.ip))  # fmt: skip

    def _start_mock(self, plc_if: str | None) -> None:
        bridge = self.config.bridge
        if bridge.may_bridge:
            assert self.prefix is not None and bridge.site_interface is not None
            self.gate = MockBridge(plc_if or "plc", bridge.site_interface, self.prefix,
                                   bridge.allowed_destinations, bridge.multicast_pps)  # fmt: skip
            sep2 = self.config.sep2
            if sep2.enabled and sep2.port:
                self.gate.keep_local(sep2.port)

    async def _start_linux(self, plc_if: str, watched: Watched) -> None:
        bridge, prefix = self.config.bridge, self.prefix
        assert prefix is not None
        if bridge.site_interface is not None:
            try:
                gate = LinuxBridge(plc_if, bridge.site_interface, prefix,
                                   bridge.allowed_destinations, bridge.multicast_pps)  # fmt: skip
                leftover = await asyncio.to_thread(gate.cleanup_leftovers)
            except BridgeError as err:
                raise ConfigError([f"bridge: {err}"]) from err
            log_event(logger, "bridge.isolated_at_start", leftover_removed=leftover)
            if bridge.policy is BridgePolicy.AFTER_AUTHORIZATION:
                self.gate = gate
                if self._sep2_port is not None:
                    gate.keep_local(self._sep2_port)
        if await self._address(plc_if, prefix, quiet=False):
            self._advertise(plc_if, watched)
        else:  # like the PLC stack: the netdev may appear later (the modem's driver loading)
            watched(self._retry(plc_if, watched), "net.address")

    async def _address(self, plc_if: str, prefix: IPv6Network, quiet: bool) -> bool:
        try:
            await asyncio.to_thread(assign_evse_address, plc_if, prefix)
        except AddressingError as err:
            if not quiet:
                log_event(logger, "plc_link.unavailable", logging.WARNING, interface=plc_if,
                          error=str(err), retry_s=RETRY_S)  # fmt: skip
            return False
        return True

    async def _retry(self, plc_if: str, watched: Watched) -> None:
        assert self.prefix is not None
        while not await self._address(plc_if, self.prefix, quiet=True):
            await asyncio.sleep(RETRY_S)
        log_event(logger, "plc_link.addressed", interface=plc_if, address=str(self.address))
        self._advertise(plc_if, watched)

    def _advertise(self, plc_if: str, watched: Watched) -> None:
        assert self.prefix is not None
        self._ra = RaSender(plc_if, self.prefix, self.config.bridge.ra_interval_s)
        watched(self._ra.run(), "net.ra")

    def follow(self, authorized: bool, session: str, reason: str) -> None:
        """The gate's word after each loop step: bridged exactly while authorized."""
        if self.gate is None:
            return
        wanted = (True, session) if authorized else (False, reason)
        if wanted[0] != self._wanted[0]:
            self._wanted = wanted
            self._kick.set()

    async def _follow(self) -> None:
        while True:
            await self._kick.wait()
            self._kick.clear()
            await self._apply()

    async def _apply(self) -> None:
        gate = self.gate
        bridged, why = self._wanted
        if gate is None or bridged == self._applied:
            return
        try:
            if bridged:
                await asyncio.to_thread(gate.open, why)
            else:
                await asyncio.to_thread(gate.close, why)
        except BridgeError as err:
            log_event(logger, "bridge.failed", logging.ERROR, action="open" if bridged else
                      "close", error=str(err))  # fmt: skip
            if bridged:  # never leave a half-open bridge: separate again
                await asyncio.to_thread(gate.close, f"open failed: {err}")
            return
        self._applied = bridged
        if bridged:
            log_event(logger, "bridge.opened", session=why)
        else:
            log_event(logger, "bridge.closed", reason=why)

    async def isolate(self, sep2_port: int | None) -> None:
        """The PLC link's input filter and no-routing rule (``firmware.net.isolation``), for
        the daemon's life: a stopped daemon leaves the link isolated. Installed before the link
        gets its address, and again once a 2030.5 server on port 0 has its port. Refused →
        the daemon does not start."""
        plc_if = self.config.plc_link_interface
        if plc_if is None:
            return
        try:
            script = isolation_ruleset(plc_if, BRIDGE_NAME, sep2_port)
            await asyncio.to_thread(_nft, script)
        except IsolationError as err:
            raise ConfigError([f"plc link isolation: {err}"]) from err
        if sep2_port is not None:
            self._sep2_port = sep2_port  # the bridge, made later or now, never carries it
            if self.gate is not None:
                self.gate.keep_local(sep2_port)
        log_event(logger, "plc_link.isolated", interface=plc_if, table=ISOLATION_TABLE,
                  allowed="ND/RA, mDNS" + (f", tcp/{sep2_port}" if sep2_port else ""))  # fmt: skip

    async def stop(self) -> None:
        if self._ra is not None:
            self._ra.stop()
        if self.gate is not None and self._applied:
            self._wanted = (False, "the daemon stopped")
            await self._apply()

    def describe(self) -> str:
        if self.prefix is None:
            return "off"
        bridge = self.config.bridge
        where = f"{self.config.plc_link_interface or 'mock'}<->{bridge.site_interface or 'none'}"
        return f"{bridge.backend.value}:{where}:{bridge.policy.value}"

    def state(self) -> dict[str, Any] | None:
        if self.prefix is None:
            return None
        shown: dict[str, Any] = {"prefix": str(self.prefix), "address": str(self.address),
                                 "policy": self.config.bridge.policy.value}  # fmt: skip
        if self.gate is None:
            return {**shown, "bridged": False, "backend": self.config.bridge.backend.value}
        state = self.gate.state()
        state.pop("ruleset", None)
        return {**shown, **state}


def _identity(config: Config) -> bytes:
    """What the derived prefix is stable for: the EVSE certificate, else the host name."""
    if config.tls.cert_file is not None:
        try:
            return config.tls.cert_file.read_bytes()
        except OSError:
            pass
    return f"evse-gatekeeper:{socket.gethostname()}".encode()


def _nft(script: str) -> None:
    """Apply an nftables script; IsolationError (one line) when ``nft`` refuses or is missing."""
    try:
        done = subprocess.run([tool_path("nft"), "-f", "-"], input=script, capture_output=True,
                              text=True, timeout=TOOL_TIMEOUT_S)  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as err:
        raise IsolationError(f"nft: {one_line(err)}") from err
    if done.returncode != 0:
        raise IsolationError(f"nft refused the filter: {one_line(done.stderr)}")
