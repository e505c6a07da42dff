"""What a cluster member answers instead of serving: the real server's three refusals.

They are ``StoreError``s because they come back from the log as a write's outcome (a
follower's log refuses every write; a leader's answer times out when no majority acknowledges
it); the gRPC and HTTP layers map each to the real server's wire error.
"""

from __future__ import annotations

from esdblocal.store import StoreError


class NotLeader(StoreError):
    """A follower's answer to a write or a leader-required read: where the leader is.

    gRPC: NOT_FOUND "Leader info available" with the trailers ``exception: not-leader``,
    ``leader-endpoint-host`` and ``leader-endpoint-port`` (``RpcExceptions.LeaderInfo``);
    HTTP: 307 to the same path on the leader.
    """

    def __init__(self, host: str, port: int, http_port: int | None = None) -> None:
        super().__init__(f"Not the leader: the leader is {host}:{port}")
        self.host = host
        self.port = port
        self.http_port = http_port


class NotReady(StoreError):
    """No leader is known (an election is under way): UNAVAILABLE "Server Is Not Ready",
    HTTP 503 (``RpcExceptions.ServerNotReady``, ``HandleNotHandled``)."""

    def __init__(self) -> None:
        super().__init__("Server Is Not Ready")


class CommitTimeout(StoreError):
    """No majority acknowledged a write within the commit timeout: ABORTED "Operation
    timed out: Commit phase timeout." (``RequestManagerBase``). The write may still be
    committed later, when a follower catches up: its outcome is unknown, as on a real
    cluster."""

    def __init__(self) -> None:
        super().__init__("Commit phase timeout.")


__all__ = ["CommitTimeout", "NotLeader", "NotReady"]
