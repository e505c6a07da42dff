"""What a GET asks for, read from its query string and headers (400 ``invalid-query`` when
it makes no sense): paging, a list's filters (declared on the view), a commit position."""

from __future__ import annotations

from collections.abc import Sequence

import falcon

from app import headers
from app.problems import INVALID_QUERY, Problem
from projections.reader import Filters
from projections.views import View

DEFAULT_LIMIT = 10
MAX_LIMIT = 100
MAX_OFFSET = 2**53  # SQLite integers are 64-bit; no list is longer than this
COMMIT_POSITION = "Commit-Position"
POSITION_PARAMETER = "commitPosition"
STATES = ("active", "deactivated", "all")


def integer(req: falcon.Request, name: str, default: int, minimum: int) -> int:
    text = req.get_param(name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        value = minimum - 1
    if value < minimum:
        raise Problem(
            INVALID_QUERY, f"`{name}` is an integer of at least {minimum}.", parameter=name
        )
    return value


def paging(req: falcon.Request) -> tuple[int, int]:
    """``offset`` (default 0) and ``limit`` (default 10, capped at 100)."""
    offset = min(integer(req, "offset", 0, 0), MAX_OFFSET)  # beyond: past the end anyway
    limit = min(integer(req, "limit", DEFAULT_LIMIT, 1), MAX_LIMIT)
    return offset, limit


def refuse_unknown(req: falcon.Request, known: Sequence[str]) -> None:
    """A misspelt filter would silently return everything: refuse it instead."""
    accepted = ("offset", "limit", POSITION_PARAMETER, *known)
    unknown = sorted(set(req.params) - set(accepted))
    if unknown:
        raise Problem(
            INVALID_QUERY,
            f"Unknown query parameter(s): {', '.join(unknown)}.",
            accepted=list(accepted),
        )


def filters(req: falcon.Request, view: View[object]) -> Filters:
    """The state, the view's equality filters and the text a list asks for."""
    refuse_unknown(req, ("state", "query", *(f.name for f in view.filters)))
    state = req.get_param("state", default="active")
    if state not in STATES:
        raise Problem(INVALID_QUERY, f"`state` is one of {', '.join(STATES)}.", parameter="state")
    equal = []
    for declared in view.filters:
        text = req.get_param(declared.name)
        if text is None:
            continue
        try:
            equal.append((declared.name, declared.value(text)))
        except ValueError:
            raise Problem(
                INVALID_QUERY,
                f"`{declared.name}`: {declared.description}",
                parameter=declared.name,
            ) from None
    return Filters(state=state, equal=tuple(equal), query=req.get_param("query") or None)


def commit_position(req: falcon.Request) -> int | None:
    """The position a client wants to read its writes at, if it gave one (the header, else
    the query parameter); a value that is not one is a 400 naming where it was."""
    header = req.get_header(COMMIT_POSITION)
    query = req.get_param(POSITION_PARAMETER)
    # Both are held to the grammar, even when the header (which wins) makes the other moot.
    parameter = headers.commit_position(query, POSITION_PARAMETER) if query is not None else None
    if header is not None:
        return headers.commit_position(header, COMMIT_POSITION)
    return parameter
