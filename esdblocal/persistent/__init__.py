"""Persistent subscriptions (competing consumers), as EventStoreDB's
``Services/PersistentSubscription``: groups, consumers and their strategies, buffers,
retries, parking and checkpoints, kept in the log where the real server keeps them.

The gRPC glue is ``esdblocal.services.persistent``.
"""

from esdblocal.persistent.consumers import Consumer, Dropped, Message
from esdblocal.persistent.group import Group
from esdblocal.persistent.settings import ALL, STRATEGIES, Filter, InvalidSettings, Settings, Start
from esdblocal.persistent.subsystem import GroupExists, GroupNotFound, Subsystem

__all__ = [
    "ALL",
    "STRATEGIES",
    "Consumer",
    "Dropped",
    "Filter",
    "Group",
    "GroupExists",
    "GroupNotFound",
    "InvalidSettings",
    "Message",
    "Settings",
    "Start",
    "Subsystem",
]
