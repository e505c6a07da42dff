"""Clients idle for two minutes keep their subscriptions (issue 24).

The official Node.js client (``@eventstore/db-client``, which pings every 10 s) and esdbclient
(which never pings; the server's own keep-alive pings it every 10 s) each hold a catch-up
subscription to one esdblocal run with its default keep-alive settings. Both stay silent for
two minutes in the same window, then one event is appended: each must receive it. Before the
keep-alive change the Node.js client's connection was closed with ``RESOURCE_EXHAUSTED`` after
about 40 s.

The Node.js client is installed by ``npm ci`` from ``tests/esdblocal/node/`` into
``var/esdblocal-node`` (see esdblocal/README.md); without ``node`` or that install the test
skips, saying which.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from esdbclient import EventStoreDBClient, NewEvent, StreamState

from esdblocal import EmbeddedServer
from tests.esdblocal.first_event import FirstEvent

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = Path(__file__).resolve().parent / "node" / "idle-subscriber.js"
NODE_MODULES = Path(
    os.environ.get("ESDBLOCAL_NODE_MODULES", ROOT / "var/esdblocal-node/node_modules")
)
IDLE_SECONDS = 120.0
# Generous guards for a loaded machine: the check is what arrives, not how fast.
CONFIRM_WAIT = 60.0
DELIVERY_WAIT = 60.0


def node_or_skip() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed (apt-get install nodejs npm)")
    if not (NODE_MODULES / "@eventstore" / "db-client").is_dir():
        pytest.skip(
            f"@eventstore/db-client is not installed in {NODE_MODULES}: cp"
            " tests/esdblocal/node/package*.json var/esdblocal-node/ && (cd var/esdblocal-node"
            " && npm ci)"
        )
    return node


class NodeSubscriber:
    """``idle-subscriber.js`` in a process of its own, its JSON lines read by a thread."""

    def __init__(self, node: str, uri: str, stream: str) -> None:
        self.process = subprocess.Popen(
            [node, str(SCRIPT), uri, stream],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "NODE_PATH": str(NODE_MODULES)},
        )
        self.messages: list[dict[str, Any]] = []
        self.changed = threading.Condition()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with self.changed:
                self.messages.append(json.loads(line))
                self.changed.notify_all()

    def wait_for(self, key: str, timeout: float) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        with self.changed:
            while not any(key in m or "error" in m for m in self.messages):
                left = deadline - time.monotonic()
                if left <= 0 or (self.process.poll() is not None and not self.reader.is_alive()):
                    break
                self.changed.wait(min(left, 0.5))
            return list(self.messages)

    def close(self) -> str:
        if self.process.poll() is None:
            self.process.kill()
        _, stderr = self.process.communicate()
        return stderr


@pytest.mark.slow
@pytest.mark.timeout(IDLE_SECONDS + CONFIRM_WAIT + DELIVERY_WAIT + 60)
def test_node_and_esdbclient_subscriptions_idle_two_minutes_and_still_receive(
    stream_name: str,
) -> None:
    node = node_or_skip()
    with EmbeddedServer() as server, EventStoreDBClient(server.uri) as client:
        subscriber = NodeSubscriber(node, server.uri, stream_name)
        try:
            assert subscriber.wait_for("confirmed", CONFIRM_WAIT) == [{"confirmed": True}]

            subscription = client.subscribe_to_stream(stream_name)
            consumer = FirstEvent(subscription)

            time.sleep(IDLE_SECONDS)  # both calls open and silent; only pings cross

            assert subscriber.messages == [{"confirmed": True}]  # no error while idle
            assert consumer.thread.is_alive() and consumer.failure == []
            client.append_to_stream(
                stream_name,
                current_version=StreamState.NO_STREAM,
                events=NewEvent(type="AfterIdle", data=b"{}"),
            )
            consumer.thread.join(timeout=DELIVERY_WAIT)
            subscription.stop()
            assert consumer.failure == []
            assert consumer.received == ["AfterIdle"]
            messages = subscriber.wait_for("received", DELIVERY_WAIT)
            assert [m.get("received") for m in messages[1:]] == ["AfterIdle"], messages
            assert subscriber.process.wait(timeout=DELIVERY_WAIT) == 0
        finally:
            stderr = subscriber.close()
        assert "excess pings" not in stderr and "RESOURCE_EXHAUSTED" not in stderr, stderr
