"""`make model`: at least MODEL_SCHEDULES (20,000) generated schedules of the protocol model, each
counterexample shrunk to a minimal one; prints how many ran and how long it took. No database,
Redis, Celery or agent process is involved (nor Django)."""

import os
import sys

from tests.model.test_model import run_batches


def main() -> int:
    wanted = int(os.environ.get("MODEL_SCHEDULES", "20000"))

    def progress(schedules: int, seconds: float) -> None:
        print(f"  {schedules} schedules, {seconds:.0f} s", file=sys.stderr, flush=True)

    schedules, took = run_batches(0, at_least=wanted, batch=500, progress=progress)
    print(f"model: {schedules} schedules in {took:.0f} s, no invariant broken")
    return 0


if __name__ == "__main__":
    sys.exit(main())
