"""Each pytest-xdist worker gets a Redis of its own, before Django reads its settings (loaded as a
plugin, `-p tests.xdist_env`, so that it runs before pytest-django sets Django up).

The suite's workers share the test PostgreSQL server (pytest-django gives each its own database)
but each runs its own control plane: Celery queues, heartbeat state and restart faults must not meet
another worker's. Worker gwN takes the port of REDIS_URL + 1 + N; the controlling process runs no
test and starts no Redis.
"""

import os
from urllib.parse import urlsplit, urlunsplit

WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")

if WORKER:
    url = urlsplit(os.environ.get("REDIS_URL", "redis://127.0.0.1:6391/0"))
    port = (url.port or 6379) + 1 + int(WORKER.removeprefix("gw"))
    own = urlunsplit(url._replace(netloc=f"{url.hostname}:{port}"))
    os.environ["REDIS_URL"] = own
    os.environ["CELERY_BROKER_URL"] = own
