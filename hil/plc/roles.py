"""The three parties of the PLC link as processes, for network-namespace tests:
``python -m hil.plc.roles modem|evse|pev ...``, each run under ``ip netns exec``.

- modem: the mock modem pair between two interfaces (raw sockets, every ethertype);
- evse:  the EVSE's SLAC service on its PLC interface; prints ``MATCHED <ev mac>`` and
         ``REKEYED``; SIGUSR1 = the vehicle unplugged, SIGUSR2 = plugged in again;
- pev:   the vehicle's SLAC client; prints ``PEV MATCHED <nid>`` and exits 0, or exits 1.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

from firmware.plc.keys import new_nmk
from firmware.plc.link import ETH_P_ALL, RawSocketLink
from firmware.plc.mock.modems import Knobs, MockModemPair
from firmware.plc.mock.pev_slac import PevSlacClient, PevSlacError
from firmware.plc.modem import ModemClient
from firmware.plc.port import PlcPort
from firmware.plc.service import SlacService
from firmware.plc.slac import GaveUp, Matched, PilotWakeUp, SlacEvse

SETTLE_S = 0.05


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def modem(evse_if: str, pev_if: str, knobs: Knobs) -> int:
    mock = MockModemPair(RawSocketLink(evse_if, ETH_P_ALL), RawSocketLink(pev_if, ETH_P_ALL), knobs)
    say("MODEM READY")
    reporter = asyncio.create_task(report_second_ev(mock)) if knobs.second_ev else None
    await mock.run()
    if reporter is not None:
        reporter.cancel()
    return 0


async def report_second_ev(mock: MockModemPair) -> None:
    """Print what our EVSE answered the neighbour's vehicle, once its SLAC is over."""
    while mock.second_ev is None:
        await asyncio.sleep(0.01)
    await mock.second_ev.done.wait()
    received = " ".join(f"{k}={v}" for k, v in sorted(mock.second_ev.received.items()))
    say(f"SECOND EV DONE {received}")


async def evse(ifname: str, init_timeout_ms: int) -> int:
    link = RawSocketLink(ifname)
    port = PlcPort(link, lambda h, m: service.on_message(h, m))
    modem_client = ModemClient(port, settle_s=SETTLE_S)

    def on_event(event: object) -> None:
        if isinstance(event, Matched):
            say(f"MATCHED {event.ev_mac.hex()}")
        elif isinstance(event, PilotWakeUp):
            say("WAKEUP")
        elif isinstance(event, GaveUp):
            say("GAVE UP")

    slac = SlacEvse(link.mac, new_nmk, init_timeout_ms * 1_000_000)
    service = SlacService(slac, port, modem_client, on_event)
    loop = asyncio.get_running_loop()

    def unplug() -> None:
        rekey = slac.matched is not None
        service.unplugged()
        if rekey:
            loop.call_later(0.3, say, "REKEYED")
        else:
            say("UNPLUGGED no re-key")

    def plug_in() -> None:
        service.plugged_in()
        say("PLUGGED")

    loop.add_signal_handler(signal.SIGUSR1, unplug)
    loop.add_signal_handler(signal.SIGUSR2, plug_in)
    reader = asyncio.create_task(port.run())
    runner = asyncio.create_task(service.run())
    await asyncio.sleep(0.2)  # the boot SET_KEY
    service.plugged_in()
    say("EVSE READY")
    await asyncio.gather(reader, runner)
    return 0


async def pev(ifname: str, ignore_chars: int, stop_after_sounds: bool) -> int:
    link = RawSocketLink(ifname)
    port = PlcPort(link, lambda h, m: client.on_message(h, m))
    modem_client = ModemClient(port, settle_s=SETTLE_S)
    client = PevSlacClient(
        port, modem_client, ignore_chars=ignore_chars, stop_after_sounds=stop_after_sounds
    )
    reader = asyncio.create_task(port.run())
    try:
        match = await client.match()
    except PevSlacError as err:
        say(f"PEV FAILED {err}")
        return 1
    finally:
        reader.cancel()
    say(
        f"PEV MATCHED {match.nid.hex()} parm_to_match_ms={match.parm_to_match_s * 1000:.2f} "
        f"sound_to_char_ms={match.sound_to_char_s * 1000:.2f}"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hil.plc.roles", description=__doc__)
    roles = parser.add_subparsers(dest="role", required=True)
    m = roles.add_parser("modem")
    m.add_argument("--evse-if", required=True)
    m.add_argument("--pev-if", required=True)
    m.add_argument("--drop-sounds", default="", help="CNT values to drop, e.g. 2,5")
    m.add_argument("--duplicate-sounds", action="store_true")
    m.add_argument("--reorder-sounds", action="store_true")
    m.add_argument("--second-ev", action="store_true", help="a neighbour's vehicle sounds too")
    e = roles.add_parser("evse")
    e.add_argument("--if", dest="ifname", required=True)
    e.add_argument("--init-timeout-ms", type=int, default=40_000)
    p = roles.add_parser("pev")
    p.add_argument("--if", dest="ifname", required=True)
    p.add_argument("--ignore-chars", type=int, default=0)
    p.add_argument("--stop-after-sounds", action="store_true")
    args = parser.parse_args(argv)
    if args.role == "modem":
        drops = {int(n) for n in args.drop_sounds.split(",") if n}
        knobs = Knobs(
            drop_sounds=drops,
            duplicate_sounds=args.duplicate_sounds,
            reorder_sounds=args.reorder_sounds,
            second_ev=args.second_ev,
        )
        return asyncio.run(modem(args.evse_if, args.pev_if, knobs))
    if args.role == "evse":
        return asyncio.run(evse(args.ifname, args.init_timeout_ms))
    return asyncio.run(pev(args.ifname, args.ignore_chars, args.stop_after_sounds))


if __name__ == "__main__":
    sys.exit(main())
