"""The Gossip gRPC service, as the server's ``Services/Transport/Grpc/Gossip.cs``."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import grpc
from esdbclient.protos.Grpc import gossip_pb2, gossip_pb2_grpc, shared_pb2

from esdblocal.services.shared import uuid_message
from esdblocal.store import now_ticks


class Gossip(gossip_pb2_grpc.GossipServicer):  # type: ignore[misc]
    """A cluster of one: this node, the leader, at its advertised address."""

    def __init__(self, advertise_host: str, port: Callable[[], int]) -> None:
        self._host = advertise_host
        self._port = port
        self._instance_id = str(uuid.uuid4())

    async def Read(
        self, request: shared_pb2.Empty, context: grpc.aio.ServicerContext
    ) -> gossip_pb2.ClusterInfo:
        member = gossip_pb2.MemberInfo(
            instance_id=uuid_message(self._instance_id, structured=True),
            time_stamp=now_ticks(),
            state=gossip_pb2.MemberInfo.VNodeState.Leader,
            is_alive=True,
            http_end_point=gossip_pb2.EndPoint(address=self._host, port=self._port()),
        )
        return gossip_pb2.ClusterInfo(members=[member])
