"""esdblocal's HTTP side: EventStoreDB's HTTP API (AtomPub JSON) and a stream browser.

``HttpSide`` serves, on a port of its own, what a real node serves over HTTP on its gRPC
port: ``/streams`` (AtomPub JSON feeds, single events, metadata, ``$all``, writes and
deletes), ``/info``, ``/gossip``, ``/stats``, and a web UI at ``/web/`` (esdblocal's own
stream browser from ``static/``, or a copy of EventStoreDB's given with ``--web-ui``).
"""

from esdblocal.http.common import NodeInfo
from esdblocal.http.server import HttpSide

__all__ = ["HttpSide", "NodeInfo"]
