"""The one adapter to EventStoreDB: the only package that imports esdbclient.

- ``connection``: connection strings, TLS and credentials, the lazily created client (one
  per process, after gunicorn's fork), and refusals told apart from outages;
- ``streams``: what the command side needs (read a stream, append with an expected version,
  the head);
- ``feed``: what the projector needs (a filtered catch-up subscription to ``$all``);
- ``errors``: the exceptions the rest of the project sees.
"""
