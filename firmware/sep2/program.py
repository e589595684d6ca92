"""2030.5 program resources: FunctionSetAssignments(List) and DERProgram(List).

The profile gives the PEV exactly one FunctionSetAssignments pointing at one DERProgram, whose
DefaultDERControl and DERControlList carry the management information. Note the schema order
of FunctionSetAssignments: its links (from FunctionSetAssignmentsBase) come *before* mRID.
"""

# ruff: noqa: RUF009  # opt() and many() return dataclasses.field(...) specifiers

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from firmware.sep2.base import SubscribableIdentifiedObject, SubscribableList, SubscribableResource
from firmware.sep2.fields import MRID, STR32, UINT8, UINT16, UINT32, many, opt, req
from firmware.sep2.values import Link, ListLink


@dataclass(frozen=True, slots=True, kw_only=True)
class FunctionSetAssignments(SubscribableResource):
    """FunctionSetAssignments: the DERProgramList (and Time) this PEV is to use."""

    TAG: ClassVar[str] = "FunctionSetAssignments"

    der_program_list_link: ListLink | None = opt("DERProgramListLink", ListLink)
    response_set_list_link: ListLink | None = opt("ResponseSetListLink", ListLink)
    time_link: Link | None = opt("TimeLink", Link)
    mrid: str = field(metadata=req("mRID", MRID))
    description: str | None = opt("description", STR32)
    version: int | None = opt("version", UINT16)


@dataclass(frozen=True, slots=True, kw_only=True)
class FunctionSetAssignmentsList(SubscribableList):
    """FunctionSetAssignmentsList."""

    TAG: ClassVar[str] = "FunctionSetAssignmentsList"

    poll_rate: int | None = opt("pollRate", UINT32, attr=True)
    function_set_assignments: tuple[FunctionSetAssignments, ...] = many(
        "FunctionSetAssignments", FunctionSetAssignments
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class DERProgram(SubscribableIdentifiedObject):
    """DERProgram: primacy and links to its default control, controls and curves."""

    TAG: ClassVar[str] = "DERProgram"

    active_der_control_list_link: ListLink | None = opt("ActiveDERControlListLink", ListLink)
    default_der_control_link: Link | None = opt("DefaultDERControlLink", Link)
    der_control_list_link: ListLink | None = opt("DERControlListLink", ListLink)
    der_curve_list_link: ListLink | None = opt("DERCurveListLink", ListLink)
    primacy: int = field(metadata=req("primacy", UINT8))


@dataclass(frozen=True, slots=True, kw_only=True)
class DERProgramList(SubscribableList):
    """DERProgramList: pollRate fixed at 1 s by the profile (§4.1.4)."""

    TAG: ClassVar[str] = "DERProgramList"

    poll_rate: int | None = opt("pollRate", UINT32, attr=True)
    der_programs: tuple[DERProgram, ...] = many("DERProgram", DERProgram)
