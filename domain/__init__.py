"""The model, pure: stdlib and msgspec only; no I/O, no HTTP, no esdbclient."""
