"""Wiring: the log, the hub and the gRPC services on one asyncio server.

``EmbeddedServer`` runs the server on its own thread and event loop, for tests and for any
program that wants an event store for the length of a ``with`` block; ``serve`` is the
coroutine the command line runs until SIGTERM or Ctrl-C.
"""

from __future__ import annotations

import asyncio
import socket
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import grpc
from esdbclient.protos.Grpc import (
    gossip_pb2,
    gossip_pb2_grpc,
    persistent_pb2,
    persistent_pb2_grpc,
    projections_pb2,
    projections_pb2_grpc,
    streams_pb2,
    streams_pb2_grpc,
)

from esdblocal import certificates
from esdblocal.certificates import TlsFiles
from esdblocal.cluster.hooks import ClusterHooks
from esdblocal.http import HttpSide, NodeInfo
from esdblocal.http.metrics import GrpcMetrics
from esdblocal.hub import Hub
from esdblocal.projections.manager import RUN_SYSTEM, ProjectionManager
from esdblocal.protos.kurrentdb.protocol.v2.streams import streams_pb2 as streams_v2_pb2
from esdblocal.protos.kurrentdb.protocol.v2.streams import (
    streams_pb2_grpc as streams_v2_pb2_grpc,
)
from esdblocal.security import Authenticate, Users
from esdblocal.services import server_features
from esdblocal.services.gossip import Gossip
from esdblocal.services.persistent import PersistentSubscriptions
from esdblocal.services.projections import Projections
from esdblocal.services.shared import (
    COMMIT_TIMEOUT_MS,
    MAX_APPEND_SIZE,
    PREPARE_TIMEOUT_MS,
    NodeParts,
)
from esdblocal.services.shutdown import ShuttingDown
from esdblocal.services.streams import Streams
from esdblocal.services.streams_v2 import StreamsV2
from esdblocal.store import Outcome, Recorded, Store

DB_FILE = "log.sqlite3"
READER_THREADS = 4
# esdbclient accepts messages up to 17 MiB; the server's own limit is the same.
MAX_MESSAGE = 17 * 1024 * 1024


@dataclass(frozen=True)
class ProjectionOptions:
    """--run-projections and --start-standard-projections; the defaults are what the real
    server's --dev gives: the system projections, started."""

    run: str = RUN_SYSTEM
    start_standard: bool = True


@dataclass(frozen=True)
class GrpcOptions:
    """The real server's gRPC options (``ClusterVNodeOptions.GrpcOptions``), in ms.

    ``keep_alive_interval``: after this long with nothing received, the server pings the
    client (Kestrel's ``KeepAlivePingDelay``); ``keep_alive_timeout``: it closes the
    connection when that ping is not answered in time (``KeepAlivePingTimeout``). 0 turns
    the server's own pings off. Clients' pings are accepted at any rate, as Kestrel does.
    """

    keep_alive_interval: int = 10_000
    keep_alive_timeout: int = 10_000

    def channel_arguments(self) -> list[tuple[str, int]]:
        arguments = [
            # A client may ping whenever it likes, with or without calls open: the official
            # clients ping every 10 s, and grpc-core's default policy (one ping per 5 min
            # without data, 2 strikes) answers a third ping with GOAWAY "too_many_pings".
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.http2.max_ping_strikes", 0),
            ("grpc.http2.min_recv_ping_interval_without_data_ms", 0),
        ]
        if self.keep_alive_interval > 0:
            arguments += [
                ("grpc.keepalive_time_ms", self.keep_alive_interval),
                ("grpc.keepalive_timeout_ms", max(1, self.keep_alive_timeout)),
                # The server's own pings go on while a connection is idle.
                ("grpc.http2.max_pings_without_data", 0),
            ]
        return arguments


