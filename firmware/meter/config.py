"""The ``[meter]`` config section, read into ``hal.meter.MeterSettings``: which meter backend
(the board's own, Modbus RTU on RS-485, Modbus TCP), its register map, its bus, the poll
rates and the health rules (docs/meter.md). The register map is loaded here too, so a map
that cannot be used refuses the config at start like any other bad key."""

from __future__ import annotations

from firmware.config.reader import SectionReader
from hal.meter import BACKENDS, MapError, MeterSettings, RegisterMap, load_map
from hal.meter.wire import char_bits, poll_ms, read_ms

BAUDRATES = (1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200)
PARITIES = ("N", "E", "O")


def read_meter(section: SectionReader) -> MeterSettings:
    d = MeterSettings()
    backend = section.string("backend", d.backend, BACKENDS)
    settings = MeterSettings(
        backend=backend,
        map=section.string("map", d.map),
        device_id=section.integer("device_id", d.device_id, 1, 247),
        port=section.string("port", d.port),
        baudrate=section.integer("baudrate", d.baudrate, BAUDRATES[0], BAUDRATES[-1]),
        parity=section.string("parity", d.parity, PARITIES),
        stopbits=section.integer("stopbits", d.stopbits, 1, 2),
        local_echo=section.boolean("local_echo", d.local_echo),
        host=section.optional_string("host") or "",
        tcp_port=section.integer("tcp_port", d.tcp_port, 1, 65535),
        timeout_ms=section.number("timeout_ms", d.timeout_ms, 10, 5000),
        poll_ms=section.number("poll_ms", d.poll_ms, 10, 100),
        idle_poll_ms=section.number("idle_poll_ms", d.idle_poll_ms, 100, 10_000),
        stale_ms=section.number("stale_ms", d.stale_ms, 100, 1000),
        recover_polls=section.integer("recover_polls", d.recover_polls, 1, 100),
        frozen_s=section.number("frozen_s", d.frozen_s, 0, 3600),
        phases=section.integer("phases", d.phases, 1, 3),
        nominal_voltage_v=section.number("nominal_voltage_v", d.nominal_voltage_v, 100, 480),
    )
    section.finish()
    if settings.baudrate not in BAUDRATES:
        known = ", ".join(map(str, BAUDRATES))
        section.problems.append(f"meter.baudrate: must be one of {known}; got {settings.baudrate}")
    if backend == "modbus-tcp" and not settings.host:
        section.problems.append('meter.host: needed with backend = "modbus-tcp"')
    if backend != "board":
        if settings.stale_ms < 2 * settings.poll_ms:
            section.problems.append("meter.stale_ms: must be at least twice poll_ms")
        recovery_ms = settings.stale_ms + settings.recover_polls * settings.poll_ms
        if recovery_ms > MAX_RECOVERY_MS:
            section.problems.append(
                f"meter.recover_polls: one lost answer would leave the meter untrusted for "
                f"{recovery_ms:g} ms (stale_ms + recover_polls x poll_ms); at most "
                f"{MAX_RECOVERY_MS} ms, or a glitch while a vehicle may discharge opens main "
                f"(after 3 s: docs/meter.md)"
            )
        try:
            register_map = load_map(settings.map)
        except MapError as err:
            section.problems.append(f"meter.map: {err}")
        else:
            if backend == "modbus-rtu":
                section.problems.extend(_wire_time_problems(settings, register_map))
    return settings


MAX_RECOVERY_MS = 2000  # under the gate's 3 s with main closed and the meter untrusted


def _wire_time_problems(settings: MeterSettings, register_map: RegisterMap) -> list[str]:
    """A baud rate whose wire time alone cannot fit the poll or the timeout (docs/meter.md
    "Wire time"): refused at start rather than a meter that is never healthy."""
    bits = char_bits(settings.parity, settings.stopbits)
    baud = settings.baudrate
    problems = []
    need_ms = poll_ms(register_map, baud, bits)
    if need_ms > settings.poll_ms:
        problems.append(f"meter.baudrate: at {baud} baud one poll of {register_map.name} takes "
                        f"{need_ms:.0f} ms on the wire, more than poll_ms {settings.poll_ms:g}; "
                        "set the meter faster")  # fmt: skip
    power, others = register_map.blocks()
    longest = max([power.count, *(b.count for b in others)])
    read = read_ms(longest, baud, bits)
    if read > settings.timeout_ms:
        problems.append(f"meter.timeout_ms: {settings.timeout_ms:g} ms is less than one read's "
                        f"{read:.0f} ms on the wire at {baud} baud")  # fmt: skip
    return problems
