"""Fixtures shared by every suite: a real esdblocal on a free port, reached over gRPC."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from uuid import uuid4

import pytest
from esdbclient import EventStoreDBClient

from esdblocal import EmbeddedServer
from esdblocal.server import with_credentials


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


@dataclass(frozen=True)
class SecureNode:
    """A secure esdblocal process: TLS with generated certificates, users admin and ops."""

    uri: str  # as printed: no credentials, tls=true&tlsCAFile=<its CA>
    data: Path
    process: subprocess.Popen[str]

    @property
    def ca(self) -> Path:
        return self.data / "certs" / "ca" / "ca.crt"

    @property
    def target(self) -> str:
        return self.uri.removeprefix("esdb://").split("?")[0]

    def uri_as(self, user: str = "admin", password: str = "changeit") -> str:
        return with_credentials(self.uri, user, password)


def start_secure_node(data: Path, *args: str) -> SecureNode:
    process = subprocess.Popen(
        [sys.executable, "-m", "esdblocal", "--tls", "--port", "0", "--data", str(data), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdout is not None
    uri = process.stdout.readline().strip()
    assert uri.startswith("esdb://"), f"esdblocal did not start (exit {process.poll()})"
    return SecureNode(uri, data, process)


@pytest.fixture(scope="session")
def secure_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureNode]:
    """One secure esdblocal process for the session (``--tls``; a user ``app`` in no group)."""
    node = start_secure_node(tmp_path_factory.mktemp("secure-esdb"), "--user", "app:app-secret")
    try:
        yield node
    finally:
        node.process.terminate()
        node.process.wait(timeout=20)
