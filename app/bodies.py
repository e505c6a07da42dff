"""Request bodies: bounded before they are read, and held to I-JSON (RFC 7493) before any
model sees them.

The limit comes first: ``BodyLimit`` refuses a declared ``Content-Length`` above
``MAX_BODY_BYTES`` before a byte of the body is read (a client declaring 2 GB and sending
nothing is answered at once), and ``read_body`` stops a chunked body one byte past the
limit. Then ``check_json`` refuses, each as a 400 ``malformed-body``, what a lenient parser
would let through and a later step would choke on or read differently: a byte order mark,
bytes that are not UTF-8, a lone surrogate escape, a member name twice in one object,
``NaN``/``Infinity``, and nesting deeper than ``MAX_JSON_DEPTH``.

msgspec decodes the commands; it has no hook for duplicate member names, so the I-JSON check
parses once with the standard library's ``object_pairs_hook``, which exists for exactly that.
"""

from __future__ import annotations

import codecs
import decimal
import json
from typing import Any, NoReturn

import falcon

from app.problems import BODY_TOO_LARGE, MALFORMED_BODY, MALFORMED_REQUEST, Problem

DEFAULT_MAX_BODY_BYTES = 65_536
MAX_JSON_DEPTH = 32  # the commands are flat objects; 32 leaves room and bounds the walk
_LIMIT = "body_limit"


class BodyLimit:
    """Falcon middleware: 413 for a declared Content-Length above the limit, unread."""

    def __init__(self, limit: int) -> None:
        self.limit = limit

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        setattr(req.context, _LIMIT, self.limit)
        length = req.content_length
        if length is not None and length > self.limit:
            _too_large(self.limit, f"Content-Length {length}")


def read_body(req: falcon.Request) -> bytes:
    """The whole body, or 413 as soon as it grows past the limit (chunked bodies too)."""
    limit: int = getattr(req.context, _LIMIT, DEFAULT_MAX_BODY_BYTES)
    # Without Content-Length (chunked), Falcon's bounded_stream reads nothing; the server's
    # own stream ends where the chunked body does.
    source = req.bounded_stream if req.content_length is not None else req.stream
    try:
        body: bytes = source.read(limit + 1)
    except Exception as error:  # the server's body reader: broken chunking, a cut connection
        raise Problem(
            MALFORMED_REQUEST, f"The body could not be read: {type(error).__name__}: {error}."
        ) from None
    if len(body) > limit:
        _too_large(limit, "the body sent")
    return body


def _too_large(limit: int, what: str) -> NoReturn:
    raise Problem(
        BODY_TOO_LARGE,
        f"{what} is larger than the {limit} bytes this API accepts.",
        max_body_bytes=limit,
    )


class _Refused(Exception):
    pass


def _unique_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: set[str] = set()
    for name, _ in pairs:
        if name in seen:
            raise _Refused(f"The member {name!r} appears twice in one object.")
        seen.add(name)
    return dict(pairs)


def _no_constant(name: str) -> Any:
    raise _Refused(f"{name} is not a JSON number.")


class _Integral(int):
    """An integer written with a fraction or an exponent (``5.0``, ``5e0``)."""


def _number(text: str) -> Any:
    """A JSON number with a fraction or exponent: an integer when it is one (JSON Schema
    calls ``5.0`` an integer, so the published ``"type": "integer"`` admits it), else the
    float. Exponents beyond 18 digits stay floats (no 1e999999999 is ever expanded)."""
    number = decimal.Decimal(text)
    if abs(number.adjusted()) <= 18 and number == number.to_integral_value():
        return _Integral(number)
    return float(text)


def check_json(body: bytes) -> bytes:
    """400 unless ``body`` is I-JSON: UTF-8 without a BOM, unique names, no lone
    surrogates, no NaN or Infinity, at most ``MAX_JSON_DEPTH`` levels deep.

    Answers the body to decode: ``body`` itself, or, when it writes an integer with a
    fraction or exponent (``{"count": 5.0}``), the same JSON with that integer written
    plainly (``{"count": 5}``), which msgspec's integer fields take; any other number is
    left as it was, so ``5.5`` is still refused where an integer is expected."""
    if body.startswith(codecs.BOM_UTF8):
        _malformed("The body starts with a byte order mark; JSON text has none (RFC 8259 8.1).")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        _malformed(f"The body is not UTF-8 (byte {error.start} cannot be decoded).")
    try:
        value = json.loads(
            text,
            object_pairs_hook=_unique_members,
            parse_constant=_no_constant,
            parse_float=_number,
        )
    except _Refused as refused:
        _malformed(str(refused))
    except RecursionError:
        _too_deep()
    except json.JSONDecodeError as error:
        _malformed(f"The body is not JSON: {error}.")
    if _walk(value):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()
    return body


def _walk(value: Any) -> bool:
    """Depth and text of every value, without recursion (the value may be deep); True when
    an integer was written with a fraction or an exponent."""
    integral = False
    pending: list[tuple[Any, int]] = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict):
            if depth > MAX_JSON_DEPTH:
                _too_deep()
            for name, member in item.items():
                _text(name)
                pending.append((member, depth + 1))
        elif isinstance(item, list):
            if depth > MAX_JSON_DEPTH:
                _too_deep()
            pending.extend((member, depth + 1) for member in item)
        elif isinstance(item, str):
            _text(item)
        elif isinstance(item, _Integral):
            integral = True
    return integral


def _text(value: str) -> None:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        _malformed("The body holds a lone surrogate escape (\\ud800-\\udfff): not Unicode text.")


def _too_deep() -> NoReturn:
    _malformed(f"The body nests arrays or objects deeper than {MAX_JSON_DEPTH} levels.")


def _malformed(detail: str) -> NoReturn:
    raise Problem(MALFORMED_BODY, detail, errors=[{"field": "", "message": detail}])
