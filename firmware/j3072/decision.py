"""The J3072 decision table: may this vehicle's inverter discharge at this site?

Pure: what the vehicle reported, what the site allows and what the approval list says in,
a ``Decision`` out — a grant with the authorized limit, or a denial with **every** reason,
never a bare false. Criteria (docs/v2g-ac-profile.md, "The session", step 5, and "Our
interpretation where the public text is thin"):

- a clock synchronized once since boot, where the site requires it (docs/time.md): the
  approval list's dates are checked against it;
- the J3072 certification (in the mapped DeviceInformation element);
- DERCapability type 81 (PEV);
- 2Q/4Q: the vehicle offers at least what the site requires (4Q = reactive both ways);
- the ISM number approved on a valid approval list, under the ``list`` policy (the default;
  ``certification-only`` relies on the certification alone), and the site's LFDI allow and
  deny lists (``firmware.approvals.policy``); a grant names what was checked (``basis``);
- the whole exchange (§4.6.2, J3072 tables C2 to C9 as the profile maps them): DERSettings with
  setMaxWh, DeviceInformation, DERCapability, DERAvailability and PowerStatus with PEVInfo;
- every reported setting within the site limits, the Enter Service ones no looser than the
  site's, and no value that cannot be right (a limit or rating of zero or less);
- the profile's order: the site limits read before the vehicle's settings were PUT;
- a "received" and a "started" Response for every control in effect, and no negative one
  (opted out, rejected): it denies, or revokes, with its status.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from firmware.approvals.policy import ApprovalPolicy, PolicyKind
from firmware.j3072.config import MappingConfig
from firmware.sep2.config import Quadrants, SiteConfig
from firmware.sep2.der import DERCapability, DERSettings
from firmware.sep2.der_status import DERAvailability
from firmware.sep2.device import DeviceInformation, PowerStatus
from firmware.sep2.response import STATUS_RECEIVED, STATUS_STARTED, Response
from firmware.sep2.site import DER_TYPE_PEV, enter_service, scaled, watts

DEFAULT_POLICY = ApprovalPolicy()
CERTIFIED = re.compile(r"^J3072(;.*)?$", re.IGNORECASE)
APPROVED = "approved"
NO_VALID_LIST = "no valid list"  # none installed, or it expired / is not yet valid
# IEEE 2030.5 Response status values that refuse a control (the rest acknowledge it)
NEGATIVE_STATUS = {
    4: "opted out",
    8: "partially opted out",
    252: "rejected: received after it expired",
    253: "rejected: invalid cancellation",
    254: "rejected: invalid event",
}
# the Enter Service settings the vehicle may not loosen: (element, attribute, "at least" or
# "at most" the site's value)
ENTER_SERVICE = (
    ("setESDelay", "set_es_delay", "at least"),
    ("setESRandomDelay", "set_es_random_delay", "at least"),
    ("setESRampTms", "set_es_ramp_tms", "at least"),
    ("setESHighVolt", "set_es_high_volt", "at most"),
    ("setESHighFreq", "set_es_high_freq", "at most"),
    ("setESLowVolt", "set_es_low_volt", "at least"),
    ("setESLowFreq", "set_es_low_freq", "at least"),
)


@dataclass(frozen=True, slots=True)
class Approval:
    """What the approval list says of one ISM: ``approved``, ``revoked``, ``not listed`` or
    ``no valid list``, and the entry's own cap if any."""

    status: str
    max_discharge_w: int | None = None


@dataclass(frozen=True, slots=True)
class DecisionInputs:
    site: SiteConfig
    mapping: MappingConfig
    device_information: DeviceInformation | None
    der_capability: DERCapability | None
    der_settings: DERSettings | None
    site_limits_read_first: bool
    control_mrids: tuple[str, ...]
    responses: tuple[Response, ...]
    approval: Approval
    der_availability: DERAvailability | None = None
    power_status: PowerStatus | None = None
    # controls published but whose Responses are not due yet (changed at run time): a
    # negative Response to one counts at once, a missing one not yet
    pending_mrids: tuple[str, ...] = ()
    policy: ApprovalPolicy = DEFAULT_POLICY  # list or certification-only, LFDI lists
    lfdi: str = ""
    clock_problem: str | None = None  # why the clock cannot be trusted yet (firmware.clock)


