"""A secure esdblocal (``--tls``) refuses what a secure EventStoreDB node refuses.

The node runs as its own process with generated certificates; clients speak TLS gRPC
through esdbclient, or through esdbclient's generated stubs where esdbclient will not send
the call (it refuses to build a TLS client without credentials).
"""

from __future__ import annotations

import base64
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from uuid import uuid4

import grpc
import pytest
from cryptography import x509
from esdbclient import EventStoreDBClient, NewEvent, StreamState
from esdbclient.exceptions import AccessDeniedError, GrpcError, SSLError
from esdbclient.protos.Grpc import gossip_pb2_grpc, shared_pb2, streams_pb2, streams_pb2_grpc

from esdblocal import certificates
from esdblocal.security import Users, may_access, parse_user
from tests.conftest import SecureNode


def event() -> NewEvent:
    return NewEvent(type="Tested", data=b"{}")


@pytest.fixture(scope="module")
def admin(secure_node: SecureNode) -> Iterator[EventStoreDBClient]:
    with EventStoreDBClient(secure_node.uri_as()) as client:
        yield client


def status_of(error: BaseException) -> tuple[grpc.StatusCode, str]:
    cause = error.args[0] if error.args and isinstance(error.args[0], grpc.Call) else error
    assert isinstance(cause, grpc.Call), error
    return cause.code(), cause.details()


def test_admin_reads_and_writes_streams_and_all(admin: EventStoreDBClient) -> None:
    stream = f"secure-{uuid4()}"
    position = admin.append_to_stream(
        stream, current_version=StreamState.NO_STREAM, events=[event()]
    )
    assert [e.type for e in admin.get_stream(stream)] == ["Tested"]
    assert admin.get_commit_position() == position
    assert any(e.stream_name == stream for e in admin.read_all(backwards=True, limit=10))


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.append_to_stream("s-1", current_version=StreamState.ANY, events=[event()]),
        lambda c: c.get_stream("s-1"),
        lambda c: c.get_commit_position(),
    ],
    ids=["append", "read-stream", "read-all"],
)
def test_a_wrong_password_is_refused_as_a_401(secure_node: SecureNode, call: object) -> None:
    with (
        EventStoreDBClient(secure_node.uri_as("admin", "wrong")) as client,
        pytest.raises(GrpcError) as raised,
    ):
        call(client)  # type: ignore[operator]
    assert status_of(raised.value) == (
        grpc.StatusCode.UNAUTHENTICATED,
        "Received http2 header with status: 401",
    )


def test_an_unknown_user_is_refused_too(secure_node: SecureNode) -> None:
    with (
        EventStoreDBClient(secure_node.uri_as("mallory", "changeit")) as client,
        pytest.raises(GrpcError) as raised,
    ):
        client.get_stream("anything")
    assert status_of(raised.value)[0] == grpc.StatusCode.UNAUTHENTICATED


def test_a_user_outside_admins_may_use_user_streams_but_not_all(secure_node: SecureNode) -> None:
    with EventStoreDBClient(secure_node.uri_as("app", "app-secret")) as client:
        stream = f"app-{uuid4()}"
        client.append_to_stream(stream, current_version=StreamState.ANY, events=[event()])
        assert len(client.get_stream(stream)) == 1
        with pytest.raises(GrpcError) as raised:
            client.get_commit_position()  # reads $all
        assert status_of(raised.value) == (grpc.StatusCode.PERMISSION_DENIED, "Access Denied")
        with pytest.raises((AccessDeniedError, GrpcError)):
            client.append_to_stream(
                "$system-ish", current_version=StreamState.ANY, events=[event()]
            )


@pytest.fixture
def tls_channel(secure_node: SecureNode) -> Iterator[grpc.Channel]:
    credentials = grpc.ssl_channel_credentials(root_certificates=secure_node.ca.read_bytes())
    with grpc.secure_channel(secure_node.target, credentials) as channel:
        yield channel


def _append(stream: str) -> Iterator[streams_pb2.AppendReq]:
    yield streams_pb2.AppendReq(
        options=streams_pb2.AppendReq.Options(
            stream_identifier=shared_pb2.StreamIdentifier(stream_name=stream.encode()),
            any=shared_pb2.Empty(),
        )
    )
    yield streams_pb2.AppendReq(
        proposed_message=streams_pb2.AppendReq.ProposedMessage(
            id=shared_pb2.UUID(string=str(uuid4())),
            metadata={"type": "T", "content-type": "application/json"},
            data=b"{}",
        )
    )


def _read(stream: str) -> streams_pb2.ReadReq:
    options = streams_pb2.ReadReq.Options(
        stream=streams_pb2.ReadReq.Options.StreamOptions(
            stream_identifier=shared_pb2.StreamIdentifier(stream_name=stream.encode()),
            start=shared_pb2.Empty(),
        ),
        read_direction=streams_pb2.ReadReq.Options.Forwards,
        count=10,
        no_filter=shared_pb2.Empty(),
        uuid_option=streams_pb2.ReadReq.Options.UUIDOption(string=shared_pb2.Empty()),
    )
    return streams_pb2.ReadReq(options=options)