@dataclass(frozen=True)
class DatabaseOptions:
    """The real server's write timeouts (``ClusterVNodeOptions.DatabaseOptions``), in ms.

    A write (append, batch, delete, tombstone, multi-stream append) not committed within
    ``commit_timeout_ms`` is answered as the server's request manager answers it, and may
    still commit. ``prepare_timeout_ms`` is kept for the flag: the real server uses it only
    for explicit transactions, which gRPC does not have.
    """

    commit_timeout_ms: int = COMMIT_TIMEOUT_MS
    prepare_timeout_ms: int = PREPARE_TIMEOUT_MS
    # MaxAppendSize: the data bytes one append may carry (more: "Maximum Append Size ...")
    max_append_size: int = MAX_APPEND_SIZE


@dataclass(frozen=True)
class Security:
    """A secure node: TLS with these files, and these users (the real node has both or neither)."""

    tls: TlsFiles
    users: Users = field(default_factory=Users.defaults)
    # KurrentDB's UserCertificates:Enabled: a client certificate signed by the node's CA,
    # for client authentication only, signs in the user its common name names.
    user_certificates: bool = False


class Node:
    """The running parts of one server, built inside the loop that serves them."""

    def __init__(
        self,
        host: str,
        port: int,
        data_dir: Path | None,
        advertise_host: str | None = None,
        security: Security | None = None,
        http_port: int | None = None,
        web_ui: Path | None = None,
        projections: ProjectionOptions | None = None,
        grpc_options: GrpcOptions | None = None,
        database: DatabaseOptions | None = None,
        cluster: ClusterHooks | None = None,
    ) -> None:
        """``cluster``: this node is a member of a local cluster (esdblocal/cluster/)."""
        self.host = host
        self.cluster = cluster
        self.advertise_host = advertise_host or default_advertise_host(host)
        self.security = security
        self._requested_port = port
        self._data_dir = data_dir
        self.port = 0
        self._loop = asyncio.get_running_loop()
        self._readers = ThreadPoolExecutor(READER_THREADS, thread_name_prefix="esdblocal-read")
        self.readers = self._readers
        self._hub: Hub | None = None
        path = data_dir / DB_FILE if data_dir is not None else None
        # A member's log starts empty: its first records are its leader's.
        self.store = Store(path, on_commit=self._committed, initial_events=cluster is None)
        if cluster is not None:
            self.store.refusal = cluster.refusal
        self._hub = Hub(self.store.head_position())
        users = security.users if security is not None else None
        self.grpc_metrics = GrpcMetrics()  # served at the HTTP side's /metrics
        self._shutdown = ShuttingDown()
        interceptors: list[grpc.aio.ServerInterceptor] = [
            self._shutdown,
            self.grpc_metrics.interceptor,
        ]
        if users is not None:
            interceptors.append(Authenticate(users))
        if cluster is not None:
            interceptors.append(cluster.interceptor())
        self._server = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", MAX_MESSAGE),
                ("grpc.max_send_message_length", MAX_MESSAGE),
                ("grpc.so_reuseport", 0),
                *(grpc_options or GrpcOptions()).channel_arguments(),
            ],
            interceptors=interceptors,
        )
        if cluster is not None:
            cluster.register(self._server)
        timeouts = database or DatabaseOptions()
        parts = NodeParts(
            self.store,
            self._hub,
            self._readers,
            users,
            timeouts.commit_timeout_ms,
            user_certificates=security is not None and security.user_certificates,
            max_append_size=timeouts.max_append_size,
        )
        streams_pb2_grpc.add_StreamsServicer_to_server(Streams(parts), self._server)
        gossip_pb2_grpc.add_GossipServicer_to_server(
            Gossip(self.advertise_host, lambda: self.port, cluster), self._server
        )
        self.persistent = PersistentSubscriptions(parts)
        persistent_pb2_grpc.add_PersistentSubscriptionsServicer_to_server(
            self.persistent, self._server
        )
        options = projections or ProjectionOptions()
        self.projections = ProjectionManager(
            self.store, self._hub, self._readers, options.run, options.start_standard
        )
        streams_v2_pb2_grpc.add_StreamsServiceServicer_to_server(  # type: ignore[no-untyped-call]
            StreamsV2(parts), self._server
        )
        served = [
            streams_pb2.DESCRIPTOR.services_by_name["Streams"],
            streams_v2_pb2.DESCRIPTOR.services_by_name["StreamsService"],
            gossip_pb2.DESCRIPTOR.services_by_name["Gossip"],
            persistent_pb2.DESCRIPTOR.services_by_name["PersistentSubscriptions"],
        ]
        if self.projections.enabled:  # without the subsystem the service is not there
            projections_pb2_grpc.add_ProjectionsServicer_to_server(
                Projections(parts, self.projections), self._server
            )
            served.append(projections_pb2.DESCRIPTOR.services_by_name["Projections"])
        self._server.add_generic_rpc_handlers((server_features.handler(served),))
        # The HTTP API and stream browser, on a port of its own (None: off).
        self.http: HttpSide | None = None
        if http_port is not None:
            node = NodeInfo(
                self.advertise_host, lambda: self.port, lambda: self.projections.enabled,
                self.projections, self.persistent.subsystem, cluster,
            )  # fmt: skip
            self.http = HttpSide(
                self.store, self._hub, self._readers, host, http_port, node, users,
                security.tls if security is not None else None, web_ui, self.grpc_metrics,
            )  # fmt: skip

    def _committed(self, outcomes: list[tuple[Any, Outcome]], records: list[Recorded]) -> None:
        """Writer thread → loop, once per group: answers for writers, events for the hub."""
        if self.cluster is not None:  # a leader answers once a majority holds the group
            self.cluster.committed(outcomes, records, self._deliver)
            return
        self._loop.call_soon_threadsafe(self._deliver, outcomes, records)

    def _deliver(self, outcomes: list[tuple[Any, Outcome]], records: list[Recorded]) -> None:
        if records and self._hub is not None:
            self._hub.publish(records)
        for future, outcome in outcomes:
            if future.done():  # the caller went away (cancelled call)
                continue
            if isinstance(outcome, BaseException):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)

    @property
    def uri(self) -> str:
        """The connection string, without credentials (add ``user:password@`` for a secure node)."""
        if self.security is None:
            return f"esdb://{self.host}:{self.port}?tls=false"
        ca = self.security.tls.ca
        trust = f"&tlsCAFile={ca.resolve()}" if ca is not None else ""
        return f"esdb://{self.host}:{self.port}?tls=true{trust}"

    async def start(self) -> None:
        address = f"{self.host}:{self._requested_port}"
        if self.security is None:
            self.port = self._server.add_insecure_port(address)
        else:
            ca = self.security.tls.ca
            asks = self.security.user_certificates and ca is not None
            credentials = grpc.ssl_server_credentials(
                [self.security.tls.server_credentials_material()],
                # grpc-core can ask for a client certificate only by requiring one (Kestrel
                # allows one): with user certificates on, every client presents one.
                root_certificates=ca.read_bytes() if asks and ca is not None else None,
                require_client_auth=asks,
            )
            self.port = self._server.add_secure_port(address, credentials)
        if self.port == 0:
            raise OSError(f"cannot listen on {self.host}:{self._requested_port}")
        await self._server.start()
        if self.cluster is None:  # a member's projections start when it leads
            await self.projections.start()
        if self.http is not None:
            await self.http.start()

    @property
    def http_url(self) -> str | None:
        """Where the HTTP API and the stream browser are (None: the HTTP side is off)."""
        return self.http.url if self.http is not None else None

    async def stop(self, grace: float = 1.0) -> None:
        if self.http is not None:
            await self.http.stop()
        self._shutdown.stop_streaming_calls()  # unary calls drain within the grace
        await self._server.stop(grace)
        await self.projections.stop()
        self._readers.shutdown(wait=True)  # no read may still be using the log's connection
        self.store.close()


