"""Five levels of media type: commands named by ``domain-model``, responses that say theirs.

A request names its command with the ``domain-model`` parameter of its Content-Type
(``application/json; domain-model=RenameInventoryItemCommand``), parsed with Falcon's own
``parse_header`` (parameter names are case-insensitive; nothing here matches substrings).
Where a method accepts one command the parameter may be left out; where it accepts several,
a missing or unknown one is a 415 naming those it accepts. Bodies decode with decoders built
once per model; a body that does not fit gets a 400 listing every field error at once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

import falcon
import msgspec

from app import headers
from app.accept import JSON
from app.bodies import check_json, read_body
from app.problems import MALFORMED_BODY, UNSUPPORTED_MEDIA_TYPE, Problem

__all__ = ["JSON", "VERSION", "Accepts", "content_type", "field_errors"]
VERSION = "1.0.0"


def content_type(domain_model: str, media_type: str = JSON) -> str:
    """The response media type with every level as a parameter.

    A parameter value is a token or a quoted-string (RFC 9110 5.6.6), and ``/`` is no token
    character, so the two values that are media types are quoted-strings: every parser
    reads them back as the media type itself, where the seed's percent-encoding
    (``format=application%2fjson``) would leave each client to decode it by hand."""
    return (
        f"{media_type}; charset=utf-8; domain-model={domain_model}; version={VERSION};"
        f' format="{media_type}"; schema="application/schema+json"; is-text=true'
    )


Rules = Callable[[dict[str, Any]], list[dict[str, str]]]
C = TypeVar("C", bound=msgspec.Struct, covariant=True)


class Accepts(Generic[C]):
    """The commands one method of one route accepts, with their decoders built once;
    ``read`` gives one of them, typed as they are (``Accepts[A | B]`` for two)."""

    def __init__(self, *models: type[C]) -> None:
        self.models = models
        self._decoders = {model.__name__: msgspec.json.Decoder(model) for model in models}
        self._by_name = {model.__name__: model for model in models}

    @property
    def names(self) -> list[str]:
        return list(self._by_name)

    def read(self, req: falcon.Request, rules: Rules | None = None) -> tuple[C, bytes]:
        """The command in the request body (and the body), or a 415/400 problem.

        ``rules`` are the domain's rules over the raw fields: when a field's type is wrong,
        the 400 lists them too (for the fields that did decode), so every error comes at
        once.
        """
        if req.content_type is None:
            media_type, params = JSON, dict[str, str]()
        else:
            media_type, params = headers.media_type(req.content_type)
        body = read_body(req)
        if req.content_type is None and body:
            self._unsupported("a body needs a Content-Type")
        if media_type != JSON:
            self._unsupported(f"{media_type} is not {JSON}")
        charset = params.get("charset", "utf-8").lower()
        if charset != "utf-8":
            self._unsupported(f"JSON is UTF-8 (RFC 8259 8.1), not {charset}")
        name = params.get("domain-model")
        if name is None:
            if len(self.models) != 1:
                self._unsupported("this method accepts several commands: name one")
            name = self.models[0].__name__
        elif name not in self._by_name:
            self._unsupported(f"{name} is not a command this method accepts")
        model = self._by_name[name]
        if not body and not _required_fields(model):
            body = b"{}"  # e.g. DELETE with no body at all
        body = check_json(body)
        try:
            command = self._decoders[name].decode(body)
        except msgspec.DecodeError:
            errors = field_errors(model, body)
            if rules is not None:
                raw = msgspec.json.decode(body)
                flagged = {error["field"] for error in errors}
                if isinstance(raw, dict):
                    errors += [e for e in rules(raw) if e["field"] not in flagged]
            raise Problem(
                MALFORMED_BODY,
                f"The body does not fit {name}.",
                domain_model=name,
                errors=errors,
            ) from None
        return command, body

    def _unsupported(self, why: str) -> None:
        raise Problem(
            UNSUPPORTED_MEDIA_TYPE,
            f"Unsupported media type: {why}. Accepted domain-models: {', '.join(self.names)}.",
            accepted=[f"{JSON}; domain-model={name}" for name in self.names],
        )


def _required_fields(model: type[msgspec.Struct]) -> Sequence[str]:
    return [f.encode_name for f in msgspec.structs.fields(model) if f.required]


def field_errors(model: type[msgspec.Struct], body: bytes) -> list[dict[str, str]]:
    """Every reason a body does not fit ``model``, one per field (msgspec stops at one)."""
    try:
        raw: Any = msgspec.json.decode(body)
    except msgspec.DecodeError as error:
        return [{"field": "", "message": f"not JSON: {error}"}]
    if not isinstance(raw, dict):
        return [{"field": "", "message": "expected a JSON object"}]
    fields = {f.encode_name: f for f in msgspec.structs.fields(model)}
    errors = [{"field": name, "message": "unknown field"} for name in raw if name not in fields]
    for name, info in fields.items():
        if name not in raw:
            if info.required:
                errors.append({"field": name, "message": "required"})
            continue
        try:
            msgspec.convert(raw[name], info.type)
        except msgspec.ValidationError as error:
            errors.append({"field": name, "message": str(error)})
    return errors
