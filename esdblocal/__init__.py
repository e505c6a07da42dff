"""esdblocal: an embedded server that speaks EventStoreDB's gRPC protocol over SQLite.

It stands in for EventStoreDB in development, tests and CI the way DynamoDB Local or
Azurite stand in for theirs: the same esdbclient code talks to it and to a real cluster.
It imports nothing from the rest of the project.
"""

from esdblocal.server import EmbeddedServer, serve

__all__ = ["EmbeddedServer", "serve"]
