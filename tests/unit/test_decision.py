"""The J3072 decision table: all criteria holding -> a grant with the authorized limit; each
criterion failing alone -> a denial naming it (and only it)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest

from firmware.approvals.policy import ApprovalPolicy, PolicyKind
from firmware.daemon.config import parse_config
from firmware.j3072.decision import Approval, DecisionInputs, decide, is_four_quadrant
from firmware.sep2.der import DERCapability, DERSettings
from firmware.sep2.der_status import DERAvailability
from firmware.sep2.device import DeviceInformation, PEVInfo, PowerStatus
from firmware.sep2.response import Response
from firmware.sep2.values import ActivePower, ReactivePower, RealEnergy, VoltageRMS, WattHour

PEV = "5E" * 20
CONTROLS = ("A1" * 16, "B2" * 16)
CONFIG = parse_config({"site": {"max_w": 7200, "v_ref_v": 240, "quadrants": "4Q"}})


AVAILABILITY = DERAvailability(reading_time=0, stat_w_avail=ActivePower(multiplier=0, value=7200))
PEV_INFO = PEVInfo(
    charging_power_now=ActivePower(multiplier=0, value=0),
    energy_request_now=RealEnergy(multiplier=0, value=20000),
    max_forward_power=ActivePower(multiplier=0, value=7200), minimum_charging_duration=3600,
    target_state_of_charge=8000, time_charge_is_needed=0, time_charging_status_pev=0,
)  # fmt: skip
POWER_STATUS = PowerStatus(battery_status=0, changed_time=0, current_power_source=3,
                           pev_info=PEV_INFO)  # fmt: skip


def info(**changes: object) -> DeviceInformation:
    base = DeviceInformation(
        lfdi=PEV, mf_date=0, mf_hw_ver="1", mf_id=1, mf_info="J3072;date=2025-06-01",
        mf_model="ISM-2025-0001", mf_ser_num="VIN1", primary_power=0, secondary_power=0,
        sw_act_time=0, sw_ver="1",
    )  # fmt: skip
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def capability(**changes: object) -> DERCapability:
    base = DERCapability(
        modes_supported=0, rtg_max_w=ActivePower(multiplier=0, value=9600),
        rtg_max_var=ReactivePower(multiplier=0, value=4800),
        rtg_max_var_neg=ReactivePower(multiplier=0, value=4800), der_type=81,
    )  # fmt: skip
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def settings(**changes: object) -> DERSettings:
    base = DERSettings(
        set_grad_w=33, set_max_w=ActivePower(multiplier=0, value=7200),
        set_max_wh=WattHour(multiplier=3, value=60), set_es_delay=30000,
        set_v_ref=VoltageRMS(multiplier=0, value=240), updated_time=0,
    )  # fmt: skip
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def responses(*skip: tuple[str, int]) -> tuple[Response, ...]:
    return tuple(
        Response(end_device_lfdi=PEV, status=status, subject=mrid)
        for mrid in CONTROLS
        for status in (1, 2)
        if (mrid, status) not in skip
    )


def good() -> DecisionInputs:
    return DecisionInputs(
        site=CONFIG.site, mapping=CONFIG.j3072.mapping, device_information=info(),
        der_capability=capability(), der_settings=settings(), site_limits_read_first=True,
        control_mrids=CONTROLS, responses=responses(), approval=Approval("approved"),
        der_availability=AVAILABILITY, power_status=POWER_STATUS,
    )  # fmt: skip


def test_all_criteria_hold_grants_with_the_lowest_limit() -> None:
    decision = decide(good())
    assert decision.granted and decision.reasons == () and decision.ism == "ISM-2025-0001"
    assert decision.limit_w == 7200
    capped = dataclasses.replace(good(), approval=Approval("approved", max_discharge_w=5000))
    assert decide(capped).limit_w == 5000, "the approval entry's cap"
    own = dataclasses.replace(good(), der_settings=settings(
        set_max_w=ActivePower(multiplier=0, value=6000)))  # fmt: skip
    assert decide(own).limit_w == 6000, "the vehicle's own setMaxW"


ONE_FAILURE: dict[str, tuple[Callable[[DecisionInputs], DecisionInputs], str]] = {
    "uncertified": (
        lambda i: dataclasses.replace(i, device_information=info(mf_info="pending")),
        "not J3072-certified",
    ),
    "certification absent": (
        lambda i: dataclasses.replace(i, device_information=info(mf_info=None)),
        "not J3072-certified",
    ),
    "not a PEV": (
        lambda i: dataclasses.replace(i, der_capability=capability(der_type=82)),
        "not 81 (PEV)",
    ),
    "2Q at a 4Q site": (
        lambda i: dataclasses.replace(i, der_capability=capability(rtg_max_var_neg=None)),
        "requires 4-quadrant",
    ),
    "ISM not listed": (
        lambda i: dataclasses.replace(i, approval=Approval("not listed")),
        "ISM ISM-2025-0001 not listed",
    ),
    "ISM revoked": (
        lambda i: dataclasses.replace(i, approval=Approval("revoked")),
        "ISM ISM-2025-0001 revoked",
    ),
    "no valid list": (
        lambda i: dataclasses.replace(i, approval=Approval("no valid list")),
        "no valid approval list in force",
    ),
    "setMaxW over the site": (
        lambda i: dataclasses.replace(
            i, der_settings=settings(set_max_w=ActivePower(multiplier=0, value=9600))
        ),
        "setMaxW 9600 W over",
    ),
    "discharge rate over the site": (
        lambda i: dataclasses.replace(
            i, der_settings=settings(set_max_discharge_rate_w=ActivePower(multiplier=1, value=800))
        ),
        "setMaxDischargeRateW 8000 W over",
    ),
    "another setVRef": (
        lambda i: dataclasses.replace(
            i, der_settings=settings(set_v_ref=VoltageRMS(multiplier=0, value=230))
        ),
        "setVRef 230 V",
    ),
    "settings before the limits": (
        lambda i: dataclasses.replace(i, site_limits_read_first=False),
        "before the site limits",
    ),
    "a started Response missing": (
        lambda i: dataclasses.replace(i, responses=responses((CONTROLS[1], 2))),
        "Responses missing: started B2B2B2B2",
    ),
    "a received Response missing": (
        lambda i: dataclasses.replace(i, responses=responses((CONTROLS[0], 1))),
        "Responses missing: received A1A1A1A1",
    ),
    "no DERSettings": (lambda i: dataclasses.replace(i, der_settings=None), "no DERSettings"),
    "no DERCapability": (
        lambda i: dataclasses.replace(i, der_capability=None),
        "no DERCapability",
    ),
}


@pytest.mark.parametrize("case", sorted(ONE_FAILURE))
def test_each_criterion_failing_alone_is_a_denial_naming_it(case: str) -> None:
    change, expected = ONE_FAILURE[case]
    decision = decide(change(good()))
    assert not decision.granted and decision.limit_w is None
    assert len(decision.reasons) == 1, decision.reasons
    assert expected in decision.reasons[0], decision.reasons


def test_every_reason_is_given_not_just_the_first() -> None:
    inputs = dataclasses.replace(
        good(), device_information=info(mf_info="no"), approval=Approval("revoked"),
        responses=(),
    )  # fmt: skip
    reasons = decide(inputs).reasons
    assert len(reasons) == 3 and "certified" in reasons[0] and "revoked" in reasons[1]


def test_a_2q_vehicle_is_fine_where_the_site_needs_only_2q() -> None:
    two_q = parse_config({"site": {"quadrants": "2Q"}}).site
    inputs = dataclasses.replace(good(), site=two_q, der_capability=capability(rtg_max_var=None))
    assert not is_four_quadrant(capability(rtg_max_var=None))
    assert decide(inputs).granted


def test_the_mapping_decides_where_the_ism_is_read() -> None:
    mapping = parse_config({"j3072": {"mapping": {"ism": "mfHwVer"}}}).j3072.mapping
    inputs = dataclasses.replace(good(), mapping=mapping, device_information=info(mf_hw_ver="HW-9"))
    assert decide(inputs).ism == "HW-9"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"der_availability": None}, "no DERAvailability"),
        ({"power_status": None}, "no PowerStatus"),
        ({"power_status": dataclasses.replace(POWER_STATUS, pev_info=None)},
         "PowerStatus without PEVInfo"),
        ({"der_settings": settings(set_max_wh=None)}, "DERSettings without setMaxWh"),
        ({"der_settings": settings(set_max_w=ActivePower(multiplier=0, value=-5000))},
         "setMaxW -5000 W: must be positive"),
        ({"der_settings": settings(set_max_w=ActivePower(multiplier=0, value=0))},
         "setMaxW 0 W: must be positive"),
        ({"der_settings": settings(set_max_wh=WattHour(multiplier=0, value=0))},
         "setMaxWh 0 Wh: must be positive"),
        ({"der_capability": capability(rtg_max_w=ActivePower(multiplier=0, value=-1))},
         "DERCapability rtgMaxW -1 W: must be positive"),
        ({"der_settings": settings(set_es_delay=0)}, "setESDelay 0, looser than the site's 30000"),
        ({"der_settings": settings(set_es_high_volt=12000)},
         "setESHighVolt 12000, looser than the site's 10500"),
    ],
)  # fmt: skip
def test_an_incomplete_or_impossible_exchange_is_denied_naming_why(
    change: dict[str, object], reason: str
) -> None:
    """The whole exchange (§4.6.2), each part checked: a vehicle that sent no setMaxWh, no
    DERAvailability, no PEVInfo, a negative setMaxW or looser Enter Service was once granted."""
    decision = decide(dataclasses.replace(good(), **change))  # type: ignore[arg-type]
    assert not decision.granted and decision.reasons == (reason,)


def test_stricter_enter_service_settings_are_accepted() -> None:
    stricter = settings(set_es_delay=60000, set_es_high_volt=10400, set_es_low_freq=5960)
    assert decide(dataclasses.replace(good(), der_settings=stricter)).granted


@pytest.mark.parametrize(("status", "word"), [(4, "opted out"), (254, "rejected: invalid event")])
def test_a_negative_response_denies_with_its_status(status: int, word: str) -> None:
    refusal = Response(end_device_lfdi=PEV, status=status, subject=CONTROLS[0])
    inputs = dataclasses.replace(good(), responses=(*responses(), refusal))
    decision = decide(inputs)
    assert decision.reasons == (f"control {CONTROLS[0][:8]} refused: {word} (status {status})",)


CERT_ONLY = ApprovalPolicy(PolicyKind.CERTIFICATION_ONLY)


def test_certification_only_grants_an_unlisted_ism_and_names_what_it_checked() -> None:
    """The use case's other choice: the J3072 certification tag alone, no list (and so no
    list cap); under the list policy the same vehicle is denied."""
    unlisted = dataclasses.replace(good(), approval=Approval("not listed", max_discharge_w=10))
    assert not decide(unlisted).granted
    granted = decide(dataclasses.replace(unlisted, policy=CERT_ONLY))
    assert granted.granted and granted.limit_w == 7200
    assert granted.basis == "certification-only: J3072 certified, ISM ISM-2025-0001 not looked up"
    assert decide(good()).basis == "list: ISM ISM-2025-0001 approved"
    uncertified = dataclasses.replace(unlisted, policy=CERT_ONLY,
                                      device_information=info(mf_info="pending"))  # fmt: skip
    assert decide(uncertified).reasons == ("not J3072-certified (mfInfo='pending')",)


def test_the_sites_lfdi_lists_apply_under_every_policy() -> None:
    other = "B" * 40
    for kind in PolicyKind:
        denied = dataclasses.replace(good(), lfdi=PEV, policy=ApprovalPolicy(
            kind, deny_lfdis=frozenset({PEV.upper()})))  # fmt: skip
        assert decide(denied).reasons == (f"LFDI {PEV.upper()} is on the site's deny list",)
        outside = dataclasses.replace(good(), lfdi=PEV, policy=ApprovalPolicy(
            kind, allow_lfdis=frozenset({other})))  # fmt: skip
        assert decide(outside).reasons == (f"LFDI {PEV.upper()} is not on the site's allow list",)
        inside = dataclasses.replace(good(), lfdi=PEV.lower(), policy=ApprovalPolicy(
            kind, allow_lfdis=frozenset({PEV.upper(), other})))  # fmt: skip
        assert decide(inside).granted and "allow list" in decide(inside).basis
