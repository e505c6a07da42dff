"""A local cluster of three (``python -m esdblocal --cluster-size 3``), through esdbclient.

One cluster serves the module: the tests that only look come first, the failover (kill -9
of the leader under load) last, since it changes who leads.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from uuid import UUID, uuid4

import pytest
from esdbclient import EventStoreDBClient, NewEvent, StreamState
from esdbclient.exceptions import (
    DiscoveryFailed,
    EventStoreDBClientException,
    NodeIsNotLeader,
)
from esdbclient.gossip import NODE_STATE_FOLLOWER, NODE_STATE_LEADER, ClusterMember

from eventstore.streams import EventStore, PendingEvent, StoreUnavailable

pytestmark = pytest.mark.slow

NODE_LINE = re.compile(
    r"node (\d+) \(pid (\d+)\): esdb://([\d.]+):(\d+)\?tls=false, HTTP (http://\S+)/web/"
)


@dataclass
class Cluster:
    process: subprocess.Popen[str]
    uri: str
    lines: list[str] = field(default_factory=list)

    def nodes(self) -> dict[int, tuple[int, str, str]]:
        """Member number → (its latest pid, its gRPC target, its HTTP base URL)."""
        found: dict[int, tuple[int, str, str]] = {}
        for line in list(self.lines):
            match = NODE_LINE.search(line)
            if match:
                index, pid, host, port, http = match.groups()
                found[int(index)] = (int(pid), f"{host}:{port}", http)
        return found

    def client(self, target: str | None = None, preference: str = "leader") -> EventStoreDBClient:
        """The cluster (discovered through gossip), or one member as it is (single target)."""
        if target is None:
            return EventStoreDBClient(
                f"{self.uri}&NodePreference={preference}&MaxDiscoverAttempts=50"
            )
        return EventStoreDBClient(f"esdb://{target}?tls=false&NodePreference={preference}")

    def gossip(self) -> tuple[ClusterMember, ...]:
        for _ in range(100):
            for _, target, _ in self.nodes().values():
                try:
                    with self.client(target, "random") as member:
                        return tuple(member.read_gossip())
                except EventStoreDBClientException:
                    continue
            time.sleep(0.1)
        raise AssertionError("no member answers gossip")

    def leader_port(self) -> int:
        leaders = [m.port for m in self.gossip() if m.state == NODE_STATE_LEADER]
        assert len(leaders) == 1, leaders
        return leaders[0]

    def index_of(self, port: int) -> int:
        return next(i for i, (_, target, _) in self.nodes().items() if target.endswith(f":{port}"))


def http_request(
    base: str, method: str, path: str, body: Any = None
) -> tuple[http.client.HTTPResponse, bytes]:
    """One HTTP request, redirects not followed: the response and its body."""
    parts = urlsplit(base)
    assert parts.hostname is not None
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    headers = {"Content-Type": "application/vnd.eventstore.events+json"} if body else {}
    connection.request(method, path, json.dumps(body) if body else None, headers)
    response = connection.getresponse()
    content = response.read()
    connection.close()
    return response, content


def wait_for(predicate: object, timeout: float, what: str) -> float:
    """Poll until ``predicate()`` holds; the seconds it took (a hang guard, not a bound)."""
    assert callable(predicate)
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(0.1)
    return time.monotonic() - started


def start_supervisor(data: Path, *options: str) -> tuple[subprocess.Popen[str], str]:
    """``esdblocal --cluster-size 3`` on free ports under ``data``, and the URI it prints
    first (its stdout stays a pipe: the caller reads or drains the rest)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "esdblocal", "--cluster-size", "3", "--port", "0",
         "--data", str(data), *options],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )  # fmt: skip
    assert process.stdout is not None
    return process, process.stdout.readline().strip()


