"""The recorded history the checkers judge: what the nemesis did and what the system showed.

Records are JSON lines in `history.jsonl` (kept in the campaign's folder for post-mortems) and in
memory. Every record carries `t`, the host's CLOCK_MONOTONIC — the clock of the agents' serving logs —
so faults, agent deaths and serving intervals line up on one time line. The `Sampler` thread adds
what the database says of each cluster and what each agent holds on disk (role, epoch, seq), once
per change; the agents' serving logs are read at the end, archives of wiped state included.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

from django.db import close_old_connections, connection

from agent.storage import read_json
from cluster.models import Cluster

SAMPLE_S = 0.5


class History:
    def __init__(self, path: Path, seed: int):
        self.path = path
        self.seed = seed
        self.records: list[dict[str, Any]] = []
        self.started = time.monotonic()
        self.started_wall = time.time()
        self._lock = threading.Lock()
        self._file = open(path, "a")

    def __call__(self, kind: str, **fields: Any) -> dict[str, Any]:
        record = {"t": time.monotonic(), "wall": time.time(), "kind": kind, **fields}
        with self._lock:
            self.records.append(record)
            self._file.write(json.dumps(record, default=str) + "\n")
            self._file.flush()
        return record

    def start_clock(self) -> float:
        """The fault period begins: times in messages count from here on."""
        self.started, self.started_wall = time.monotonic(), time.time()
        return self("faults_start")["t"]

    def of(self, kind: str) -> list[dict[str, Any]]:
        with self._lock:
            return [r for r in self.records if r["kind"] == kind]

    def since(self, t: float) -> str:
        """`t` as seconds into the campaign, for messages."""
        return f"+{t - self.started:.1f}s"

    def close(self) -> None:
        self._file.close()


class Sampler(threading.Thread):
    """Polls each cluster's row and each agent's state.json; records a change when it sees one."""

    def __init__(self, history: History, clusters: dict[str, dict[str, Any]]):
        super().__init__(daemon=True, name="nemesis-sampler")
        self.history = history
        self.clusters = clusters  # name -> {"pk": …, "agents": {server name: Agent}}
        self.halt = threading.Event()
        self._last: dict[str, tuple] = {}
        self._failing = False

    def run(self) -> None:
        while not self.halt.wait(SAMPLE_S):
            try:
                self.sample()
                self._failing = False
            except Exception as exc:  # PostgreSQL restarted under it: keep sampling
                if not self._failing:
                    self.history("sampler_error", error=repr(exc)[:300])
                self._failing = True
                close_old_connections()
        connection.close()

    def sample(self) -> None:
        rows = Cluster.objects.filter(pk__in=[c["pk"] for c in self.clusters.values()]).select_related(
            "primary", "secondary"
        )
        for row in rows:
            seen = dict(
                epoch=row.epoch, state=row.state, primary=row.primary.name, secondary=row.secondary.name,
                step=row.step, maintenance=row.maintenance, interval=row.heartbeat_interval, lease=row.lease_s,
            )  # fmt: skip
            self._changed(f"db:{row.name}", "db", seen, cluster=row.name)
        for name, cluster in self.clusters.items():
            for agent in cluster["agents"].values():
                state = read_json(agent.state_dir / "state.json") or {}
                seen = dict(role=state.get("role"), epoch=state.get("epoch"), seq=state.get("seq"))
                self._changed(f"agent:{agent.name}", "agent", seen, cluster=name, agent=agent.name)

    def _changed(self, key: str, kind: str, seen: dict[str, Any], **fields: Any) -> None:
        values = tuple(seen.values())
        if self._last.get(key) != values:
            self._last[key] = values
            self.history(kind, **fields, **seen)

    def stop(self) -> None:
        self.halt.set()
        self.join(timeout=10)
