"""The serving-interval log (DESIGN §4a "Tests can see it").

`<state-dir>/serving.log` holds JSON lines, written ahead of the fact:
`{"start": mono, "end": mono, "epoch": E}` before a grant's lease takes effect, and
`{"stop": mono}` when serving ends early (demotion, restart), which caps every earlier interval.
Times are the agent's clock (`agent.clock.mono`, CLOCK_BOOTTIME), shared by every process on a
host, so the intervals of all agents of a cluster run on one machine can be compared directly.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

FILE_NAME = "serving.log"


class ServingLog:
    """Appends records with O_APPEND writes (one write per line, flushed to the OS at once)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def __call__(self, record: dict[str, Any]) -> None:
        os.write(self._fd, (json.dumps(record) + "\n").encode())

    def close(self) -> None:
        os.close(self._fd)


def read_serving_intervals(path: str | os.PathLike[str]) -> list[tuple[float, float]]:
    """Return the serving intervals as sorted, merged (start, end) pairs, capped by stops.

    A missing file means the agent never served. A torn last line (killed mid-write) is skipped.
    """
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        return []
    intervals: list[list[float]] = []
    for line in text.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if "stop" in record:
            stop = float(record["stop"])
            for interval in intervals:
                interval[1] = min(interval[1], stop)
        elif "start" in record and "end" in record:
            intervals.append([float(record["start"]), float(record["end"])])
    merged: list[tuple[float, float]] = []
    for start, end in sorted(i for i in intervals if i[1] > i[0]):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged
