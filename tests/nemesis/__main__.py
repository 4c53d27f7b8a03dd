"""`python -m tests.nemesis --seed S --minutes M --clusters N` (what `make nemesis` runs).

The campaign's PostgreSQL cluster and database are created afresh (and dropped at the end unless
--keep-database), and Django is set up on them and on the campaign's own Redis before anything
imports a model.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from pathlib import Path

import django

from tests.nemesis import postgres

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_REDIS_PORT = 6396


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.nemesis", description="The randomized fault campaign.")
    parser.add_argument("--seed", type=int, default=None, help="replays a campaign (default: a fresh random one)")
    parser.add_argument("--minutes", type=float, default=3.0, help="minutes of faults (a quiet tail follows)")
    parser.add_argument("--clusters", type=int, default=4, choices=range(1, 101), metavar="1..100")
    parser.add_argument("--keep-database", action="store_true", help="leave the campaign's PostgreSQL for a look")
    parser.add_argument(
        "--fail-on",
        default="",
        help="comma-separated violation kinds that fail the run (default: every kind); the others are reported",
    )
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("nemesis: network namespaces and nftables need root")
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1, 2**31)
    redis_port = int(os.environ.get("NEMESIS_REDIS_PORT", DEFAULT_REDIS_PORT))
    run_dir = REPO_ROOT / "test-artifacts" / "nemesis" / f"{time.strftime('%Y%m%d-%H%M%S')}-seed{seed}"
    run_dir.mkdir(parents=True)
    print(f"nemesis: seed {seed}", flush=True)
    try:
        database_url = postgres.create()
        redis_url = f"redis://127.0.0.1:{redis_port}/0"
        # This process acts as an operator too (switchover preflights call the agents): the
        # campaign's CA, made there at start, verifies them.
        os.environ.update(DJANGO_SETTINGS_MODULE="dms_admin.settings", DATABASE_URL=database_url,
                          REDIS_URL=redis_url, CELERY_BROKER_URL=redis_url,
                          AGENT_CA_FILE=str(run_dir / "tls" / "ca.pem"))  # fmt: skip
        django.setup()
        from tests.nemesis.campaign import Campaign  # imports models: only once Django is set up

        fail_on = {kind.strip() for kind in args.fail_on.split(",") if kind.strip()} or None
        return Campaign(seed=seed, minutes=args.minutes, clusters=args.clusters, run_dir=run_dir,
                        database_url=database_url, redis_port=redis_port, fail_on=fail_on).run()  # fmt: skip
    finally:
        if not args.keep_database:
            postgres.drop()


if __name__ == "__main__":
    sys.exit(main())
