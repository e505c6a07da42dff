"""``StatController``: ``/stats`` (and ``/stats/{path}``), the node's figures."""

from __future__ import annotations

import os
from pathlib import Path

from aiohttp import web

from esdblocal.http import atom
from esdblocal.http.common import Controller, Route, json_response


class StatController(Controller):
    def routes(self) -> list[Route]:
        return [
            ("GET", "/stats", self._stats),
            ("GET", "/stats/tcp", self._connections),
            ("GET", "/stats/replication", self._connections),
            ("GET", "/stats/{tail:.*}", self._stats),
        ]

    async def _connections(self, request: web.Request) -> web.Response:
        """``/stats/tcp`` and ``/stats/replication``: lists; esdblocal has no TCP clients and
        no replicas, so both are empty (the dashboard pages them with ``slice``)."""
        self._authenticated(request)
        return json_response([])

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
                "queue": self._queues(),
                "writer": {},
                "readIndex": {},
            },
        }
        return json_response(stats)

    def _queues(self) -> dict[str, dict[str, object]]:
        """``es.queue``: one entry per queue in ``QueueStats``' shape, for the dashboard.

        esdblocal's queues are the writer (appends waiting for the writer thread) and the
        reader pool; their figures that esdblocal does not measure are 0.
        """
        queues = {}
        for name, group in (("StorageWriterQueue", ""), ("StorageReaderQueue #1", "Readers")):
            queues[name] = {
                "queueName": name,
                "groupName": group,
                "avgItemsPerSecond": 0,
                "avgProcessingTime": 0.0,
                "currentIdleTime": "",
                "currentItemProcessingTime": None,
                "idleTimePercent": 100.0,
                "length": 0,
                "lengthCurrentTryPeak": 0,
                "lengthLifetimePeak": 0,
                "totalItemsProcessed": 0,
                "inProgressMessage": "<none>",
                "lastProcessedMessage": "<none>",
            }
        return queues


def resident_bytes() -> int:
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0
