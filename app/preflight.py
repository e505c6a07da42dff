"""``python -m app.preflight``: can the web start with this environment?

Loads the settings and asks the event store for its head once, with the web's own adapter.
Exit status 0: ready (or the store is merely unreachable now: the web would start and answer
503 until it is back, so that is a warning); 3: a configuration error no retry will mend
(bad settings, credentials refused, no access to ``$all``, an untrusted certificate). One
JSON line says which. gunicorn's ``on_starting`` runs it before any worker starts, in a
process of its own, so the master never opens a gRPC channel it would carry over a fork.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from app import logs
from app.settings import ConfigurationError, Settings
from eventstore.streams import StoreRefused, StoreUnavailable

CONFIGURATION_ERROR = 3
log = logging.getLogger("app.preflight")


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(prog="python -m app.preflight", description=__doc__).parse_args(argv)
    logs.configure(os.environ.get("LOG_LEVEL", "info"))
    try:
        settings = Settings.from_env()
    except ConfigurationError as error:
        log.error({"message": f"configuration error: {error}"})
        return CONFIGURATION_ERROR
    if not settings.api_keys:
        # Said once per start here, in the master's preflight, not once per worker.
        log.warning(
            {
                "message": "THE API IS OPEN: no API keys are configured, anyone can read and"
                " write. Set API_KEYS or API_KEYS_FILE (and REQUIRE_AUTH=true in production)."
            }
        )
    store = settings.event_store()
    try:
        store.check()
    except StoreRefused as error:
        log.error({"message": f"the event store refuses this configuration: {error}"})
        return CONFIGURATION_ERROR
    except StoreUnavailable as error:
        log.warning({"message": f"the event store is unreachable for now: {error}"})
        return 0
    finally:
        store.close()
    log.info({"message": "the event store accepts this configuration"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
