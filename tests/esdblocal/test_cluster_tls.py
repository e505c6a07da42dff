"""A secure local cluster (``--cluster-size 3 --tls``), through esdbclient over TLS.

The official Node client's suite runs most of its cluster tests against secure clusters
(``createTestCluster``); the members here share one CA, serve TLS and users as a single
``--tls`` node does, and replicate to each other over TLS.
"""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from uuid import uuid4

import grpc
import pytest
from esdbclient import EventStoreDBClient, NewEvent, StreamState
from esdbclient.exceptions import EventStoreDBClientException, NodeIsNotLeader
from esdbclient.gossip import NODE_STATE_FOLLOWER, NODE_STATE_LEADER
from esdbclient.protos.Grpc import shared_pb2, streams_pb2, streams_pb2_grpc

from tests.esdblocal.test_cluster import start_supervisor, stop_supervisor

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def secure_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    data: Path = tmp_path_factory.mktemp("secure-cluster")
    process, uri = start_supervisor(data, "--tls")
    assert process.stdout is not None
    threading.Thread(target=process.stdout.read, daemon=True).start()  # keep the pipe drained
    try:
        yield uri, data / "certs" / "ca" / "ca.crt"
    finally:
        stop_supervisor(process)


def states(client: EventStoreDBClient) -> list[str]:
    return sorted(m.state for m in client.read_gossip())


def wait_for_one_leader(client: EventStoreDBClient) -> None:
    deadline = time.monotonic() + 60  # a hang guard: the members elect one leader
    while states(client) != [NODE_STATE_FOLLOWER, NODE_STATE_FOLLOWER, NODE_STATE_LEADER]:
        assert time.monotonic() < deadline, states(client)
        time.sleep(0.2)


def test_a_secure_cluster_serves_tls_users_and_followers_refuse_writes(
    secure_cluster: tuple[str, Path], stream_name: str
) -> None:
    uri, ca = secure_cluster
    assert uri.count(",") == 2 and uri.endswith(f"?tls=true&tlsCAFile={ca.resolve()}"), uri
    hosts = uri.removeprefix("esdb://").split("?")[0]
    admin = f"esdb://admin:changeit@{hosts}?tlsCAFile={ca}&MaxDiscoverAttempts=50"
    with EventStoreDBClient(admin) as client:
        wait_for_one_leader(client)
        client.append_to_stream(
            stream_name, current_version=StreamState.NO_STREAM, events=NewEvent("A", b"{}")
        )
        follower = next(m for m in client.read_gossip() if m.state == NODE_STATE_FOLLOWER)
    target = f"{follower.address}:{follower.port}"
    one = f"esdb://admin:changeit@{target}?tlsCAFile={ca}&NodePreference=follower"
    with EventStoreDBClient(one) as member:
        # replicated over TLS: the follower reads what the leader acknowledged
        assert [e.type for e in member.get_stream(stream_name)] == ["A"]
        with pytest.raises(NodeIsNotLeader):
            member.append_to_stream(
                stream_name, current_version=StreamState.ANY, events=NewEvent("B", b"{}")
            )
    # a secure member checks users: a wrong password is refused
    wrong = f"esdb://admin:wrong@{target}?tlsCAFile={ca}&NodePreference=follower"
    with EventStoreDBClient(wrong) as refused, pytest.raises(EventStoreDBClientException):
        refused.get_stream(stream_name)


def test_a_follower_forwards_a_write_that_does_not_require_the_leader(
    secure_cluster: tuple[str, Path], stream_name: str
) -> None:
    """As the real follower (``ForwardRequest``): without ``requires-leader: true`` (the
    Node.js client's default) an append to a follower is the leader's, answered as it
    answers; with it, ``NotLeader``. esdbclient always sends it, so its protos are used."""
    uri, ca = secure_cluster
    hosts = uri.removeprefix("esdb://").split("?")[0]
    admin = f"esdb://admin:changeit@{hosts}?tlsCAFile={ca}&MaxDiscoverAttempts=50"
    with EventStoreDBClient(admin) as client:
        wait_for_one_leader(client)
        follower = next(m for m in client.read_gossip() if m.state == NODE_STATE_FOLLOWER)
        credentials = grpc.ssl_channel_credentials(ca.read_bytes())
        auth = ("authorization", "Basic " + base64.b64encode(b"admin:changeit").decode())
        target = f"{follower.address}:{follower.port}"
        with grpc.secure_channel(target, credentials) as channel:
            stub = streams_pb2_grpc.StreamsStub(channel)
            response = stub.Append(iter(append_requests(stream_name)), metadata=(auth,))
            assert response.WhichOneof("result") == "success"
            # the leader's in-band answer comes back as it is
            again = stub.Append(iter(append_requests(stream_name, "no_stream")), metadata=(auth,))
            assert again.WhichOneof("result") == "wrong_expected_version"
            with pytest.raises(grpc.RpcError) as refused:
                stub.Append(
                    iter(append_requests(stream_name)),
                    metadata=(auth, ("requires-leader", "true")),
                )
            assert refused.value.code() == grpc.StatusCode.NOT_FOUND
            assert refused.value.details() == "Leader info available"
            # a unary write too: the leader's refusal of a Delete comes back as it is
            missing = shared_pb2.StreamIdentifier(stream_name=f"{stream_name}-none".encode())
            with pytest.raises(grpc.RpcError) as gone:
                stub.Delete(
                    streams_pb2.DeleteReq(
                        options=streams_pb2.DeleteReq.Options(
                            stream_identifier=missing, stream_exists=shared_pb2.Empty()
                        )
                    ),
                    metadata=(auth,),
                )
            assert gone.value.code() == grpc.StatusCode.FAILED_PRECONDITION
            assert "WrongExpectedVersion" in (gone.value.details() or "")
        # it is on the leader, which esdbclient reads
        assert [e.type for e in client.get_stream(stream_name)] == ["Forwarded"]


def append_requests(stream: str, expected: str = "any") -> list[streams_pb2.AppendReq]:
    options = streams_pb2.AppendReq.Options(
        stream_identifier=shared_pb2.StreamIdentifier(stream_name=stream.encode()),
        **{expected: shared_pb2.Empty()},
    )
    event = streams_pb2.AppendReq.ProposedMessage(
        id=shared_pb2.UUID(string=str(uuid4())),
        metadata={"type": "Forwarded", "content-type": "application/json"},
        data=b"{}",
    )
    return [streams_pb2.AppendReq(options=options), streams_pb2.AppendReq(proposed_message=event)]