def default_advertise_host(host: str) -> str:
    """What gossip tells clients to dial: "localhost" for loopback, as a dev node does."""
    if host in ("127.0.0.1", "::1", "localhost"):
        return "localhost"
    if host in ("0.0.0.0", "::", ""):
        return socket.getfqdn()
    return host


def with_credentials(uri: str, user: str, password: str) -> str:
    """``esdb://host…`` → ``esdb://user:password@host…`` (esdbclient's form)."""
    scheme, _, rest = uri.partition("://")
    return f"{scheme}://{user}:{password}@{rest}"


async def serve(
    host: str,
    port: int,
    data_dir: Path | None,
    advertise_host: str | None = None,
    ready: asyncio.Event | None = None,
    security: Security | None = None,
    http_port: int | None = None,
    web_ui: Path | None = None,
    projections: ProjectionOptions | None = None,
    grpc_options: GrpcOptions | None = None,
    database: DatabaseOptions | None = None,
) -> None:
    """Serve until cancelled (the CLI cancels on SIGTERM/SIGINT)."""
    node = Node(
        host, port, data_dir, advertise_host, security, http_port, web_ui, projections,
        grpc_options, database,
    )  # fmt: skip
    await node.start()
    print(node.uri, flush=True)
    if node.http_url is not None:  # the second line: the first is the connection string
        print(f"esdblocal: stream browser and HTTP API at {node.http_url}/web/", flush=True)
    try:
        if ready is not None:
            ready.set()
        await asyncio.Event().wait()
    finally:
        await node.stop()


