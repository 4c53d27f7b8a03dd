"""Times and durations as pages and stories write them: to the millisecond, in the site's time zone,
never as Unix seconds. Model-free, for every app."""

from __future__ import annotations

from datetime import UTC, datetime

from django.utils import timezone


def from_unix(timestamp: float) -> datetime:
    """A Unix time (what the workers record) as an aware datetime."""
    return datetime.fromtimestamp(timestamp, tz=UTC)


def clock(moment: datetime) -> str:
    """`14:02:11.234` in the site's time zone."""
    local = timezone.localtime(moment)
    return f"{local:%H:%M:%S}.{local.microsecond // 1000:03d}"


def stamp(moment: datetime) -> str:
    """`2026-12-03 14:02:11.234 CET`: the date, the time to the millisecond and the zone."""
    local = timezone.localtime(moment)
    return f"{local:%Y-%m-%d} {clock(local)} {local:%Z}".rstrip()


def iso(moment: datetime) -> str:
    """ISO 8601 in UTC, always to the millisecond (`2026-12-03T13:02:54.000Z`: a time on a whole
    second keeps its milliseconds, which a machine reading the API can count on)."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def seconds(value: float, places: int = 3) -> str:
    """`4.25 s`, `0.057 s`, `6 s`: rounded to `places`, no trailing zeros."""
    return f"{round(value, places):g} s"


def duration(value: float) -> str:
    """A length people read at a glance: `7.234 s`, `4 min 12 s`, `2 h 5 min`."""
    if value < 60:
        return seconds(value)
    whole = round(value)
    if whole < 3600:
        return f"{whole // 60} min {whole % 60} s"
    return f"{whole // 3600} h {whole % 3600 // 60} min"