def stop_supervisor(process: subprocess.Popen[str]) -> None:
    """SIGTERM stops every member, then the supervisor, with exit 0."""
    process.send_signal(signal.SIGTERM)
    try:
        assert process.wait(timeout=20) == 0
    finally:
        if process.poll() is None:
            process.kill()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    data: Path = tmp_path_factory.mktemp("cluster")
    process, uri = start_supervisor(data, "--cluster-restart-delay", "1")
    assert uri.startswith("esdb://127.0.0.1:") and uri.count(",") == 2, uri
    cluster = Cluster(process, uri)

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            cluster.lines.append(line)

    threading.Thread(target=read, daemon=True).start()
    try:
        wait_for(lambda: len(cluster.nodes()) == 3, 30, "three members")
        wait_for(
            lambda: (
                sorted(m.state for m in cluster.gossip())
                == [NODE_STATE_FOLLOWER, NODE_STATE_FOLLOWER, NODE_STATE_LEADER]
            ),
            30,
            "one leader, two followers",
        )
        yield cluster
    finally:
        stop_supervisor(process)


def test_gossip_shows_every_member_state_and_positions(cluster: Cluster) -> None:
    members = cluster.gossip()
    assert sorted(m.port for m in members) == sorted(
        int(target.rsplit(":", 1)[1]) for _, target, _ in cluster.nodes().values()
    )
    assert {m.address for m in members} == {"localhost"}
    _, content = http_request(cluster.nodes()[0][2], "GET", "/gossip")
    listed = json.loads(content)["members"]
    assert sorted(m["state"] for m in listed) == ["Follower", "Follower", "Leader"]
    assert all(m["isAlive"] for m in listed)
    for member in listed:  # a member's epoch starts where its $epoch-information event is
        assert member["writerCheckpoint"] > member["chaserCheckpoint"] >= member["epochPosition"]


def test_followers_refuse_writes_and_leader_reads_naming_the_leader(cluster: Cluster) -> None:
    leader = cluster.leader_port()
    stream = f"refused-{uuid4()}"
    followers = [t for _, t, _ in cluster.nodes().values() if not t.endswith(f":{leader}")]
    assert len(followers) == 2
    for target in followers:
        with cluster.client(target) as follower:
            with pytest.raises(NodeIsNotLeader) as refused:
                follower.append_to_stream(
                    stream, current_version=StreamState.ANY, events=NewEvent(type="X", data=b"")
                )
            assert refused.value.leader_grpc_target == f"localhost:{leader}"
            with pytest.raises(NodeIsNotLeader):  # esdbclient requires the leader by default
                follower.get_stream(stream)
        with cluster.client(target, "follower") as follower:  # reads a follower may serve
            assert follower.get_current_version(stream) == StreamState.NO_STREAM
    index = cluster.index_of(int(followers[0].rsplit(":", 1)[1]))
    _, _, follower_http = cluster.nodes()[index]
    leader_http = cluster.nodes()[cluster.index_of(leader)][2]
    answer, _ = http_request(
        follower_http,
        "POST",
        f"/streams/{stream}",
        [{"eventId": str(uuid4()), "eventType": "X", "data": {}}],
    )
    assert answer.status == 307  # HTTP's NotLeader: the same request, on the leader
    leader_url = urlsplit(leader_http)
    assert answer.headers["Location"] == (f"http://localhost:{leader_url.port}/streams/{stream}")
    with cluster.client() as client:
        assert client.get_current_version(stream) == StreamState.NO_STREAM  # nothing was written


def test_the_api_adapter_takes_a_follower_refusal_as_unavailable(cluster: Cluster) -> None:
    """Pinned to one follower, esdbclient cannot follow NotLeader: the app answers 503."""
    leader = cluster.leader_port()
    follower = next(t for _, t, _ in cluster.nodes().values() if not t.endswith(f":{leader}"))
    adapter = EventStore(f"esdb://{follower}?tls=false")
    event = PendingEvent(uuid4(), "X", b"{}", b"{}")
    try:
        with pytest.raises(StoreUnavailable):
            adapter.append(f"adapter-{uuid4()}", None, [event])
    finally:
        adapter.close()


def test_discovery_and_node_preference(cluster: Cluster) -> None:
    leader = cluster.leader_port()
    _, some_member, _ = cluster.nodes()[0]
    for preference, expected in (("leader", True), ("follower", False)):
        uri = f"esdb+discover://{some_member}?tls=false&NodePreference={preference}"
        with EventStoreDBClient(uri) as client:
            assert (client.connection_target == f"localhost:{leader}") is expected
            assert client.get_current_version(f"nothing-{uuid4()}") == StreamState.NO_STREAM
    seen = set()
    for _ in range(12):
        with cluster.client(preference="random") as client:
            seen.add(client.connection_target)
    assert len(seen) >= 2


