"""Client-side programs: they speak to a running server over HTTP and import nothing of it."""
