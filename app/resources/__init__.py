"""Resources: thin responders that read the request, run one command or query, and say what
happened. One module per resource family; ``common`` holds what they share.

Item routes share their collection's resource through ``suffix="item"``; every route
answers OPTIONS with ``Allow`` and the JSON array of its methods, and Falcon answers 405
(with ``Allow``) for the rest.
"""

from app.resources.cars import Cars
from app.resources.common import Writer
from app.resources.inventory import InventoryItems
from app.resources.meta import ErrorPages, OpenAPIDocument, Root, Search

__all__ = ["Cars", "ErrorPages", "InventoryItems", "OpenAPIDocument", "Root", "Search", "Writer"]
