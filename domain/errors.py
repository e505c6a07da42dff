"""Domain errors: values, not exceptions, so that ``fire`` can return them like events.

Each kind has a stable ``code``; the HTTP edge maps codes to status, title and errorCode,
and nothing here knows about HTTP.
"""

from __future__ import annotations

from enum import StrEnum

import msgspec


class ErrorCode(StrEnum):
    ALREADY_EXISTS = "already-exists"
    NOT_FOUND = "not-found"
    INVALID_NAME = "invalid-name"
    ITEM_INACTIVE = "item-inactive"
    INSUFFICIENT_STOCK = "insufficient-stock"
    INVALID_CAR = "invalid-car"
    IMMUTABLE_FIELD = "immutable-field"
    MILEAGE_DECREASE = "mileage-decrease"
    CAR_DELETED = "car-deleted"
    STOCK_LIMIT = "stock-limit"


class FieldError(msgspec.Struct, frozen=True, kw_only=True):
    """One field that breaks a rule: its JSON name (camelCase) and why."""

    field: str
    message: str


class DomainError(msgspec.Struct, frozen=True, kw_only=True):
    code: ErrorCode
    message: str
    fields: tuple[FieldError, ...] = ()


class ImpossibleEvent(Exception):
    """A recorded event the model cannot accept: unreadable, or one that ``fire`` could never
    have decided from the state before it (an event before the creation event, stock below
    zero or beyond ``MAX_SAFE_INTEGER``, a change after retirement).

    Both sides give it one meaning: the event has no effect on the state, and it still counts
    toward the stream's version (the version is the stream's, not the model's). The read side
    also quarantines it; see ``domain.history``.
    """
