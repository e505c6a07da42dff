"""The problems registry: every refusal the domain can make has a kind, and every kind a
number, a slug and a status of its own (numbers are published: never two for one)."""

from __future__ import annotations

from collections import Counter

import pytest

from app.problems import BY_DOMAIN_ERROR, BY_NUMBER, KINDS
from domain.errors import ErrorCode


@pytest.mark.parametrize("code", list(ErrorCode))
def test_every_domain_error_maps_to_a_kind(code: ErrorCode) -> None:
    kind = BY_DOMAIN_ERROR[code]
    assert kind.domain is code
    assert 400 <= kind.status < 500  # the client's request, refused: never a 5xx


def test_every_kind_is_registered_once_with_a_number_of_its_own() -> None:
    numbers = [kind.number for kind in KINDS]
    assert numbers == sorted(numbers)
    assert len(BY_NUMBER) == len(KINDS)
    for attribute in ("number", "slug"):
        repeated = Counter(getattr(kind, attribute) for kind in KINDS)
        assert max(repeated.values()) == 1, repeated.most_common(1)
    domains = [kind.domain for kind in KINDS if kind.domain is not None]
    assert len(domains) == len(set(domains)), "a domain error maps to one kind"