class EmbeddedServer:
    """An esdblocal server on a background thread: ``with EmbeddedServer() as s: s.uri``.

    ``port=0`` picks a free port; ``data_dir=None`` keeps the log in memory. ``tls=True``
    makes a secure node: certificates generated under ``<data_dir>/certs`` (or a temporary
    directory), and ``users`` (default: admin and ops, password ``changeit``).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        data_dir: Path | str | None = None,
        tls: bool = False,
        users: Users | None = None,
        user_certificates: bool = False,
        http_port: int | None = None,
        web_ui: Path | None = None,
        projections: ProjectionOptions | None = None,
        grpc_options: GrpcOptions | None = None,
        database: DatabaseOptions | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.grpc_options = grpc_options
        self.database = database
        self.http_port = http_port
        self.web_ui = web_ui
        self.projection_options = projections
        self.data_dir = Path(data_dir) if data_dir is not None else None
        self._temporary: tempfile.TemporaryDirectory[str] | None = None
        self.security: Security | None = None
        if tls:
            if self.data_dir is not None:
                certs = self.data_dir / "certs"
            else:
                self._temporary = tempfile.TemporaryDirectory(prefix="esdblocal-certs-")
                certs = Path(self._temporary.name)
            files = certificates.ensure(certs, (host,))
            self.security = Security(files, users or Users.defaults(), user_certificates)
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._node: Node | None = None
        self._stopping: asyncio.Event | None = None
        self._started = threading.Event()
        self._error: BaseException | None = None

    @property
    def uri(self) -> str:
        assert self._node is not None, "the server is not running"
        return self._node.uri

    @property
    def http_url(self) -> str:
        """The HTTP side's base URL (``EmbeddedServer(http_port=0)`` turns it on)."""
        assert self._node is not None and self._node.http_url is not None, "no HTTP side"
        return self._node.http_url

    def uri_as(self, user: str = "admin", password: str = "changeit") -> str:
        """The connection string with credentials (a secure node's default admin by default)."""
        return with_credentials(self.uri, user, password)

    def start(self) -> EmbeddedServer:
        self._thread = threading.Thread(target=self._run, name="esdblocal", daemon=True)
        self._thread.start()
        self._started.wait()
        if self._error is not None:
            raise self._error
        return self

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        try:
            self._node = Node(
                self.host,
                self.port,
                self.data_dir,
                security=self.security,
                http_port=self.http_port,
                web_ui=self.web_ui,
                projections=self.projection_options,
                grpc_options=self.grpc_options,
                database=self.database,
            )
            await self._node.start()
        except BaseException as error:
            self._error = error
            self._started.set()
            return
        self.port = self._node.port
        self._started.set()
        await self._stopping.wait()
        await self._node.stop()

    def stop(self) -> None:
        if self._loop is not None and self._stopping is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)
            self._thread.join()
            self._thread = None
        if self._temporary is not None:
            self._temporary.cleanup()
            self._temporary = None

    def __enter__(self) -> EmbeddedServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
