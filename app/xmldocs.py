"""XML renderings of the same representations, built with the standard library's
ElementTree (never by string formatting): the root element is the domain-model, each member
an element of the same (camelCase) name, each list member an ``<item>``; links keep their
``rel`` and ``href`` as attributes, as in Atom. Problem details follow RFC 9457's appendix
(``<problem xmlns="urn:ietf:rfc:7807">``)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

import msgspec

PROBLEM_NAMESPACE = "urn:ietf:rfc:7807"


def _fill(element: ET.Element, value: Any) -> None:
    if isinstance(value, dict):
        if set(value) >= {"rel", "href"} and all(
            not isinstance(v, dict | list) for v in value.values()
        ):
            for name, member in value.items():
                element.set(name, _text(member))
            return
        for name, member in value.items():
            _fill(ET.SubElement(element, name), member)
    elif isinstance(value, list):
        for member in value:
            _fill(ET.SubElement(element, "item"), member)
    elif value is None:
        element.set("nil", "true")
    else:
        element.text = _text(value)


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def render(model: str, value: Any) -> bytes:
    """``value`` (a Struct, or what msgspec can turn into builtins) as an XML document whose
    root is ``model``."""
    root = ET.Element(model)
    _fill(root, msgspec.to_builtins(value))
    document: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return document


def problem(details: Any) -> bytes:
    root = ET.Element("problem", xmlns=PROBLEM_NAMESPACE)
    _fill(root, msgspec.to_builtins(details))
    document: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return document
