"""``GossipController``: the one member of this single-node cluster, as ``/gossip`` shows it."""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from esdblocal.http import atom
from esdblocal.http.common import Controller, Route, json_response


class GossipController(Controller):
    def routes(self) -> list[Route]:
        return [("GET", "/gossip", self._gossip)]

    async def _gossip(self, request: web.Request) -> web.Response:
        node = self.context.node
        host = node.advertise_host
        if node.cluster is not None:
            members = [_member(view) for view in node.cluster.members()]
            return json_response(
                {"members": members, "serverIp": host, "serverPort": node.grpc_port()}
            )
        head = self.context.hub.head
        member = {
            "instanceId": self.context.instance,
            "timeStamp": atom.timestamp(int(time.time() * 10_000_000)),
            "state": "Leader",
            "isAlive": True,
            "internalTcpIp": host,
            "internalTcpPort": 0,
            "internalSecureTcpPort": 0,
            "externalTcpIp": host,
            "externalTcpPort": 0,
            "externalSecureTcpPort": 0,
            "httpEndPointIp": host,
            "httpEndPointPort": node.grpc_port(),
            "lastCommitPosition": head,
            "writerCheckpoint": head,
            "chaserCheckpoint": head,
            "epochPosition": 0,
            "epochNumber": 0,
            "epochId": "00000000-0000-0000-0000-000000000000",
            "nodePriority": 0,
            "isReadOnlyReplica": False,
        }
        return json_response(
            {"members": [member], "serverIp": host, "serverPort": node.grpc_port()}
        )


def _member(view: Any) -> dict[str, Any]:
    """A member of a local cluster as /gossip shows one (the server's MemberInfoDto)."""
    return {
        "instanceId": view.instance_id,
        "timeStamp": atom.timestamp(view.time_stamp),
        "state": view.state,
        "isAlive": view.alive,
        "internalTcpIp": view.host,
        "internalTcpPort": 0,
        "internalSecureTcpPort": 0,
        "externalTcpIp": view.host,
        "externalTcpPort": 0,
        "externalSecureTcpPort": 0,
        "httpEndPointIp": view.host,
        "httpEndPointPort": view.port,
        "lastCommitPosition": view.committed,
        "writerCheckpoint": view.writer,
        "chaserCheckpoint": view.chaser,
        "epochPosition": view.epoch_position,
        "epochNumber": view.epoch_number,
        "epochId": view.epoch_id,
        "nodePriority": 0,
        "isReadOnlyReplica": False,
    }