@dataclass(frozen=True, slots=True)
class Decision:
    granted: bool
    reasons: tuple[str, ...]  # empty for a grant
    limit_w: int | None = None  # the authorized discharge limit (grants only)
    ism: str | None = None
    basis: str = ""  # what the policy checked to grant ("ISM approved on list v7", ...)


def decide(inputs: DecisionInputs) -> Decision:
    reasons: list[str] = [inputs.clock_problem] if inputs.clock_problem else []
    ism = mapped(inputs.device_information, inputs.mapping.ism)
    policy = inputs.policy
    reasons += _certification(inputs)
    reasons += _capability(inputs)
    reasons += _status(inputs)
    if policy.kind is PolicyKind.LIST:
        reasons += _approval(ism, inputs.approval)
    lfdi_problem = policy.lfdi_problem(inputs.lfdi)
    if lfdi_problem is not None:
        reasons.append(lfdi_problem)
    reasons += _settings(inputs)
    reasons += _responses(inputs)
    if reasons:
        return Decision(False, tuple(reasons), None, ism)
    return Decision(True, (), _limit_w(inputs), ism, _basis(inputs, ism))


def _basis(inputs: DecisionInputs, ism: str | None) -> str:
    """What the policy checked for this grant, in a few words for the log and status."""
    policy = inputs.policy
    if policy.kind is PolicyKind.CERTIFICATION_ONLY:
        what = f"certification-only: J3072 certified, ISM {ism} not looked up"
    else:
        what = f"list: ISM {ism} approved"
    if policy.allow_lfdis:
        what += "; LFDI on the allow list"
    elif policy.deny_lfdis:
        what += "; LFDI not on the deny list"
    return what


def is_four_quadrant(capability: DERCapability) -> bool:
    var, var_neg = capability.rtg_max_var, capability.rtg_max_var_neg
    return var is not None and var_neg is not None and var.value > 0 and var_neg.value > 0


def mapped(info: DeviceInformation | None, element: str) -> str | None:
    """The value of a mapped DeviceInformation element (by its XML name)."""
    if info is None:
        return None
    attribute = {"mfHwVer": "mf_hw_ver", "mfInfo": "mf_info", "mfModel": "mf_model",
                 "mfSerNum": "mf_ser_num", "swVer": "sw_ver"}[element]  # fmt: skip
    value = getattr(info, attribute)
    return value if isinstance(value, str) else None


def _certification(inputs: DecisionInputs) -> list[str]:
    if inputs.device_information is None:
        return ["no DeviceInformation: certification and ISM unknown"]
    text = mapped(inputs.device_information, inputs.mapping.certification)
    if text is None or not CERTIFIED.match(text.strip()):
        return [f"not J3072-certified ({inputs.mapping.certification}={text!r})"]
    return []


def _capability(inputs: DecisionInputs) -> list[str]:
    capability = inputs.der_capability
    if capability is None:
        return ["no DERCapability"]
    reasons = []
    if capability.der_type != DER_TYPE_PEV:
        reasons.append(f"DERCapability type {capability.der_type}, not {DER_TYPE_PEV} (PEV)")
    if inputs.site.quadrants is Quadrants.FOUR and not is_four_quadrant(capability):
        reasons.append("2-quadrant inverter; the site requires 4-quadrant operation")
    ratings = (("rtgMaxW", capability.rtg_max_w),
               ("rtgMaxDischargeRateW", capability.rtg_max_discharge_rate_w))  # fmt: skip
    for name, rating in ratings:
        if rating is not None and watts(rating) <= 0:
            reasons.append(f"DERCapability {name} {watts(rating):g} W: must be positive")
    return reasons


