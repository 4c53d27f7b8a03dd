"""Which heartbeat batches are due (DESIGN §5, and docs/protocol.md "Dispatching"): beat runs the
dispatcher every second, and each run claims the slots of the coming window.

Slots are aligned to multiples of the interval, so clusters with the same interval share slots and
batches; a Redis claim per (interval, slot) keeps overlapping dispatchers from sending a slot twice.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Iterator

from ..models import Cluster
from .batch import BATCH
from .state import HeartbeatState

DISPATCH_EVERY_S = 1.0  # beat's period for dispatch_heartbeats
WINDOW_S = DISPATCH_EVERY_S + 0.5  # each dispatch schedules the slots of the next window


def due_batches() -> Iterator[tuple[float, int, list[int]]]:
    """(interval, slot, cluster ids) of each batch to send, its slot claimed."""
    state = HeartbeatState()
    now = time.time()
    rows = list(Cluster.objects.values_list("id", "heartbeat_interval", "grant_fence_epoch"))
    # After a Redis restart nothing is granted until the fences are back from the database (§4a.3).
    state.ensure_fences({cluster_id: fence for cluster_id, _, fence in rows})
    by_interval: dict[float, list[int]] = defaultdict(list)
    for cluster_id, interval, _ in rows:
        by_interval[interval].append(cluster_id)
    for interval, ids in by_interval.items():
        # From the slot under way: a dispatch that ran late (behind probe batches on a busy worker)
        # still sends the slot that no earlier dispatch claimed, for what is left of it.
        first, last = math.floor(now / interval), math.floor((now + WINDOW_S) / interval)
        for slot in range(first, last + 1):
            if not state.claim_slot_group(interval, slot):
                continue
            batches = [ids[start : start + BATCH] for start in range(0, len(ids), BATCH)]
            # Each slot starts with another batch: when the heartbeat workers are too few, the batches
            # that expire unprobed are spread over every cluster, not always the same ones.
            turn = slot % len(batches)
            for batch in batches[turn:] + batches[:turn]:
                yield interval, slot, batch
