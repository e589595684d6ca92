"""DNS-SD for the 2030.5 server on the PLC interface only: a vehicle on the PLC link finds
``_smartenergy._tcp.local`` with its TXT keys; a host on the site side of the same EVSE does
not. Network namespaces made by the test (skipped with the kernel's reason if refused)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from hil.plc.netns import NetnsUnavailable, ThreeHosts, run

pytestmark = pytest.mark.integration

PORT = 8443


class Hosts(ThreeHosts):
    """EVSE <-veth-> PEV on the "PLC" side, EVSE <-veth-> site host on the other."""

    def __init__(self) -> None:
        super().__init__("egd")

    def python(self, host: str, *args: str) -> list[str]:
        return self.exec(host, sys.executable, "-m", "hil.pev.discover", *args)


@pytest.fixture
def hosts() -> Iterator[Hosts]:
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root")
    made = Hosts()
    try:
        made.build()
    except NetnsUnavailable as err:
        made.teardown()
        pytest.skip(str(err))
    try:
        yield made
    finally:
        made.teardown()


@pytest.mark.parametrize("how", ["mdns", "xmdns"])
def test_the_vehicle_finds_the_server_and_the_site_does_not(hosts: Hosts, how: str) -> None:
    """mDNS ``_smartenergy._tcp.local`` on ff02::fb as the profile has it, and xmDNS
    ``_smartenergy._tcp.site`` on ff05::fb as IEEE 2030.5 has it (some stacks ask that way):
    answered on the PLC link with the TXT keys, and the site hears nothing."""
    extra = ("--xmdns",) if how == "xmdns" else ()
    announcer = subprocess.Popen(
        hosts.python("evse", "announce", "--if", "plc0", "--port", str(PORT)),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    hosts.procs.append(announcer)
    assert announcer.stdout is not None
    first = announcer.stdout.readline()
    assert first.startswith("ANNOUNCED"), first
    pev = run(*hosts.python("pev", "find", "--if", "pev0", "--timeout", "5", *extra),
              check=False)  # fmt: skip
    assert pev.returncode == 0, pev.stdout + pev.stderr
    words = pev.stdout.split()
    assert words[0] == "FOUND" and words[1].startswith("fe80::") and words[2] == str(PORT)
    assert {"dcap=/dcap", f"https={PORT}", "txtvers=1"} <= set(words[3:])
    site = run(*hosts.python("site", "find", "--if", "lan0", "--timeout", "3", *extra),
               check=False)  # fmt: skip
    assert site.returncode == 1 and site.stdout.strip() == "NOT FOUND", site.stdout + site.stderr
