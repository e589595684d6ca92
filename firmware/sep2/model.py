"""The engine behind every 2030.5 model: serialize in schema order, parse strictly.

Owns the walk between a frozen dataclass (fields declared in schema order with
``firmware.sep2.fields``) and an lxml element: attributes first, then child elements in the
declared order, optional values omitted. Parsing is strict: an element not declared for its
parent is refused as unknown, a known element that comes back after a later one (out of schema
order) or twice is refused, required ones must be present, stray text is refused. Unknown
*attributes* are ignored (they cannot smuggle content and ``xsi:type`` may legitimately appear).
It does not know any particular resource; those are in the sibling modules.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from firmware.sep2.fields import SPEC_KEY, AnyResource, Sep2ValueError, Spec
from firmware.sep2.xml import NS, XSI_NS, Sep2InputError, clip, qname

M = TypeVar("M", bound="Sep2Model")
XSI_TYPE = f"{{{XSI_NS}}}type"


class Sep2Model:
    """Base of every 2030.5 complex type: frozen, slotted, keyword-only dataclasses."""

    __slots__ = ()


_SPECS: dict[type[Sep2Model], tuple[tuple[str, Spec], ...]] = {}


def specs_of(cls: type[Sep2Model]) -> tuple[tuple[str, Spec], ...]:
    """(attribute name, Spec) for every field of ``cls``, base-type fields first (schema order)."""
    specs = _SPECS.get(cls)
    if specs is None:
        fields = dataclasses.fields(cls)  # type: ignore[arg-type]  # every model is a dataclass
        specs = _SPECS[cls] = tuple((f.name, f.metadata[SPEC_KEY]) for f in fields)
    return specs


def _present(model: Sep2Model) -> Iterator[tuple[Spec, Any]]:
    for attr, spec in specs_of(type(model)):
        value = getattr(model, attr)
        if value is None or (spec.many and not value):
            if spec.required:
                raise Sep2ValueError(f"{type(model).__name__}.{attr} is required")
            continue
        yield spec, value


def fill_element(element: Any, model: Sep2Model) -> None:
    """Set ``model``'s attributes on ``element`` and append its children in schema order."""
    for spec, value in _present(model):
        if spec.attr:
            element.set(spec.name, spec.kind.encode(value))
        elif spec.many:
            if spec.max_occurs is not None and len(value) > spec.max_occurs:
                raise Sep2ValueError(f"more than {spec.max_occurs} {spec.name}")
            for item in value:
                _append(element, spec, item)
        else:
            _append(element, spec, value)


def _append(parent: Any, spec: Spec, value: Any) -> None:
    # lxml: imported when XML is made or read (the models are used without XML, too)
    from lxml import etree

    child = etree.SubElement(parent, qname(spec.name))
    if spec.kind is AnyResource:
        child.set(XSI_TYPE, value.TAG)  # the default namespace resolves the type name
        fill_element(child, value)
    elif spec.is_scalar:
        child.text = spec.kind.encode(value)
    else:
        if not isinstance(value, spec.kind):
            raise Sep2ValueError(f"{spec.name} must be a {spec.kind.__name__}")
        fill_element(child, value)


def uses_xsi(cls: type[Sep2Model]) -> bool:
    """Whether documents of ``cls`` may carry ``xsi:type`` (declare the prefix at the root)."""
    return any(spec.kind is AnyResource for _, spec in specs_of(cls))


def decode_element(cls: type[M], element: Any) -> M:
    """Build a ``cls`` from ``element``, refusing what the schema (as modelled) does not allow."""
    from lxml import etree

    parent = etree.QName(element).localname
    specs = specs_of(cls)
    values: dict[str, Any] = {}
    for attr, spec in specs:
        if spec.attr:
            text = element.get(spec.name)
            if text is not None:
                values[attr] = spec.kind.decode(text, f"{parent}@{spec.name}")
            elif spec.required:
                raise Sep2InputError(f"{parent}: missing required attribute {spec.name}")
    if (element.text or "").strip():
        raise Sep2InputError(f"{parent}: unexpected text")
    _decode_children(parent, [(a, s) for a, s in specs if not s.attr], element, values)
    for attr, spec in specs:
        if spec.required and not spec.attr and attr not in values:
            raise Sep2InputError(f"{parent}: missing required element {spec.name}")
    factory: Callable[..., M] = cls
    return factory(**values)


def _decode_children(
    parent: str, specs: list[tuple[str, Spec]], element: Any, values: dict[str, Any]
) -> None:
    from lxml import etree

    position = 0
    for child in element:
        name = etree.QName(child)
        if name.namespace != NS:
            raise Sep2InputError(f"element {clip(child.tag)} is not in the 2030.5 namespace")
        local = name.localname
        index = _find(specs, local, position)
        if index is None:
            if any(spec.name == local for _, spec in specs):
                raise Sep2InputError(f"{parent}: {clip(local)} out of schema order or repeated")
            raise Sep2InputError(f"{parent}: unknown element {clip(local)}")
        attr, spec = specs[index]
        value = _decode_child(spec, child, f"{parent}/{local}")
        if spec.many:
            items = values.setdefault(attr, [])
            items.append(value)
            if spec.max_occurs is not None and len(items) > spec.max_occurs:
                raise Sep2InputError(f"{parent}: more than {spec.max_occurs} {local}")
            position = index
        else:
            values[attr] = value
            position = index + 1
        if (child.tail or "").strip():
            raise Sep2InputError(f"{parent}: unexpected text after {local}")
    for attr, _ in specs:
        if isinstance(values.get(attr), list):
            values[attr] = tuple(values[attr])


def _find(specs: list[tuple[str, Spec]], local: str, start: int) -> int | None:
    for index in range(start, len(specs)):
        if specs[index][1].name == local:
            return index
    return None


def _decode_child(spec: Spec, child: Any, where: str) -> Any:
    if spec.kind is AnyResource:
        return decode_element(_xsi_type(child, where), child)
    if not spec.is_scalar:
        return decode_element(spec.kind, child)
    if len(child):
        raise Sep2InputError(f"{where}: unexpected child elements")
    return spec.kind.decode(child.text or "", where)


def _xsi_type(element: Any, where: str) -> type[Sep2Model]:
    # Imported here, not at the top: the registry imports every model module.
    from firmware.sep2.registry import resource_type

    value = element.get(XSI_TYPE)
    if value is None:
        raise Sep2InputError(f"{where}: missing xsi:type")
    prefix, _, local = value.strip().rpartition(":")
    if element.nsmap.get(prefix or None) != NS:
        raise Sep2InputError(f"{where}: xsi:type {clip(value)} is not a 2030.5 type")
    found = resource_type(local)
    if found is None:
        raise Sep2InputError(f"{where}: unsupported xsi:type {clip(local)}")
    return found
