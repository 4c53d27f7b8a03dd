"""Helpers of the sync tests (test_sync, test_data_batch, test_sync_throughput): a primary and a
secondary agent, and files written to and read from their data directories. The `pair` fixture
is in conftest.py."""

from __future__ import annotations

import hashlib
import itertools
import os
from pathlib import Path
from typing import Any

from tests.support.agents import AgentProcess, wait_until


class Pair:
    """A primary and a secondary at epoch 1 (no peer heartbeats: sync needs none)."""

    def __init__(self, primary: AgentProcess, secondary: AgentProcess) -> None:
        self.primary = primary
        self.secondary = secondary
        self.seqs = itertools.count(10)

    def post(
        self,
        source_url: str | None = None,
        *,
        epoch: int = 1,
        seq: int | None = None,
        agent: AgentProcess | None = None,
        **fields: Any,
    ) -> tuple[int, Any]:
        body = {
            "source_url": source_url or self.primary.heartbeat_url,
            "source_token": self.primary.peer_credential,
            "epoch": epoch,
            "seq": next(self.seqs) if seq is None else seq,
            **fields,
        }
        return (agent or self.secondary).request("POST", "/v1/sync", body)

    def start(self, source_url: str | None = None, **fields: Any) -> str:
        status, answer = self.post(source_url, **fields)
        assert status == 202, answer
        return answer["id"]

    def status(self, sync_id: str) -> dict[str, Any]:
        status, answer = self.secondary.request("GET", f"/v1/sync/{sync_id}")
        assert status == 200, answer
        return answer

    def wait(self, sync_id: str, timeout: float = 20.0) -> dict[str, Any]:
        return wait_until(
            lambda: (s := self.status(sync_id))["state"] != "running" and s,
            timeout,
            message=f"sync {sync_id} to finish",
        )

    def sync(self, source_url: str | None = None, **fields: Any) -> dict[str, Any]:
        answer = self.wait(self.start(source_url, **fields))
        assert answer["state"] == "succeeded", answer
        return answer


def write(root: Path, rel: str, data: bytes) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tree(root: Path) -> dict[str, str]:
    """rel path -> sha256 of every file, the agent's hidden folders included (so leftovers
    show up as differences)."""
    found = {}
    for directory, _, files in os.walk(root):
        for name in files:
            path = Path(directory, name)
            found[path.relative_to(root).as_posix()] = digest(path)
    return found


def temp_files(agent: AgentProcess) -> list[str]:
    tmp = agent.data_dir / ".dms-tmp"
    return sorted(os.listdir(tmp)) if tmp.exists() else []
