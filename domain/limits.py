"""The ranges every accepted value keeps, so that it fits everywhere it flows.

A value accepted here goes into an event (JSON in the event store), the projector's fold,
the read store (SQLite: 64-bit integers, UTF-8 text) and every JSON client (numbers are
exact only within +/-(2^53 - 1)). The types that decode commands and events carry these
bounds as ``msgspec.Meta``, so OPTIONS and OpenAPI show them.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

# The largest integer every JSON client holds exactly (JavaScript's Number.MAX_SAFE_INTEGER).
MAX_SAFE_INTEGER = 2**53 - 1

NAME_MAX = 200
# No control characters (Unicode category Cc: C0, DEL and C1). Lone surrogates never get
# this far: msgspec's JSON decoder refuses them (and the edge says so first, app/bodies.py),
# so the published pattern leaves them out, where JSON Schema tools cannot follow it.
PRINTABLE = r"^[^\x00-\x1f\x7f-\x9f]*$"

Name = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=NAME_MAX,
        pattern=PRINTABLE,
        description=(
            f"1 to {NAME_MAX} characters (Unicode code points), non-empty after trimming,"
            " no control characters"
        ),
    ),
]
Count = Annotated[
    int,
    msgspec.Meta(
        gt=0,
        le=MAX_SAFE_INTEGER,
        description="how many items; the stock they make stays at most 2^53 - 1",
    ),
]
