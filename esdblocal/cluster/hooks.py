"""What a node asks of its cluster membership: the few places a single node's code changes.

``Node`` (server.py) takes one optional ``ClusterHooks``: it adds the hooks' interceptor and
internal service to its gRPC server, hands every committed group to ``committed`` instead of
answering at once, asks ``refusal`` before every write, and shows ``members`` in gossip.
This module imports nothing of the node, so the services can import it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import grpc

from esdblocal.store import Outcome, Recorded

Deliver = Callable[[list[tuple[Any, Outcome]], list[Recorded]], None]


@dataclass(frozen=True)
class MemberView:
    """One member as gossip shows it (the real ``MemberInfo``'s fields esdblocal has)."""

    index: int
    instance_id: str
    state: str  # a VNodeState name
    alive: bool
    host: str
    port: int  # gRPC
    http_port: int | None
    time_stamp: int  # 100 ns ticks since the Unix epoch: when this was last heard
    writer: int  # writerCheckpoint: where the next record goes
    chaser: int  # chaserCheckpoint: the last record it holds
    committed: int  # lastCommitPosition: the last record it knows a majority holds
    epoch_number: int
    epoch_position: int
    epoch_id: str


class ClusterHooks(Protocol):
    @property
    def state(self) -> str:
        """This member's VNodeState name (Leader, Follower, ...)."""
        ...

    def interceptor(self) -> grpc.aio.ServerInterceptor:
        """Refuses what a follower may not serve (NotLeader / NotReady)."""
        ...

    def register(self, server: grpc.aio.Server) -> None:
        """Adds the members' own service (gossip, votes, replication)."""
        ...

    def committed(
        self, outcomes: list[tuple[Any, Outcome]], records: list[Recorded], deliver: Deliver
    ) -> None:
        """Writer thread: a group is durable here; ``deliver`` it (answers and hub) once
        a majority holds it."""
        ...

    def refusal(self) -> BaseException | None:
        """None when this member may write; else the error every write gets."""
        ...

    def members(self) -> list[MemberView]: ...
