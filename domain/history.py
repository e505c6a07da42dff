"""Recorded events into state, with one meaning for an impossible history on both sides.

The command side rebuilds an aggregate and the projector builds a row from the same stream
with this one function, so they cannot disagree: an event that cannot be read (not JSON, the
wrong shape, a value out of range, an unknown type, data whose ``type`` is not the recorded
type) or that the aggregate refuses (``ImpossibleEvent``) leaves the state as it was. The
stream's version still counts it. The read side records it in its quarantine; the command
side logs it and carries on.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import msgspec

from domain.errors import ImpossibleEvent

S = TypeVar("S")


def event_type(event: msgspec.Struct) -> str:
    """The EventStoreDB event type of a domain event (its msgspec tag)."""
    return str(event.__struct_config__.tag)


def evolve(
    decoder: msgspec.json.Decoder[Any],
    apply: Callable[[S, Any], S],
    state: S,
    recorded_type: str,
    data: bytes,
) -> S:
    """``state`` after one recorded event, or ``ImpossibleEvent`` saying why not."""
    try:
        event = decoder.decode(data)
    except (msgspec.DecodeError, ValueError, RecursionError) as error:
        # ValueError: data that is not UTF-8; RecursionError: nested beyond the parser.
        raise ImpossibleEvent(f"cannot be read: {error}") from None
    decoded_type = event_type(event)
    if decoded_type != recorded_type:
        raise ImpossibleEvent(f"its data says {decoded_type!r}, the store says {recorded_type!r}")
    return apply(state, event)
