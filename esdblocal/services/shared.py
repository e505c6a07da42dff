"""What every gRPC service of one node shares: the node's parts, passed in as one object,
and the message encodings more than one service sends."""

from __future__ import annotations

import asyncio
import math
import uuid
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

import grpc
from esdbclient.protos.Grpc import shared_pb2, streams_pb2

from esdblocal.certificates import user_name
from esdblocal.hub import Hub
from esdblocal.security import Principal, Users, may_access
from esdblocal.store import Recorded, Store

RecordedEventPb = streams_pb2.ReadResp.ReadEvent.RecordedEvent
UINT64_MAX = 2**64 - 1
# The real server's --commit-timeout-ms and --prepare-timeout-ms defaults.
COMMIT_TIMEOUT_MS = 2_000
# The request manager checks its writes' timeouts on a timer tick, once a second
# (RequestManagementService's RequestManagerTimerTick), past the timeout plus 30 ms
# (RequestManagerBase._timeoutOffset): a write answers "timed out" at the first tick after.
TIMER_TICK_S = 1.0
TIMEOUT_OFFSET_S = 0.03
MAX_APPEND_SIZE = 1_048_576  # ClusterVNodeOptions.Application.MaxAppendSize
PREPARE_TIMEOUT_MS = 2_000


class CommitTimeout(Exception):
    """The log did not commit a write within the commit timeout (it may still commit)."""


@dataclass(frozen=True)
class NodeParts:
    """The log, the hub of committed events, the reader threads and the users of one node.

    ``users`` is None on an insecure node, where every call may do anything.
    """

    store: Store
    hub: Hub
    readers: Executor
    users: Users | None = None
    commit_timeout_ms: int = COMMIT_TIMEOUT_MS
    user_certificates: bool = False  # a client certificate may name the caller
    max_append_size: int = MAX_APPEND_SIZE  # the server's MaxAppendSize, data bytes per append

    def principal(self, context: grpc.aio.ServicerContext) -> Principal | None:
        """The signed-in caller (None: anonymous, or an insecure node)."""
        if self.users is None:
            return None
        principal = self.users.principal(context.invocation_metadata() or ())
        if principal is None and self.user_certificates:
            # As KurrentDB's user-certificate provider: with no credentials in the call,
            # the connection's client certificate names the user.
            chain = context.auth_context().get("x509_pem_cert") or ()
            name = user_name(chain[0]) if chain else None
            principal = self.users.named(name) if name is not None else None
        return principal

    def allowed(self, context: grpc.aio.ServicerContext, stream: str) -> bool:
        """The caller may use ``stream`` (checked before anything is read or written)."""
        if self.users is None:
            return True
        # Bad credentials never get here: the Authenticate interceptor refused the call.
        return may_access(self.principal(context), stream)

    async def committed(self, submit: Callable[[asyncio.Future[Any]], None]) -> Any:
        """Queue a write (``submit`` hands the writer a future) and wait for its outcome.

        As the server's request manager: no outcome by the first timer tick after the commit
        timeout raises CommitTimeout, and the write goes on (a later read may find it
        committed). With a timeout of 1 ms a quick write still succeeds, as there.
        """
        outcome: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        # An outcome nobody waits for any more must not be logged as never retrieved.
        outcome.add_done_callback(lambda done: done.cancelled() or done.exception())
        submit(outcome)
        now = asyncio.get_running_loop().time()
        try:
            return await asyncio.wait_for(
                asyncio.shield(outcome), timeout_tick(now, self.commit_timeout_ms / 1000) - now
            )
        except TimeoutError:
            raise CommitTimeout() from None

    async def run(self, function: Callable[..., Any], *args: Any) -> Any:
        """``function(*args)`` on a reader thread (SQLite reads never block the loop)."""
        return await asyncio.get_running_loop().run_in_executor(self.readers, function, *args)


def timeout_tick(now: float, timeout_s: float) -> float:
    """When a write started at ``now`` times out: the first tick of the node's one-second
    timer (ticks at whole seconds of the loop's clock) at or after its timeout."""
    due = now + timeout_s + TIMEOUT_OFFSET_S
    return math.ceil(due / TIMER_TICK_S) * TIMER_TICK_S


def recorded_event(record: Recorded, structured: bool, message: Any = RecordedEventPb) -> Any:
    """A recorded event as a service sends it: ``message`` is the service's own
    ``RecordedEvent`` type (Streams' by default; PersistentSubscriptions has its own)."""
    return message(
        id=uuid_message(record.event_id, structured),
        stream_identifier=shared_pb2.StreamIdentifier(stream_name=record.stream.encode()),
        stream_revision=record.revision,
        prepare_position=record.position,
        commit_position=record.position,
        metadata={
            "type": record.type,
            "content-type": record.content_type,
            "created": str(record.created),
        },
        custom_metadata=record.metadata,
        data=record.data,
    )


def uuid_message(value: str, structured: bool) -> shared_pb2.UUID:
    """A UUID in the form the client asked for (structured halves are signed 64-bit)."""
    if not structured:
        return shared_pb2.UUID(string=value)
    number = uuid.UUID(value).int
    most, least = number >> 64, number & UINT64_MAX
    return shared_pb2.UUID(
        structured=shared_pb2.UUID.Structured(
            most_significant_bits=most - (1 << 64) if most >= 1 << 63 else most,
            least_significant_bits=least - (1 << 64) if least >= 1 << 63 else least,
        )
    )
