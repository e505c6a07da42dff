"""The HTTP edge (Falcon resources, media, problems, OPTIONS and OpenAPI) and the command
side (which knows no HTTP)."""
