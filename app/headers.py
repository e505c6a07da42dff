"""The grammar of every request header the API reads, and the 400 that names one that breaks it.

RFC 9110 gives each field a grammar (``token``, ``quoted-string``, ``entity-tag``,
``HTTP-date``...); the helpers here hold a field value to its grammar before Falcon's own
parsers (``falcon.parse_header``, ``req.if_match``) read its meaning, so a value they would
guess at is refused instead, as ``400 invalid-header`` with the field's name in ``header``.

The patterns for the API's own fields (``Idempotency-Key``, ``Commit-Position``) are the ones
OPTIONS and OpenAPI publish, so what is published and what is accepted are one thing.
"""

from __future__ import annotations

import datetime
import re

import falcon

from app.problems import INVALID_HEADER, INVALID_QUERY, Problem

# RFC 9110 5.6.2 and 5.6.4.
TCHAR = r"!#$%&'*+\-.^_`|~0-9A-Za-z"
TOKEN = f"[{TCHAR}]+"
QUOTED_STRING = r'"(?:[\t !#-\[\]-~\x80-\xff]|\\[\t -~\x80-\xff])*"'
_TOKEN = re.compile(TOKEN)
# RFC 9110 8.3.1: media-type = type "/" subtype parameters; parameters = *( OWS ";" OWS
# [ parameter ] ); parameter = name "=" ( token / quoted-string ).
_PARAMETER = rf"(?:{TOKEN}=(?:{TOKEN}|{QUOTED_STRING}))"
MEDIA_TYPE = re.compile(rf"{TOKEN}/{TOKEN}(?:[ \t]*;[ \t]*{_PARAMETER}?)*")
# RFC 9110 8.8.3 and 13.1.1: If-Match / If-None-Match = "*" / #entity-tag.
_ENTITY_TAG = r'(?:W/)?"[!#-~\x80-\xff]*"'
# (``#`` allows an empty list, 5.6.1: an empty If-None-Match holds no tag, so nothing matches.)
ETAGS = re.compile(rf"\*|(?:[ \t]*,)*(?:[ \t]*{_ENTITY_TAG}(?:[ \t]*,(?:[ \t]*{_ENTITY_TAG})?)*)?")

# The API's own fields: 1 to 200 visible ASCII characters (no space, no control character),
# so a key survives every log line, header and JSON string it is copied into.
IDEMPOTENCY_KEY_MAX = 200
IDEMPOTENCY_KEY_PATTERN = f"^[!-~]{{1,{IDEMPOTENCY_KEY_MAX}}}$"
# A commit position as a 202 gave it: decimal digits, no sign (an EventStoreDB position is an
# unsigned 64-bit number, at most 20 digits; the published pattern allows 19, the top of a
# signed 64-bit integer, which every position the store has reached fits).
COMMIT_POSITION_PATTERN = "^[0-9]{1,19}$"
_IDEMPOTENCY_KEY = re.compile(IDEMPOTENCY_KEY_PATTERN)
_COMMIT_POSITION = re.compile(COMMIT_POSITION_PATTERN)


def invalid(header: str, detail: str) -> Problem:
    return Problem(INVALID_HEADER, f"{header}: {detail}", header=header)


def media_type(value: str, header: str = "Content-Type") -> tuple[str, dict[str, str]]:
    """``type/subtype`` (lower-cased: RFC 9110 8.3.1, the names are case-insensitive) and
    its parameters (names lower-cased, quoted-strings unquoted by ``falcon.parse_header``),
    or a 400 when the value is not a media type."""
    if MEDIA_TYPE.fullmatch(value.strip(" \t")) is None:
        raise invalid(
            header,
            "not a media type (RFC 9110 8.3.1: type/subtype, then ;name=value parameters,"
            " each value a token or a quoted-string).",
        )
    kind, params = falcon.parse_header(value)
    return kind.lower(), params


def entity_tags(req: falcon.Request, header: str) -> None:
    """400 unless If-Match / If-None-Match is ``*`` or a list of entity-tags (quoted)."""
    value = req.get_header(header)
    if value is not None and ETAGS.fullmatch(value.strip(" \t")) is None:
        raise invalid(
            header,
            'expected * or entity-tags in double quotes, e.g. "abc" or W/"abc" (RFC 9110 8.8.3).',
        )


def idempotency_key(req: falcon.Request) -> str | None:
    """The key as sent (absent: None), or a 400 for an empty, over-long or unprintable one.

    The httpapi draft sends the key as a structured-field string (``"8e03978e..."``); a
    value in plain double quotes is the key between them, so both spellings are one key."""
    value = req.get_header("Idempotency-Key")
    if value is None:
        return None
    if _IDEMPOTENCY_KEY.fullmatch(value) is None or value == '""':
        raise invalid(
            "Idempotency-Key",
            f"1 to {IDEMPOTENCY_KEY_MAX} visible ASCII characters (no spaces), e.g. a UUID.",
        )
    inner = value[1:-1]
    if len(value) > 2 and value[0] == value[-1] == '"' and '"' not in inner and "\\" not in inner:
        return inner
    return value


