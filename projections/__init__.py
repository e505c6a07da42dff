"""The read side: projector process, views and read store (never Falcon)."""
