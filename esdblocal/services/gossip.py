"""The Gossip gRPC service, as the server's ``Services/Transport/Grpc/Gossip.cs``."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING

import grpc
from esdbclient.protos.Grpc import gossip_pb2, gossip_pb2_grpc, shared_pb2

from esdblocal.services.shared import uuid_message
from esdblocal.store import now_ticks

if TYPE_CHECKING:
    from esdblocal.cluster.hooks import ClusterHooks

VNodeState = gossip_pb2.MemberInfo.VNodeState


class Gossip(gossip_pb2_grpc.GossipServicer):  # type: ignore[misc]
    """A cluster of one: this node, the leader, at its advertised address; or, in a local
    cluster, every member this one has heard of, with its state and whether it is alive."""

    def __init__(
        self, advertise_host: str, port: Callable[[], int], cluster: ClusterHooks | None = None
    ) -> None:
        self._host = advertise_host
        self._port = port
        self._instance_id = str(uuid.uuid4())
        self._cluster = cluster

    async def Read(
        self, request: shared_pb2.Empty, context: grpc.aio.ServicerContext
    ) -> gossip_pb2.ClusterInfo:
        if self._cluster is not None:
            members = [
                gossip_pb2.MemberInfo(
                    instance_id=uuid_message(view.instance_id, structured=True),
                    time_stamp=view.time_stamp,
                    state=VNodeState.Value(view.state),
                    is_alive=view.alive,
                    http_end_point=gossip_pb2.EndPoint(address=view.host, port=view.port),
                )
                for view in self._cluster.members()
            ]
            return gossip_pb2.ClusterInfo(members=members)
        member = gossip_pb2.MemberInfo(
            instance_id=uuid_message(self._instance_id, structured=True),
            time_stamp=now_ticks(),
            state=gossip_pb2.MemberInfo.VNodeState.Leader,
            is_alive=True,
            http_end_point=gossip_pb2.EndPoint(address=self._host, port=self._port()),
        )
        return gossip_pb2.ClusterInfo(members=[member])
