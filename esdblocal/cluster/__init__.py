"""A local cluster: ``python -m esdblocal --cluster-size 3`` (see esdblocal/README.md).

``supervisor`` starts and restarts the members, each a process of its own (``node``);
``member`` is one member's part (gossip, elections, replication, majorities), wired into the
node through the few hooks of ``hooks``.
"""
