"""The API describes itself: each responder carries an ``Operation`` (``operations``), and
from those come OPTIONS ``domain-model=ResourceDescription`` bodies (``options``) and the
OpenAPI document (``openapi``)."""

from app.description.openapi import openapi
from app.description.operations import (
    PAGED,
    READ,
    Operation,
    Route,
    RouteTable,
    operation,
    operations,
)
from app.description.options import Described

__all__ = [
    "PAGED",
    "READ",
    "Described",
    "Operation",
    "Route",
    "RouteTable",
    "openapi",
    "operation",
    "operations",
]
