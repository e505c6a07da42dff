"""Fixtures shared by every suite: a real esdblocal on a free port, reached over gRPC."""

from __future__ import annotations

from collections.abc import Iterator
from uuid import uuid4

import pytest
from esdbclient import EventStoreDBClient

from esdblocal import EmbeddedServer


@pytest.fixture(scope="session")
def esdb_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedServer]:
    """One durable esdblocal for the session (data on disk, as in development)."""
    with EmbeddedServer(data_dir=tmp_path_factory.mktemp("esdb")) as server:
        yield server


@pytest.fixture(scope="session")
def esdb_uri(esdb_server: EmbeddedServer) -> str:
    return esdb_server.uri


@pytest.fixture(scope="session")
def client(esdb_uri: str) -> Iterator[EventStoreDBClient]:
    with EventStoreDBClient(esdb_uri) as esdb_client:
        yield esdb_client


@pytest.fixture
def stream_name() -> str:
    """A fresh stream per test, named category-<uuid> like the product's streams."""
    return f"test-{uuid4()}"
