"""An event store of the test's own, for tests that count everything in it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from esdblocal import EmbeddedServer


@pytest.fixture
def isolated_uri(tmp_path: Path) -> Iterator[str]:
    """A fresh esdblocal (data on disk) that no other test writes to."""
    with EmbeddedServer(data_dir=tmp_path / "esdb") as server:
        yield server.uri
