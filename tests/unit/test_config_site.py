"""The 2030.5 sections of the config: [tls], [sep2], [site] with the IEEE 1547 functions,
and [j3072.mapping]; the profile's rules for the functions are enforced by the loader."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from firmware.daemon.config import parse_config
from firmware.errors import ConfigError
from firmware.sep2.config import Quadrants
from firmware.sep2.functions import DEFAULT_FUNCTIONS, Mode
from firmware.sep2.site import SiteResources
from firmware.sep2.store import PevRecord
from firmware.sep2.tls import PeerIdentity

VOLT_VAR = {"mode": "volt-var", "curve": [[92, 44], [98, 0], [102, 0], [108, -44]]}


def problems_of(data: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(data)
    return info.value.problems


def test_defaults_leave_the_server_off_and_publish_the_complete_set() -> None:
    """§4.7.1/§4.9: with no [[site.functions]], the IEEE 1547 Category B set (Category III
    ride-through) is published: every Table 5 kind of function a site must be able to say."""
    config = parse_config({})
    assert not config.sep2.enabled and config.sep2.port == 8443 and config.sep2.host == "::1"
    assert config.site.max_w == 7200 and config.site.v_ref_v == 240
    assert config.site.quadrants is Quadrants.TWO and config.site.functions == DEFAULT_FUNCTIONS
    modes = {f.mode for f in config.site.functions}
    assert modes == {
        Mode.VOLT_VAR, Mode.VOLT_WATT, Mode.MAX_LIM_W, Mode.FREQ_DROOP,
        Mode.HV_MUST_TRIP, Mode.LV_MUST_TRIP, Mode.HF_MUST_TRIP, Mode.LF_MUST_TRIP,
        Mode.HV_MOMENTARY_CESSATION, Mode.LV_MOMENTARY_CESSATION,
    }  # fmt: skip
    assert sum(m.reactive for m in modes) == 1
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
    # what the site lists, then the protective functions it left out (§4.9.1, §4.9.2)
    assert modes == [Mode.VOLT_VAR, Mode.MAX_LIM_W, Mode.FREQ_DROOP,
                     Mode.HV_MUST_TRIP, Mode.LV_MUST_TRIP, Mode.HF_MUST_TRIP, Mode.LF_MUST_TRIP,
                     Mode.HV_MOMENTARY_CESSATION, Mode.LV_MOMENTARY_CESSATION]  # fmt: skip
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
    function = config.site.functions[0]
    assert function.mode is Mode.FIXED_W and function.value == 50.0
    record = PevRecord(PeerIdentity("A" * 40, 1, b"", None), 0)
    control = SiteResources(config.site, "E" * 40).controls(record)[0]
    assert control.der_control_base.op_mod_fixed_w == 5000  # hundredths of a percent
    problems = problems_of({"site": {"functions": [{"mode": "fixed-w", "percent": -101}]}})
    assert problems and problems[0].startswith("site.functions[0].percent")


def test_frequency_droop_is_on_unless_turned_off() -> None:
    """§4.9.3: frequency droop defaults on; a site may turn it off, and then it is absent."""
    on = parse_config({"site": {"functions": [{"mode": "max-lim-w"}]}})
    assert Mode.FREQ_DROOP in {f.mode for f in on.site.functions}
    off = parse_config({"site": {"functions": [{"mode": "freq-droop", "enabled": False}]}})
    assert Mode.FREQ_DROOP not in {f.mode for f in off.site.functions}
    assert Mode.HV_MUST_TRIP in {f.mode for f in off.site.functions}  # the trips cannot be


def test_a_site_sets_its_own_trip_curves() -> None:
    hv = {"mode": "hv-must-trip", "curve": [[0.16, 120], [2, 120], [2, 110]]}
    config = parse_config({"site": {"functions": [hv]}})
    (mine,) = [f for f in config.site.functions if f.mode is Mode.HV_MUST_TRIP]
    assert mine.curve == ((0.16, 120.0), (2.0, 120.0), (2.0, 110.0))


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ({"functions": [{"mode": "hv-must-trip", "curve": [[1, 95]]}]},
         "site.functions[0].curve: hv-must-trip values must be 100.01 to 200 % of setVRef"),
        ({"functions": [{"mode": "lf-must-trip", "curve": [[2, 58], [1, 57]]}]},
         "site.functions[0].curve: times must not decrease"),
        ({"functions": [{"mode": "hf-must-trip", "curve": [[-1, 61]]}]},
         "site.functions[0].curve: times must be 0 to 1000 s"),
        ({"enter_service": {"high_volt_pct": 110},
          "functions": [{"mode": "hv-must-trip", "curve": [[1, 108]]}]},
         "site.enter_service.high_volt_pct: 110 must be below the hv-must-trip threshold 108"),
        ({"enter_service": {"low_freq_hz": 59.0},
          "functions": [{"mode": "lf-must-trip", "curve": [[1, 59.2]]}]},
         "site.enter_service.low_freq_hz: 59 must be above the lf-must-trip threshold 59.2"),
        ({"functions": [{"mode": "lv-momentary-cessation", "curve": [[0, 90]]}]},
         "site.functions: lv-momentary-cessation at 90 lies above the lv-must-trip threshold "
         "88, inside the continuous operating range"),
    ],
)  # fmt: skip
def test_a_set_that_cannot_be_published_together_is_refused(
    data: dict[str, Any], problem: str
) -> None:
    assert problems_of({"site": data}) == [problem]


def test_ride_through_curves_in_2030_5_units() -> None:
    """x in hundredths of a second, y in hundredths of a percent of setVRef (yRefType 4) or of
    a Hz (yRefType 0), linked from the control by the mode's own element."""
    config = parse_config({})
    site = SiteResources(config.site, "E" * 40)
    record = PevRecord(PeerIdentity("A" * 40, 1, b"", None), 0)
    controls = {c.description: c for c in site.controls(record)}
    curves = {c.description: c for c in site.curves(record)}
    hv, hf = curves["hv-must-trip"], curves["hf-must-trip"]
    assert (hv.curve_type, hv.y_ref_type, hv.x_multiplier, hv.y_multiplier) == (5, 4, -2, -2)
    assert [(p.xvalue, p.yvalue) for p in hv.curve_data] == [(16, 12000), (1300, 12000),
                                                              (1300, 11000)]  # fmt: skip
    assert (hf.curve_type, hf.y_ref_type, hf.curve_data[0].yvalue) == (2, 0, 6200)
    link = controls["hv-must-trip"].der_control_base.op_mod_hvrt_must_trip
    assert link is not None and link.href == hv.href
    mc = controls["lv-momentary-cessation"].der_control_base.op_mod_lvrt_momentary_cessation
    assert mc is not None and curves["lv-momentary-cessation"].curve_type == 9


def test_the_approval_policy_and_the_lfdi_lists() -> None:
    approvals = {"policy": "certification-only", "deny_lfdis": ["ab" * 20], "allow_lfdis": []}
    config = parse_config({"approvals": approvals})
    policy = config.approvals.policy
    assert policy.kind.value == "certification-only" and policy.deny_lfdis == {"AB" * 20}
    assert parse_config({}).approvals.policy.kind.value == "list", "the default: a list"
    assert problems_of({"approvals": {"policy": "trust-everyone"}}) == [
        "approvals.policy: must be one of list, certification-only; got 'trust-everyone'"
    ]
    assert problems_of({"approvals": {"allow_lfdis": ["ABC"]}}) == [
        "approvals.allow_lfdis: not an LFDI (40 hex digits): 'ABC'"
    ]
