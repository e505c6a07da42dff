"""Documentation from a live server: the generator against the real stack (schemathesis,
with its stateful phase, is in test_outside_tools.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from app.api import create_app
from app.description import RouteTable, operations
from app.problems import KINDS
from app.settings import Settings
from tests.e2e.conftest import ROOT

pytestmark = pytest.mark.slow


def routing_table(tmp: Path) -> RouteTable:
    routes = RouteTable()
    create_app(Settings("esdb://127.0.0.1:1?tls=false", tmp, bytes(64)), routes=routes)
    return routes


def test_the_generator_learns_every_route_and_domain_model_from_options(
    stack: tuple[int, str], tmp_path: Path
) -> None:
    port, _ = stack
    out = tmp_path / "docs"
    done = subprocess.run(
        [sys.executable, "-m", "tools.docs", f"http://127.0.0.1:{port}/v1", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    markdown = (out / "API.md").read_text()
    page = (out / "index.html").read_text()
    routes = routing_table(tmp_path)
    for route in routes.routes:
        assert f"`{route.path}`" in markdown, route.path
        assert f"<code>{route.path}</code>" in page, route.path
        for method, op in operations(route.resource, route.suffix).items():
            assert f"### {method} `{route.path}`" in markdown
            for model in op.accepts:
                assert f"`{model.__name__}`" in markdown
            if op.model_name:
                assert op.model_name in markdown
            if method == "GET" and len(op.offered) > 1:
                for name, media_type in op.offered:  # every format and representation
                    assert f"`{media_type}; domain-model={name}; version=1.0.0`" in markdown
    for kind in KINDS:
        assert f"| {kind.number} | {kind.status} | {kind.title} |" in markdown


def test_the_generator_says_clearly_when_the_server_is_not_there(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tools.docs", "http://127.0.0.1:9/v1", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "cannot read http://127.0.0.1:9/v1" in done.stderr
    assert "Traceback" not in done.stderr