def _status(inputs: DecisionInputs) -> list[str]:
    """What the vehicle says of its state: DERAvailability, PowerStatus with PEVInfo."""
    reasons = []
    if inputs.der_availability is None:
        reasons.append("no DERAvailability")
    if inputs.power_status is None:
        reasons.append("no PowerStatus")
    elif inputs.power_status.pev_info is None:
        reasons.append("PowerStatus without PEVInfo")
    return reasons


def _approval(ism: str | None, approval: Approval) -> list[str]:
    if ism is None:
        return [] if approval.status == APPROVED else ["no ISM number reported"]
    if approval.status == NO_VALID_LIST:
        return [f"ISM {ism} not checked: no valid approval list in force"]
    if approval.status != APPROVED:
        return [f"ISM {ism} {approval.status} on the approval list"]
    return []


def _settings(inputs: DecisionInputs) -> list[str]:
    settings, site = inputs.der_settings, inputs.site
    if settings is None:
        return ["no DERSettings"]
    reasons = []
    if not inputs.site_limits_read_first:
        reasons.append("DERSettings PUT before the site limits were read")
    for name, power in (
        ("setMaxW", settings.set_max_w),
        ("setMaxDischargeRateW", settings.set_max_discharge_rate_w),
        ("setMaxChargeRateW", settings.set_max_charge_rate_w),
    ):
        if power is None:
            continue
        if watts(power) <= 0:
            reasons.append(f"{name} {watts(power):g} W: must be positive")
        elif watts(power) > site.max_w:
            reasons.append(f"{name} {watts(power):g} W over the site's {site.max_w} W")
    if settings.set_max_wh is None:
        reasons.append("DERSettings without setMaxWh")
    elif scaled(settings.set_max_wh) <= 0:
        reasons.append(f"setMaxWh {scaled(settings.set_max_wh):g} Wh: must be positive")
    v_ref = settings.set_v_ref
    if v_ref is not None and scaled(v_ref) != site.v_ref_v:
        reasons.append(f"setVRef {scaled(v_ref):g} V, not {site.v_ref_v} V")
    return reasons + _enter_service(settings, site)


def _enter_service(settings: DERSettings, site: SiteConfig) -> list[str]:
    """Enter Service settings the vehicle reports: equal to the site's, or stricter."""
    ours = enter_service(site.enter_service)
    reasons = []
    for element, attribute, bound in ENTER_SERVICE:
        theirs = getattr(settings, attribute)
        limit = ours[attribute]  # type: ignore[literal-required]
        if theirs is None:
            continue
        if (bound == "at least" and theirs < limit) or (bound == "at most" and theirs > limit):
            reasons.append(f"{element} {theirs}, looser than the site's {limit}")
    return reasons


def _responses(inputs: DecisionInputs) -> list[str]:
    seen = {(r.subject.upper(), r.status) for r in inputs.responses}
    ours = {mrid.upper() for mrid in (*inputs.control_mrids, *inputs.pending_mrids)}
    reasons = [
        f"control {r.subject[:8]} refused: {NEGATIVE_STATUS[r.status]} (status {r.status})"
        for r in inputs.responses
        if r.status in NEGATIVE_STATUS and r.subject.upper() in ours
    ]
    missing = []
    for mrid in inputs.control_mrids:
        for status, word in ((STATUS_RECEIVED, "received"), (STATUS_STARTED, "started")):
            if (mrid.upper(), status) not in seen:
                missing.append(f"{word} {mrid[:8]}")
    return reasons + ([f"Responses missing: {', '.join(missing)}"] if missing else [])


def _limit_w(inputs: DecisionInputs) -> int:
    """The lowest of the site's setMaxW, the vehicle's own and the approval entry's cap."""
    limits = [float(inputs.site.max_w)]
    settings = inputs.der_settings
    if settings is not None:
        limits.append(watts(settings.set_max_w))
        if settings.set_max_discharge_rate_w is not None:
            limits.append(watts(settings.set_max_discharge_rate_w))
    cap = inputs.approval.max_discharge_w
    if cap is not None and inputs.policy.kind is PolicyKind.LIST:
        limits.append(float(cap))
    return int(min(limits))
