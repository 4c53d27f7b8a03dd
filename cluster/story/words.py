"""The story's small wording helpers: a Unix time from the facts as a moment, a clause or a sentence
ended properly, a size in bytes, the facts with readable times. Shared by the telling and the outage,
so that both say times and sizes the same way."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from dms_admin.moments import from_unix, iso


def moment_of(value: Any) -> datetime | None:
    """A Unix time recorded in the facts as a moment, or None when there is none."""
    return from_unix(float(value)) if isinstance(value, (int, float)) and value > 0 else None


def clause(text: Any) -> str:
    """`text` ending with a full stop."""
    text = str(text or "").strip()
    return text if not text or text.endswith((".", "!", "?")) else text + "."


def sentence(text: Any) -> str:
    """`text` as a sentence: a capital first, a full stop last."""
    text = clause(text)
    return text[:1].upper() + text[1:]


def byte_size(count: int) -> str:
    size = float(count)
    for unit in ("bytes", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TB"


def readable(facts: dict) -> dict:
    """The facts for the API: Unix times (keys ending in `_at`) as ISO 8601 with milliseconds."""
    readable = {}
    for key, value in facts.items():
        at = moment_of(value) if key.endswith("_at") else None
        readable[key] = iso(at) if at else value
    return readable
