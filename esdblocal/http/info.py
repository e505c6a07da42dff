"""``InfoController`` and ``PingController``: what the node is, its options, and a ping.

``/license`` is what the 24.10+ UI's License page reads (the server's licensing plugin).
"""

from __future__ import annotations

from aiohttp import web

from esdblocal.http.common import VERSION, Controller, Route, json_response

# The server numbers its message types when it starts (``MessageHierarchy``), so the id of
# ``TextMessage`` differs between versions; this is the one esdblocal answers with.
PING_TYPE_ID = 19


class InfoController(Controller):
    def routes(self) -> list[Route]:
        return [
            ("GET", "/info", self._info),
            ("GET", "/info/options", self._options),
            ("GET", "/ping", self._ping),
            ("GET", "/license", self._license),
        ]

    async def _info(self, request: web.Request) -> web.Response:
        authentication = (
            {"type": "internal", "properties": {}}
            if self.context.users is not None
            else {"type": "insecure", "properties": {}}
        )
        info = {
            "dbVersion": VERSION,
            "esVersion": VERSION,
            "state": cluster.state.lower() if (cluster := self.context.node.cluster) else "leader",
            "features": {
                "projections": self.context.node.projections(),
                "userManagement": False,
                "atomPub": True,
            },
            "authentication": authentication,
        }
        return json_response(info)

    async def _options(self, request: web.Request) -> web.Response:
        self._operator(request)
        projections = "All" if self.context.node.projections() else "None"
        insecure = str(self.context.users is None)
        options = [
            ("EnableAtomPubOverHttp", "Enable AtomPub over HTTP.", "Interface", "true"),
            ("Insecure", "Disable TLS and users.", "Application", insecure),
            ("RunProjections", "Which projections run.", "Projections", projections),
            ("ClusterSize", "The number of nodes in the cluster.", "Cluster", "1"),
            ("NodePort", "The gRPC port.", "Interface", str(self.context.node.grpc_port())),
            (
                "HttpPort",
                "The HTTP port (esdblocal: its own).",
                "Interface",
                str(self.context.http_port()),
            ),
        ]
        return json_response(
            [
                {
                    "name": name,
                    "description": description,
                    "group": group,
                    "value": value,
                    "configurationSource": "esdblocal",
                    "deprecationMessage": None,
                    "schema": None,
                }
                for name, description, group, value in options
            ]
        )

    async def _ping(self, request: web.Request) -> web.Response:
        """``HttpMessage.TextMessage`` as the JSON codec writes it, with its message type id."""
        return json_response(
            {"text": "Ping request successfully handled", "msgTypeId": PING_TYPE_ID}
        )

    async def _license(self, request: web.Request) -> web.Response:
        """No licence (a development server)."""
        no = "False"
        licence = {
            "company": "",
            "startDate": "0",
            "daysRemaining": "0",
            "isExpired": no,
            "isValid": no,
            "isTrial": no,
            "isFloating": no,
            "notes": "esdblocal: a development server; no licence applies.",
        }
        return json_response(licence)
