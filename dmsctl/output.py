"""Human output: aligned tables, local times and ages; `--json` bypasses all of it."""

from __future__ import annotations

import json
from datetime import UTC, datetime


def table(headers: list[str], rows: list[list]) -> str:
    cells = [[str("—" if v is None or v == "" else v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    return "\n".join(lines)


def as_json(data) -> str:
    return json.dumps(data, indent=2, sort_keys=True)


def parse_time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def local_time(value: str | None) -> str:
    moment = parse_time(value)
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S") if moment else "—"


def age_s(value: str | None, now: datetime | None = None) -> float | None:
    moment = parse_time(value)
    if moment is None:
        return None
    return round(((now or datetime.now(UTC)) - moment).total_seconds(), 1)


def age(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    if seconds < 120:
        return f"{max(seconds, 0):.1f} s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min ago"
    return f"{seconds / 3600:.1f} h ago"


def on_off(value: bool) -> str:
    return "on" if value else "off"
