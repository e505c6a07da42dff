"""Wiring: the log, the hub and the gRPC services on one asyncio server.

``EmbeddedServer`` runs the server on its own thread and event loop, for tests and for any
program that wants an event store for the length of a ``with`` block; ``serve`` is the
coroutine the command line runs until SIGTERM or Ctrl-C.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import Any

import grpc
from esdbclient.protos.Grpc import gossip_pb2_grpc, persistent_pb2_grpc, streams_pb2_grpc

from esdblocal.hub import Hub
from esdblocal.service import Gossip, PersistentSubscriptions, Streams
from esdblocal.store import Outcome, Recorded, Store

DB_FILE = "log.sqlite3"
READER_THREADS = 4
# esdbclient accepts messages up to 17 MiB; the server's own limit is the same.
MAX_MESSAGE = 17 * 1024 * 1024


class Node:
    """The running parts of one server, built inside the loop that serves them."""

    def __init__(
        self, host: str, port: int, data_dir: Path | None, advertise_host: str | None = None
    ) -> None:
        self.host = host
        self.advertise_host = advertise_host or default_advertise_host(host)
        self._requested_port = port
        self._data_dir = data_dir
        self.port = 0
        self._loop = asyncio.get_running_loop()
        self._readers = ThreadPoolExecutor(READER_THREADS, thread_name_prefix="esdblocal-read")
        self._hub: Hub | None = None
        path = data_dir / DB_FILE if data_dir is not None else None
        self.store = Store(path, on_commit=self._committed)
        self._hub = Hub(self.store.head_position())
        self._server = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", MAX_MESSAGE),
                ("grpc.max_send_message_length", MAX_MESSAGE),
                ("grpc.so_reuseport", 0),
            ]
        )
        streams_pb2_grpc.add_StreamsServicer_to_server(
            Streams(self.store, self._hub, self._readers), self._server
        )
        gossip_pb2_grpc.add_GossipServicer_to_server(
            Gossip(self.advertise_host, lambda: self.port), self._server
        )
        persistent_pb2_grpc.add_PersistentSubscriptionsServicer_to_server(
            PersistentSubscriptions(), self._server
        )

    def _committed(self, outcomes: list[tuple[Any, Outcome]], records: list[Recorded]) -> None:
        """Writer thread → loop, once per group: answers for writers, events for the hub."""
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
        return f"esdb://{self.host}:{self.port}?tls=false"

    async def start(self) -> None:
        self.port = self._server.add_insecure_port(f"{self.host}:{self._requested_port}")
        if self.port == 0:
            raise OSError(f"cannot listen on {self.host}:{self._requested_port}")
        await self._server.start()

    async def stop(self, grace: float = 1.0) -> None:
        await self._server.stop(grace)
        self.store.close()
        self._readers.shutdown(wait=True)


def default_advertise_host(host: str) -> str:
    """What gossip tells clients to dial: "localhost" for loopback, as a dev node does."""
    if host in ("127.0.0.1", "::1", "localhost"):
        return "localhost"
    if host in ("0.0.0.0", "::", ""):
        return socket.getfqdn()
    return host


async def serve(
    host: str,
    port: int,
    data_dir: Path | None,
    advertise_host: str | None = None,
    ready: asyncio.Event | None = None,
) -> None:
    """Serve until cancelled (the CLI cancels on SIGTERM/SIGINT)."""
    node = Node(host, port, data_dir, advertise_host)
    await node.start()
    print(node.uri, flush=True)
    try:
        if ready is not None:
            ready.set()
        await asyncio.Event().wait()
    finally:
        await node.stop()


class EmbeddedServer:
    """An esdblocal server on a background thread: ``with EmbeddedServer() as s: s.uri``.

    ``port=0`` picks a free port; ``data_dir=None`` keeps the log in memory.
    """

    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, data_dir: Path | str | None = None
    ) -> None:
        self.host = host
        self.port = port
        self.data_dir = Path(data_dir) if data_dir is not None else None
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
            self._node = Node(self.host, self.port, self.data_dir)
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

    def __enter__(self) -> EmbeddedServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
