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


class FieldError(msgspec.Struct, frozen=True, kw_only=True):
    """One field that breaks a rule: its JSON name (camelCase) and why."""

    field: str
    message: str


class DomainError(msgspec.Struct, frozen=True, kw_only=True):
    code: ErrorCode
    message: str
    fields: tuple[FieldError, ...] = ()
