"""`python -m tests.nemesis --seed S --minutes M --clusters N` (what `make nemesis` runs).

The campaign's database is created afresh (and dropped at the end unless --keep-database), and
Django is set up on it and on the campaign's own Redis before anything imports a model.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import django

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/nemesis"
DEFAULT_REDIS_PORT = 6396


def psql(database_url: str, sql: str) -> None:
    parts = urlsplit(database_url)
    args = ["psql", "-h", parts.hostname or "127.0.0.1", "-p", str(parts.port or 5432),
            "-U", parts.username or "postgres", "-d", "postgres", "-q", "-c", sql]  # fmt: skip
    subprocess.run(args, check=True, capture_output=True)


def database_name(database_url: str) -> str:
    name = urlsplit(database_url).path.lstrip("/")
    if not name.replace("_", "").isalnum():
        raise SystemExit(f"nemesis: {name!r} is not a plain database name")
    return name


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.nemesis", description="The randomized fault campaign.")
    parser.add_argument("--seed", type=int, default=None, help="replays a campaign (default: a fresh random one)")
    parser.add_argument("--minutes", type=float, default=3.0, help="minutes of faults (a quiet tail follows)")
    parser.add_argument("--clusters", type=int, default=4, choices=range(1, 101), metavar="1..100")
    parser.add_argument("--keep-database", action="store_true", help="leave the campaign's database for a look")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("nemesis: network namespaces and nftables need root")
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1, 2**31)
    database_url = os.environ.get("NEMESIS_DATABASE_URL", DEFAULT_DATABASE_URL)
    redis_port = int(os.environ.get("NEMESIS_REDIS_PORT", DEFAULT_REDIS_PORT))
    name = database_name(database_url)
    psql(database_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    psql(database_url, f'CREATE DATABASE "{name}"')
    run_dir = REPO_ROOT / "test-artifacts" / "nemesis" / f"{time.strftime('%Y%m%d-%H%M%S')}-seed{seed}"
    run_dir.mkdir(parents=True)
    redis_url = f"redis://127.0.0.1:{redis_port}/0"
    # This process acts as an operator too (switchover preflights call the agents): the campaign's
    # CA, made there at start, verifies them.
    os.environ.update(DJANGO_SETTINGS_MODULE="dms_admin.settings", DATABASE_URL=database_url,
                      REDIS_URL=redis_url, CELERY_BROKER_URL=redis_url,
                      AGENT_CA_FILE=str(run_dir / "tls" / "ca.pem"))  # fmt: skip
    django.setup()
    from tests.nemesis.campaign import Campaign  # imports models: only once Django is set up

    print(f"nemesis: seed {seed}", flush=True)
    try:
        return Campaign(seed=seed, minutes=args.minutes, clusters=args.clusters, run_dir=run_dir,
                        database_url=database_url, redis_port=redis_port).run()  # fmt: skip
    finally:
        if not args.keep_database:
            psql(database_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    sys.exit(main())
