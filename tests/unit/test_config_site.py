"""The 2030.5 sections of the config: [tls], [sep2], [site] with the IEEE 1547 functions,
and [j3072.mapping]; the profile's rules for the functions are enforced by the loader."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from firmware.daemon.config import parse_config
from firmware.errors import ConfigError
from firmware.sep2.config import Mode, Quadrants
from firmware.sep2.site import SiteResources

VOLT_VAR = {"mode": "volt-var", "curve": [[92, 44], [98, 0], [102, 0], [108, -44]]}


def problems_of(data: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(data)
    return info.value.problems


def test_defaults_leave_the_server_off_and_publish_no_functions() -> None:
    config = parse_config({})
    assert not config.sep2.enabled and config.sep2.port == 8443 and config.sep2.host == "::1"
    assert config.site.max_w == 7200 and config.site.v_ref_v == 240
    assert config.site.quadrants is Quadrants.TWO and config.site.functions == ()
    assert config.site.enter_service.delay_s == 300
    mapping = config.j3072.mapping
    assert (mapping.ism, mapping.certification, mapping.vin) == (
        "mfModel", "mfInfo", "mfSerNum",
    )  # fmt: skip


def test_a_full_site() -> None:
    config = parse_config(
        {
            "tls": {"ca_file": "ca.pem", "cert_file": "evse.pem", "key_file": "evse.key"},
            "sep2": {"enabled": True, "host": "fd00::1", "port": 443, "discovery": False},
            "site": {
                "service_area": "NORTH",
                "max_w": 9600,
                "v_ref_v": 230,
                "quadrants": "4Q",
                "enter_service": {"delay_s": 60, "ramp_s": 120},
                "functions": [
                    VOLT_VAR,
                    {"mode": "max-lim-w", "percent": 80},
                    {"mode": "freq-droop", "k_of": 0.04},
                ],
            },
            "j3072": {"mapping": {"ism": "mfHwVer"}},
        }
    )
    assert config.tls.cert_file == Path("evse.pem") and config.sep2.port == 443
    assert config.site.quadrants is Quadrants.FOUR and config.site.service_area == "NORTH"
    assert config.site.enter_service.delay_s == 60 and config.site.enter_service.ramp_s == 120
    modes = [f.mode for f in config.site.functions]
    assert modes == [Mode.VOLT_VAR, Mode.MAX_LIM_W, Mode.FREQ_DROOP]
    assert config.site.functions[0].curve[0] == (92.0, 44.0)
    assert config.site.functions[1].value == 80.0
    assert dict(config.site.functions[2].droop)["k_of"] == 0.04
    assert config.j3072.mapping.ism == "mfHwVer"


def test_the_server_needs_its_credentials() -> None:
    assert problems_of({"sep2": {"enabled": True}}) == [
        f"tls.{key}: required when sep2.enabled = true"
        for key in ("ca_file", "cert_file", "key_file")
    ]


def test_at_most_one_reactive_power_mode() -> None:
    (problem,) = problems_of(
        {"site": {"functions": [VOLT_VAR, {"mode": "fixed-pf", "power_factor": 0.95}]}}
    )
    assert problem == "site.functions: at most one reactive-power mode, got fixed-pf, volt-var"


def test_each_mode_at_most_once() -> None:
    twice = [{"mode": "max-lim-w", "percent": 50}, {"mode": "max-lim-w"}]
    assert problems_of({"site": {"functions": twice}}) == [
        "site.functions: mode max-lim-w appears more than once"
    ]


@pytest.mark.parametrize(
    ("function", "where"),
    [
        ({"mode": "volt-var", "curve": [[92, 44]]}, "site.functions[0].curve"),
        ({"mode": "volt-var", "curve": [[98, 0], [92, 44]]}, "site.functions[0].curve"),
        ({"mode": "volt-var", "curve": [[92, "x"], [98, 0]]}, "site.functions[0].curve"),
        ({"mode": "volt-var"}, "site.functions[0].curve"),
        ({"mode": "fixed-pf", "power_factor": 0.5}, "site.functions[0].power_factor"),
        ({"mode": "max-lim-w", "percent": 120}, "site.functions[0].percent"),
        ({"mode": "freq-droop", "k_uf": 0.5}, "site.functions[0].k_uf"),
        ({"mode": "volt-var", "curve": [[92, 44], [98, 0]], "power_factor": 1},
         "site.functions[0].power_factor"),
        ({"mode": "soc-pf"}, "site.functions[0].mode"),
        ({}, "site.functions[0].mode"),
    ],
)  # fmt: skip
def test_bad_functions_are_refused_with_their_place(function: dict[str, Any], where: str) -> None:
    problems = problems_of({"site": {"functions": [function]}})
    assert [p.split(": ", 1)[0] for p in problems] == [where], problems


def test_functions_must_be_an_array_of_tables() -> None:
    assert problems_of({"site": {"functions": {"mode": "volt-var"}}}) == [
        "site.functions: must be an array of tables ([[site.functions]])"
    ]


@pytest.mark.parametrize(
    ("data", "where"),
    [
        ({"site": {"quadrants": "3Q"}}, "site.quadrants"),
        ({"site": {"max_w": 0}}, "site.max_w"),
        ({"site": {"enter_service": {"low_freq_hz": 40}}}, "site.enter_service.low_freq_hz"),
        ({"site": {"service_area": ""}}, "site.service_area"),
        ({"sep2": {"port": -1}}, "sep2.port"),
        ({"j3072": {"mapping": {"vin": "lFDI"}}}, "j3072.mapping.vin"),
        ({"j3072": {"colour": 1}}, "j3072.colour"),
        ({"tls": {"ca_file": ""}}, "tls.ca_file"),
    ],
)
def test_bad_values_are_refused(data: dict[str, Any], where: str) -> None:
    assert [p.split(": ", 1)[0] for p in problems_of(data)] == [where]


def test_a_fixed_w_dispatch_is_a_signed_percent_of_set_max_w() -> None:
    config = parse_config({"site": {"functions": [{"mode": "fixed-w", "percent": 50}]}})
    (function,) = config.site.functions
    assert function.mode is Mode.FIXED_W and function.value == 50.0
    (control,) = SiteResources(config.site, "E" * 40, 0).controls(0)
    assert control.der_control_base.op_mod_fixed_w == 5000  # hundredths of a percent
    problems = problems_of({"site": {"functions": [{"mode": "fixed-w", "percent": -101}]}})
    assert problems and problems[0].startswith("site.functions[0].percent")
