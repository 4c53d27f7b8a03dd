"""Durable files of the agent: atomic JSON documents in the state directory."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def fsync_dir(path: Path) -> None:
    """Make a rename in `path` durable (the directory entry itself must reach the disk)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_json_atomic(path: Path, document: Any) -> None:
    """Write tmp, fsync, rename, fsync dir: a crash leaves the old or the new file, never half."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    data = json.dumps(document, indent=1, sort_keys=True).encode()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    fsync_dir(path.parent)


def read_json(path: Path) -> Any | None:
    """Return the document, or None when the file does not exist."""
    try:
        with open(path, "rb") as f:
            return json.load(f)
    except FileNotFoundError:
        return None


class StateStore:
    """`state.json` in the state directory: role, epoch, seq, candidacy, settings."""

    def __init__(self, state_dir: Path) -> None:
        self.path = Path(state_dir) / "state.json"

    def load(self) -> dict[str, Any] | None:
        return read_json(self.path)

    def save(self, state: dict[str, Any]) -> None:
        write_json_atomic(self.path, state)
