"""gunicorn settings for the web process (``gunicorn -c deploy/gunicorn.conf.py app.wsgi:app``).

The app creates its esdbclient client lazily, on a worker's first request, so every worker
gets its own gRPC channel after the fork (channels do not survive ``fork``).
"""

import multiprocessing
import os

bind = f"{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_WORKERS", multiprocessing.cpu_count() * 2))
worker_class = "sync"
threads = 1
timeout = 30
graceful_timeout = 10
accesslog = None  # the app logs one structured line per request itself
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info")
preload_app = False  # import the app in each worker, after the fork