def identifier(value: str | None) -> bool:
    """Is this a request or correlation id we pass on (the Idempotency-Key's grammar)?"""
    return value is not None and _IDEMPOTENCY_KEY.fullmatch(value) is not None


def correlation_id(req: falcon.Request) -> str | None:
    """``X-Correlation-Id`` (it goes into every event's metadata), or a 400 when it is not
    1 to 200 visible ASCII characters."""
    value = req.get_header("X-Correlation-Id")
    if value is not None and not identifier(value):
        raise invalid(
            "X-Correlation-Id",
            f"1 to {IDEMPOTENCY_KEY_MAX} visible ASCII characters (no spaces).",
        )
    return value


def commit_position(value: str, name: str) -> int:
    """A commit position (decimal digits), or a 400 naming the header or query parameter
    ``name`` it came from."""
    if _COMMIT_POSITION.fullmatch(value) is None:
        detail = (
            f"{name}: a commit position is the non-negative integer a 202 answered in"
            " Commit-Position."
        )
        if name == "Commit-Position":
            raise Problem(INVALID_HEADER, detail, header=name)
        raise Problem(INVALID_QUERY, detail, parameter=name)
    return int(value)


# RFC 7240 2: Prefer = 1#preference; preference = token [ BWS "=" BWS word ]
# *( OWS ";" [ OWS parameter ] ); parameter = token [ BWS "=" BWS word ].
_WORD = f"(?:{TOKEN}|{QUOTED_STRING})"
_PAIR = rf"{TOKEN}(?:[ \t]*=[ \t]*{_WORD})?"
_PREFERENCE = re.compile(
    rf"(?:[ \t]*,)*[ \t]*(?P<name>{TOKEN})(?:[ \t]*=[ \t]*(?P<value>{_WORD}))?"
    rf"(?:[ \t]*;(?:[ \t]*{_PAIR})?)*[ \t]*(?:,|$)"
)


def preferences(req: falcon.Request) -> dict[str, str]:
    """RFC 7240 preferences by lower-cased name (the first of a name counts, 2), values
    unquoted (a preference without one: ""); 400 when Prefer breaks the grammar."""
    found: dict[str, str] = {}
    text = (req.get_header("Prefer") or "").strip(" \t")  # repeated fields: joined by ","
    position = 0
    while position < len(text):
        match = _PREFERENCE.match(text, position)
        if match is None or match.end() == position:
            raise invalid("Prefer", "not a list of preferences (RFC 7240: token[=value]).")
        word = match["value"] or ""
        if word.startswith('"'):
            word = re.sub(r"\\(.)", r"\1", word[1:-1])
        found.setdefault(match["name"].lower(), word)
        position = match.end()
    return found


# RFC 9110 5.6.7: IMF-fixdate, and the obsolete rfc850-date and asctime-date a recipient must
# also accept.
_DAY = "(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)"
_LONG_DAY = "(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday)"
_MONTH = "(?P<month>Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)"
_TIME = r"(?P<hour>\d\d):(?P<minute>\d\d):(?P<second>\d\d)"
_DATES = (
    re.compile(rf"{_DAY}, (?P<day>\d\d) {_MONTH} (?P<year>\d{{4}}) {_TIME} GMT"),
    re.compile(rf"{_LONG_DAY}, (?P<day>\d\d)-{_MONTH}-(?P<year>\d\d) {_TIME} GMT"),
    re.compile(rf"{_DAY} {_MONTH} (?P<day>[ \d]\d) {_TIME} (?P<year>\d{{4}})"),
)
_MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


def http_date(value: str, header: str) -> datetime.datetime:
    """An HTTP-date (RFC 9110 5.6.7) in UTC, or a 400 naming the header."""
    for number, pattern in enumerate(_DATES):
        found = pattern.fullmatch(value.strip(" \t"))
        if found is None:
            continue
        year = int(found["year"])
        if number == 1:  # two digits: RFC 9110 5.6.7, at most 50 years ahead
            now = datetime.datetime.now(datetime.UTC).year
            year += now - now % 100
            if year > now + 50:
                year -= 100
        try:
            return datetime.datetime(
                year,
                _MONTHS.index(found["month"]) + 1,
                int(found["day"]),
                int(found["hour"]),
                int(found["minute"]),
                int(found["second"]),
                tzinfo=datetime.UTC,
            )
        except ValueError:
            break
    raise invalid(
        header,
        "an HTTP date (RFC 9110 5.6.7), e.g. Thu, 31 May 2007 20:35:00 GMT.",
    )


def is_token(value: str) -> bool:
    return _TOKEN.fullmatch(value) is not None
