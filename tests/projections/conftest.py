"""An event store of the test's own, for tests that count everything in it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from esdblocal import EmbeddedServer
from esdblocal.server import ProjectionOptions


@pytest.fixture
def isolated_uri(tmp_path: Path) -> Iterator[str]:
    """A fresh esdblocal (data on disk) that nothing else writes to: no other test, and no
    system projections (their links would move the head of $all past the test's events)."""
    with EmbeddedServer(
        data_dir=tmp_path / "esdb", projections=ProjectionOptions(run="None")
    ) as server:
        yield server.uri
