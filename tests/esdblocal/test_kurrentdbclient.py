"""KurrentDB's v2 calls through kurrentdbclient 1.3.5 itself, the client Python users move to.

kurrentdbclient 1.3 needs grpcio >= 1.80 and protobuf 7, and esdbclient 1.1 pins grpcio
below 1.72: pip cannot put both in one environment. So the client runs in its own
interpreter, ``$KURRENTDBCLIENT_PYTHON`` or ``var/kurrentdbclient/bin/python`` (make it with
``python -m venv var/kurrentdbclient && var/kurrentdbclient/bin/pip install
kurrentdbclient==1.3.5``), talking gRPC to a real esdblocal; without it the test skips.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from esdblocal import EmbeddedServer

ROOT = Path(__file__).resolve().parents[2]
PYTHON = Path(os.environ.get("KURRENTDBCLIENT_PYTHON", ROOT / "var/kurrentdbclient/bin/python"))
VERSION = "1.3.5"

SCRIPT = """
import json, sys, uuid
from kurrentdbclient import KurrentDBClient, NewEvent, StreamState
from kurrentdbclient.events import NewEvents
from kurrentdbclient.exceptions import NotFoundError, WrongCurrentVersionError

client = KurrentDBClient(sys.argv[1])
orders, stock = f"order-{uuid.uuid4()}", f"stock-{uuid.uuid4()}"
client.append_to_stream(stock, current_version=StreamState.NO_STREAM,
                        events=[NewEvent(type="Stocked", data=b"{}")])
def types(stream):
    try:
        return [e.type for e in client.get_stream(stream)]
    except NotFoundError:
        return []
out = {}
try:
    client.multi_append_to_stream([
        NewEvents(stream_name=orders, current_version=StreamState.NO_STREAM,
                  events=[NewEvent(type="Placed", data=b"{}")]),
        NewEvents(stream_name=stock, current_version=StreamState.NO_STREAM,
                  events=[NewEvent(type="Reserved", data=b"{}")]),
    ])
    out["conflict"] = None
except WrongCurrentVersionError as error:
    out["conflict"] = str(error)
out["after_conflict"] = [types(orders), types(stock)]
position = client.multi_append_to_stream([
    NewEvents(stream_name=orders, current_version=StreamState.NO_STREAM,
              events=[NewEvent(type="Placed", data=b"{}", metadata=b'{"tenant": "acme"}')]),
    NewEvents(stream_name=stock, current_version=0,
              events=[NewEvent(type="Reserved", data=b"{}")]),
])
out["after_success"] = [types(orders), types(stock)]
out["position_is_last"] = position == client.get_stream(stock)[-1].commit_position
out["metadata"] = json.loads(client.get_stream(orders)[0].metadata)
print(json.dumps(out))
"""


def _client_version() -> str | None:
    if not PYTHON.exists():
        return None
    found = subprocess.run(
        [PYTHON, "-c", "import importlib.metadata as m; print(m.version('kurrentdbclient'))"],
        capture_output=True,
        text=True,
        check=False,
    )
    return found.stdout.strip() if found.returncode == 0 else None


pytestmark = pytest.mark.skipif(
    _client_version() != VERSION,
    reason=f"kurrentdbclient {VERSION} not in {PYTHON} (see this module's docstring)",
)


@pytest.fixture(scope="module")
def server() -> Iterator[EmbeddedServer]:
    with EmbeddedServer() as running:
        yield running


def test_multi_append_with_a_conflict_in_one_stream_appends_nothing(
    server: EmbeddedServer,
) -> None:
    ran = subprocess.run(
        [PYTHON, "-c", SCRIPT, server.uri], capture_output=True, text=True, timeout=60, check=False
    )
    assert ran.returncode == 0, ran.stderr
    out = json.loads(ran.stdout)
    assert out["conflict"] is not None and "Expected version: -1" in out["conflict"]
    assert out["after_conflict"] == [[], ["Stocked"]]
    assert out["after_success"] == [["Placed"], ["Stocked", "Reserved"]]
    assert out["position_is_last"] is True
    assert out["metadata"] == {"tenant": "acme", "$schema.name": "Placed", "$schema.format": "Json"}
