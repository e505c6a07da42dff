"""The query side over HTTP: parsing what a GET asks (``parsing``), how each view is shown
(``presentations``), and the responder that answers from the read models (``responder``)."""

from app.queries.presentations import CAR_ITEMS, INVENTORY_ITEMS, PRESENTATIONS, Presentation
from app.queries.responder import Queries

__all__ = ["CAR_ITEMS", "INVENTORY_ITEMS", "PRESENTATIONS", "Presentation", "Queries"]
