"""``StatController``: ``/stats`` (and ``/stats/{path}``), the node's figures."""

from __future__ import annotations

import os
from pathlib import Path

from aiohttp import web

from esdblocal.http import atom
from esdblocal.http.common import Controller, Route, json_response


class StatController(Controller):
    def routes(self) -> list[Route]:
        return [("GET", "/stats", self._stats), ("GET", "/stats/{tail:.*}", self._stats)]

    async def _stats(self, request: web.Request) -> web.Response:
        self._authenticated(request)
        times = os.times()
        head = self.context.hub.head
        stats = {
            "proc": {
                "startTime": atom.timestamp(int(self.context.started * 10_000_000)),
                "id": os.getpid(),
                "mem": resident_bytes(),
                "cpu": 0.0,
                "threadsCount": len(os.listdir("/proc/self/task")) if Path("/proc").exists() else 0,
                "contentionsRate": 0.0,
                "thrownExceptionsRate": 0.0,
                "userTime": times.user,
                "systemTime": times.system,
            },
            "sys": {"loadavg": dict(zip(("1m", "5m", "15m"), os.getloadavg(), strict=True))},
            "es": {
                "checksum": head,
                "checksumNonFlushed": head,
                "queue": {},
                "writer": {},
                "readIndex": {},
            },
        }
        return json_response(stats)


def resident_bytes() -> int:
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0
