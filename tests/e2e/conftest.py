"""The real stack for end-to-end tests: esdblocal, the projector and gunicorn processes."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


GUNICORN = str(Path(sys.executable).with_name("gunicorn"))


def stack_env(data: Path, uri: str, port: int, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "ESDB_URI": uri,
        "DATA_DIR": str(data),
        "PORT": str(port),
        "WEB_WORKERS": "2",
        "READ_WAIT": "0.5",
        **extra,
    }


def start_web(env: dict[str, str], **kwargs: Any) -> subprocess.Popen[str]:
    """gunicorn as the Procfile starts it."""
    return subprocess.Popen(
        [GUNICORN, "-c", "deploy/gunicorn.conf.py", "app.wsgi:app"],
        cwd=ROOT,
        env=env,
        text=True,
        **kwargs,
    )


def start_projector(env: dict[str, str], **kwargs: Any) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "projections"], cwd=ROOT, env=env, text=True, **kwargs
    )


def wait_for_port(port: int, web: subprocess.Popen[str], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline or web.poll() is not None:
                raise
            time.sleep(0.1)


@contextlib.contextmanager
def running(env: dict[str, str]) -> Iterator[tuple[subprocess.Popen[str], subprocess.Popen[str]]]:
    """The web and the projector for ``env``; both must exit 0 on SIGTERM afterwards."""
    web = start_web(env)
    projector = start_projector(env)
    try:
        wait_for_port(int(env["PORT"]), web)
        yield web, projector
    finally:
        for process in (web, projector):
            process.terminate()
        for process in (web, projector):
            assert process.wait(timeout=30) == 0


@contextlib.contextmanager
def whole_stack(data: Path, **extra: str) -> Iterator[tuple[int, str, subprocess.Popen[str]]]:
    """esdblocal (durable, under ``data``), the projector and gunicorn as `make run` starts
    them, with ``extra`` settings. Yields (port, esdb uri, the projector process)."""
    esdb = subprocess.Popen(
        [sys.executable, "-m", "esdblocal", "--port", "0", "--data", str(data / "esdb")],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert esdb.stdout is not None
    uri = esdb.stdout.readline().strip()
    port = free_port()
    try:
        with running(stack_env(data, uri, port, **extra)) as (_, projector):
            yield port, uri, projector
    finally:
        esdb.terminate()
        assert esdb.wait(timeout=20) == 0


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, str]]:
    """The whole stack with 2 workers. Yields (port, esdb uri)."""
    with whole_stack(tmp_path_factory.mktemp("e2e")) as (port, uri, _):
        yield port, uri


def call(
    port: int, method: str, path: str, body: Any = None, **headers: str
) -> tuple[int, dict[str, str], Any]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    data = json.dumps(body).encode() if body is not None else None
    connection.request(
        method, path, body=data, headers={k.replace("_", "-"): v for k, v in headers.items()}
    )
    response = connection.getresponse()
    raw = response.read()
    connection.close()
    return (
        response.status,
        {k.lower(): v for k, v in response.getheaders()},
        json.loads(raw) if raw else None,
    )
