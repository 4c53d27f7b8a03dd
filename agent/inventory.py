"""The appliance's inventory: identity (part number, hardware) plus what a secondary copies from
its primary (licenses, modules, configuration). Seeded once from `--inventory`, then kept in the
state directory so copied licenses survive restarts."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agent.core import BadRequest, get_int, require_object
from agent.storage import read_json, write_json_atomic

EMPTY: dict[str, Any] = {
    "system": {"part_number": None, "hardware": None, "configuration": {}},
    "licenses": [],
    "modules": [],
}


def normalize(document: Any) -> dict[str, Any]:
    """Fill missing keys so every answer has the full shape of DESIGN §8."""
    document = require_object(document, "inventory")
    inv = copy.deepcopy(EMPTY)
    system = document.get("system") or {}
    inv["system"].update(require_object(system, "inventory 'system'"))
    inv["licenses"] = list(document.get("licenses") or [])
    inv["modules"] = list(document.get("modules") or [])
    return inv


class Inventory:
    """Holds the inventory; `path` None keeps it in memory only (the simulator)."""

    def __init__(self, path: Path | None, seed: Any = None) -> None:
        self.path = path
        stored = read_json(path) if path is not None else None
        if stored is None:
            stored = normalize(seed or EMPTY)
            if path is not None:
                write_json_atomic(path, stored)
        self.document = normalize(stored)

    def get(self) -> dict[str, Any]:
        return self.document

    def install(self, body: dict[str, Any], order: Callable[[int, int], None]) -> dict[str, Any]:
        """Install licenses, modules and configuration; identity fields are never changed.

        `order(epoch, seq)` refuses a stale command (it raises) before anything is written.
        """
        epoch, seq = get_int(body, "epoch"), get_int(body, "seq")
        new = copy.deepcopy(self.document)
        system = body.get("system")
        configuration = body.get("configuration")
        if system is not None:
            system = require_object(system, "field 'system'")
            configuration = system.get("configuration", configuration)
        if configuration is not None:
            new["system"]["configuration"] = require_object(configuration, "field 'configuration'")
        for key in ("licenses", "modules"):
            if key in body:
                if not isinstance(body[key], list):
                    raise BadRequest(f"field {key!r} must be a list")
                new[key] = body[key]
        order(epoch, seq)
        if self.path is not None:
            write_json_atomic(self.path, new)
        self.document = new
        return new
