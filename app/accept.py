"""``Accept`` as ranges, parsed with Falcon's own ``parse_header`` (q-values and the 5LMT
parameters kept); what both content negotiation and the problem details' format read."""

from __future__ import annotations

from dataclasses import dataclass

import falcon

JSON = "application/json"
XML = "application/xml"


@dataclass(frozen=True, slots=True)
class Range:
    media_type: str
    q: float
    model: str | None
    version: str | None
    order: int

    def matches(self, media_type: str) -> bool:
        kind, _, sub = self.media_type.partition("/")
        if self.media_type == "*/*":
            return True
        if sub == "*":
            return media_type.startswith(kind + "/")
        return self.media_type == media_type

    @property
    def specificity(self) -> int:
        if self.media_type == "*/*":
            return 0
        return 1 if self.media_type.endswith("/*") else 2 + (self.model is not None)


def ranges(accept: str | None) -> list[Range]:
    """The ranges of an Accept header (none: everything, as if ``*/*``)."""
    if not accept or not accept.strip():
        return [Range("*/*", 1.0, None, None, 0)]
    found = []
    for order, text in enumerate(part for part in accept.split(",") if part.strip()):
        media_type, params = falcon.parse_header(text.strip())
        try:
            q = float(params.get("q", "1"))
        except ValueError:
            q = 0.0
        found.append(
            Range(media_type.lower(), q, params.get("domain-model"), params.get("version"), order)
        )
    return found


def prefers_xml(accept: str | None) -> bool:
    """Does the client accept XML and not JSON (for problem details, RFC 9457 appendix B)?"""
    acceptable = [r for r in ranges(accept) if r.q > 0]

    def takes(*types: str) -> bool:
        return any(r.matches(t) for r in acceptable for t in types)

    return takes(XML, "application/problem+xml") and not takes(JSON, "application/problem+json")
