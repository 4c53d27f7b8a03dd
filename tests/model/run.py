"""`make model`: at least MODEL_SCHEDULES (20,000) generated schedules of the protocol model, each
counterexample shrunk to a minimal one; prints how many ran and how long it took. No database,
Redis, Celery or agent process is involved (nor Django)."""

import os
import sys

from tests.model.test_model import run_batches


def main() -> int:
    wanted = int(os.environ.get("MODEL_SCHEDULES", "20000"))
    schedules, took = run_batches(0, at_least=wanted, batch=500)
    print(f"model: {schedules} schedules in {took:.0f} s, no invariant broken")
    return 0


if __name__ == "__main__":
    sys.exit(main())