@pytest.mark.parametrize(
    "call",
    [
        lambda stub, s: stub.Append(_append(s)),
        lambda stub, s: list(stub.Read(_read(s))),
    ],
    ids=["append", "read"],
)
def test_anonymous_calls_are_denied(tls_channel: grpc.Channel, call: object) -> None:
    """No credentials: the anonymous user, who may touch no stream since 23.6."""
    stub = streams_pb2_grpc.StreamsStub(tls_channel)
    with pytest.raises(grpc.RpcError) as raised:
        call(stub, f"anon-{uuid4()}")  # type: ignore[operator]
    error = raised.value
    assert isinstance(error, grpc.Call)
    assert (error.code(), error.details()) == (grpc.StatusCode.PERMISSION_DENIED, "Access Denied")
    assert ("exception", "access-denied") in (error.trailing_metadata() or ())


def test_anonymous_gossip_is_allowed(tls_channel: grpc.Channel) -> None:
    """Gossip stays anonymous (OverrideAnonymousEndpointAccessForGossip), for discovery."""
    members = gossip_pb2_grpc.GossipStub(tls_channel).Read(shared_pb2.Empty())
    assert len(members.members) == 1


def test_a_malformed_authorization_header_is_a_401(tls_channel: grpc.Channel) -> None:
    stub = streams_pb2_grpc.StreamsStub(tls_channel)
    for header in ("Basic !!!", "Bearer abc", "Basic " + base64.b64encode(b"admin").decode()):
        with pytest.raises(grpc.RpcError) as raised:
            list(stub.Read(_read("x"), metadata=(("authorization", header),)))
        assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED  # type: ignore[attr-defined]


def test_a_certificate_from_another_ca_is_refused(secure_node: SecureNode, tmp_path: Path) -> None:
    other = certificates.ensure(tmp_path / "other")
    uri = secure_node.uri_as().replace(str(secure_node.ca.resolve()), str(other.ca))
    with EventStoreDBClient(uri) as client, pytest.raises(SSLError):
        client.get_stream("anything")


def test_plaintext_to_a_tls_node_does_not_connect(secure_node: SecureNode) -> None:
    with (
        EventStoreDBClient(secure_node.uri_as().replace("tls=true", "tls=false")) as client,
        pytest.raises(GrpcError),
    ):
        client.get_stream("anything", timeout=5)


# ----------------------------------------------------------------- certificates


def test_certificates_are_made_once_and_kept(tmp_path: Path) -> None:
    first = certificates.ensure(tmp_path)
    ca, node = first.ca.read_bytes(), first.certificate.read_bytes()  # type: ignore[union-attr]
    again = certificates.ensure(tmp_path)
    assert again.ca.read_bytes() == ca  # type: ignore[union-attr]
    assert again.certificate.read_bytes() == node
    assert stat.S_IMODE(os.stat(first.private_key).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(tmp_path / "ca" / "ca.key").st_mode) == 0o600


def test_a_new_name_remakes_the_node_certificate_under_the_same_ca(tmp_path: Path) -> None:
    first = certificates.ensure(tmp_path)
    ca = first.ca.read_bytes()  # type: ignore[union-attr]
    second = certificates.ensure(tmp_path, ("esdb.internal", "10.1.2.3"))
    assert second.ca.read_bytes() == ca  # type: ignore[union-attr]
    certificate = x509.load_pem_x509_certificate(second.certificate.read_bytes())
    san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {"localhost", "esdb.internal"} <= set(san.get_values_for_type(x509.DNSName))
    assert {"127.0.0.1", "10.1.2.3"} <= {str(i) for i in san.get_values_for_type(x509.IPAddress)}
    issuer = x509.load_pem_x509_certificate(ca)
    certificate.verify_directly_issued_by(issuer)


# ------------------------------------------------------------------------ users


@pytest.mark.parametrize(
    ("user", "stream", "allowed"),
    [
        (None, "orders-1", False),
        (None, "$all", False),
        ("admin", "$all", True),
        ("admin", "$$orders-1", True),
        ("ops", "orders-1", True),
        ("ops", "$$orders-1", True),
        ("ops", "$all", False),
        ("ops", "$settings", False),
        ("ops", "$$$settings", False),
    ],
)
def test_default_acls(user: str | None, stream: str, allowed: bool) -> None:
    users = Users.defaults()
    principal = None
    if user is not None:
        header = "Basic " + base64.b64encode(f"{user}:changeit".encode()).decode()
        principal = users.principal([("authorization", header)])
    assert may_access(principal, stream) is allowed


@pytest.mark.parametrize("text", ["", "name", "name:", ":password"])
def test_a_user_option_needs_a_name_and_a_password(text: str) -> None:
    with pytest.raises(ValueError):
        parse_user(text)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--tls", "--memory"], "needs --certs"),
        (["--certs", "x"], "certificates need --tls"),
        (["--tls", "--certificate-file", "a.crt"], "go together"),
        (["--tls", "--user", "nopassword"], "--user"),
    ],
)
def test_the_command_line_refuses_incomplete_security_options(
    args: list[str], message: str
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "esdblocal", "--port", "0", *args],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr
