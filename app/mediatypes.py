"""The media types the API speaks, with the five levels as parameters."""

from __future__ import annotations

JSON = "application/json"
VERSION = "1.0.0"


def content_type(domain_model: str) -> str:
    """The response media type with every level as a parameter."""
    return (
        f"{JSON}; charset=utf-8; domain-model={domain_model}; version={VERSION};"
        f" format={JSON}; schema=application/schema+json; is-text=true"
    )
