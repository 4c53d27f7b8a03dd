"""The agent's one clock for leases and ages.

Every "mono" reading of the agent (a grant's receipt time, `lease_until`, a candidacy's deadline,
the peer's ages, the serving log) comes from `mono()`: Linux's CLOCK_BOOTTIME. Like
CLOCK_MONOTONIC it never jumps with the wall clock, but it also counts the time the host spent
suspended, so a lease granted before a suspend is over when the host wakes up after it, instead
of lasting its full length again from the wake-up (CLOCK_MONOTONIC stops while suspended). It is
shared by every process on a host, so the serving logs of agents on one machine compare directly.
"""

from __future__ import annotations

import time

# CLOCK_BOOTTIME is Linux's (appliances run Linux); elsewhere, e.g. on a developer's Mac, the
# monotonic clock is the closest there is.
_CLOCK = getattr(time, "CLOCK_BOOTTIME", time.CLOCK_MONOTONIC)


def mono() -> float:
    """Seconds on CLOCK_BOOTTIME: monotonic, and counting time spent suspended."""
    return time.clock_gettime(_CLOCK)
