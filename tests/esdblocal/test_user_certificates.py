"""User X.509 certificates (KurrentDB's UserCertificates:Enabled; the Node.js client's
``userCertFile``/``userKeyFile``): ``--tls --user-certificates`` signs a caller in by a client
certificate signed by the node's CA. esdbclient insists on a password with TLS, so these
calls use the gRPC channel a certificate-only client opens. The certificate's common name
must be a user; a certificate for server authentication signs no one in."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from uuid import uuid4

import grpc
import pytest
from esdbclient.protos.Grpc import shared_pb2, streams_pb2, streams_pb2_grpc

from esdblocal import certificates
from tests.conftest import SecureNode, start_secure_node


def _read_all() -> streams_pb2.ReadReq:
    options = streams_pb2.ReadReq.Options(
        all=streams_pb2.ReadReq.Options.AllOptions(start=shared_pb2.Empty()),
        read_direction=streams_pb2.ReadReq.Options.Forwards,
        count=1,
        no_filter=shared_pb2.Empty(),
        uuid_option=streams_pb2.ReadReq.Options.UUIDOption(string=shared_pb2.Empty()),
    )
    return streams_pb2.ReadReq(options=options)


def _channel(node: SecureNode, cert: Path | None, key: Path | None) -> grpc.Channel:
    credentials = grpc.ssl_channel_credentials(
        root_certificates=node.ca.read_bytes(),
        private_key=key.read_bytes() if key else None,
        certificate_chain=cert.read_bytes() if cert else None,
    )
    return grpc.secure_channel(node.uri.removeprefix("esdb://").partition("?")[0], credentials)


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureNode]:
    running = start_secure_node(tmp_path_factory.mktemp("user-certs"), "--user-certificates")
    try:
        yield running
    finally:
        running.process.terminate()
        running.process.wait(timeout=20)


def test_the_admin_certificate_reads_all_as_admin(node: SecureNode) -> None:
    cert = node.data / "certs" / "user-admin" / "user-admin.crt"
    key = node.data / "certs" / "user-admin" / "user-admin.key"
    with _channel(node, cert, key) as channel:
        answers = list(streams_pb2_grpc.StreamsStub(channel).Read(_read_all()))
    assert any(answer.HasField("event") for answer in answers)


def test_without_a_certificate_the_handshake_is_refused(node: SecureNode) -> None:
    """A deviation: grpc-core can ask for a client certificate only by requiring one."""
    with _channel(node, None, None) as channel, pytest.raises(grpc.RpcError) as refused:
        list(streams_pb2_grpc.StreamsStub(channel).Read(_read_all(), timeout=10))
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE  # type: ignore[attr-defined]


def test_a_certificate_for_an_unknown_user_or_a_server_certificate_signs_no_one_in(
    node: SecureNode,
) -> None:
    stranger = certificates.user(node.data / "certs", f"nobody{uuid4().hex[:6]}")
    server_cert = (
        node.data / "certs" / "node" / "node.crt",
        node.data / "certs" / "node" / "node.key",
    )
    for cert, key in (stranger, server_cert):
        with _channel(node, cert, key) as channel, pytest.raises(grpc.RpcError) as denied:
            list(streams_pb2_grpc.StreamsStub(channel).Read(_read_all()))
        assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED  # type: ignore[attr-defined]