def test_every_member_holds_an_append_at_the_same_position(cluster: Cluster) -> None:
    stream = f"replicated-{uuid4()}"
    with cluster.client() as client:
        position = client.append_to_stream(
            stream,
            current_version=StreamState.NO_STREAM,
            events=[NewEvent(type="A", data=b"1"), NewEvent(type="B", data=b"2")],
        )
        written = [(e.id, e.commit_position, e.type) for e in client.get_stream(stream)]
    assert written[-1][1] == position
    for _, target, _ in cluster.nodes().values():
        with cluster.client(target, "follower") as member:
            # Acknowledged means on a majority; the third member may be a moment behind.
            wait_for(lambda: member.get_current_version(stream) == 1, 10, target)
            held = [(e.id, e.commit_position, e.type) for e in member.get_stream(stream)]
            assert held == written


class Load:
    """Appends, one at a time, each retried with its own event id until acknowledged."""

    def __init__(self, client: EventStoreDBClient) -> None:
        self.client = client
        self.acknowledged: list[tuple[UUID, int, float]] = []  # (id, position, when)
        self.refusals: list[str] = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        number = 0
        while not self.stopping.is_set():
            event = NewEvent(type="Loaded", data=str(number).encode())
            while not self.stopping.is_set():
                try:
                    position = self.client.append_to_stream(
                        f"load-{number % 7}", current_version=StreamState.ANY, events=event
                    )
                except (EventStoreDBClientException, DiscoveryFailed) as error:
                    self.refusals.append(type(error).__name__)
                    time.sleep(0.05)
                    continue
                self.acknowledged.append((event.id, position, time.monotonic()))
                break
            number += 1

    def __enter__(self) -> Load:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self.thread.join(timeout=30)


def test_kill_9_of_the_leader_under_load(cluster: Cluster) -> None:
    old_port = cluster.leader_port()
    old_index = cluster.index_of(old_port)
    old_pid = cluster.nodes()[old_index][0]
    with cluster.client() as client, Load(client) as load:
        wait_for(lambda: len(load.acknowledged) >= 50, 20, "appends before the kill")
        os.kill(old_pid, signal.SIGKILL)
        killed = time.monotonic()

        def new_leader() -> bool:
            try:
                return cluster.leader_port() != old_port
            except AssertionError:
                return False

        elected = wait_for(new_leader, 30, "a new leader")
        new_port = cluster.leader_port()
        wait_for(lambda: load.acknowledged[-1][2] > killed + elected, 30, "appends after it")
        count = len(load.acknowledged)
        wait_for(lambda: len(load.acknowledged) >= count + 50, 30, "more appends")
    # A follower took over within a few seconds, and esdbclient followed it.
    assert elected < 10, elected
    assert client.connection_target == f"localhost:{new_port}"
    resumed = next(when for _, _, when in load.acknowledged if when > killed) - killed
    assert resumed < 10, resumed
    # Every acknowledged append is in the new leader's $all, at the position acknowledged.
    with cluster.client() as reader:
        held = {e.id: e.commit_position for e in reader.read_all() if e.type == "Loaded"}
    assert len(load.acknowledged) >= 100
    assert {i: p for i, p, _ in load.acknowledged}.items() <= held.items()
    # The old leader is started again (by the supervisor) and rejoins as a follower, after
    # truncating whatever it wrote that no majority held; then it holds what the leader does.
    wait_for(lambda: cluster.nodes()[old_index][0] != old_pid, 30, "the old leader's restart")

    def rejoined() -> bool:
        return any(m.port == old_port and m.state == NODE_STATE_FOLLOWER for m in cluster.gossip())

    wait_for(rejoined, 30, "the old leader as a follower")
    assert cluster.leader_port() == new_port
    _, old_target, _ = cluster.nodes()[old_index]
    with cluster.client() as leader, cluster.client(old_target, "follower") as old:
        expected = [(e.id, e.commit_position) for e in leader.read_all()]
        wait_for(
            lambda: [(e.id, e.commit_position) for e in old.read_all()] == expected,
            15,
            "the old leader caught up",
        )
