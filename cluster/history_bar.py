"""The 24-hour history bar of a cluster: what users had, stretch by stretch, from the cluster's
events. Model-free: it takes event rows (dicts) and the cluster's row.

Stretches, the gravest first:
- outage: the appliance that was the primary then had failed (missed heartbeats, or a critical
  service), and no failover had completed yet. A missed-heartbeat failure starts at its first missed
  slot (`first_missed_slot_at` in its details), not at the moment it was declared N slots later:
  users were without service from then on.
- unprotected: one appliance had failed, the other served (a failed secondary, or the old primary
  after a failover until it is back).
- syncing: both up, the initial sync not yet done (no automatic failover).
- up: both appliances up.

Nothing is drawn before the cluster was created. Positions are percentages of the window; the
page gives every stretch but "up" a minimum width in pixels, so a 3-second outage in a 24-hour bar
still shows, and every stretch carries its exact times and length in words (`title`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.utils import timezone

from alerts.choices import EventType

WINDOW = timedelta(hours=24)
FAILED = {EventType.SERVER_FAILED, EventType.CRITICAL_SERVICE_FAILED}
RECOVERED = {EventType.SERVER_RECOVERED, EventType.CRITICAL_SERVICE_RECOVERED}
PROMOTED = {EventType.FAILOVER_COMPLETED, EventType.SWITCHOVER_COMPLETED}
SYNCED = {EventType.INITIAL_SYNC_COMPLETED}
SERVICE_EVENTS = {EventType.CRITICAL_SERVICE_FAILED, EventType.CRITICAL_SERVICE_RECOVERED}
EVENT_TYPES = FAILED | RECOVERED | PROMOTED | SYNCED
STATE_LABELS = {
    "outage": "Outage",
    "unprotected": "Running unprotected",
    "syncing": "Initial sync",
    "up": "Both appliances up",
}
DRAW_ORDER = ("up", "syncing", "unprotected", "outage")  # later ones are drawn over earlier ones


@dataclass
class Stretch:
    state: str
    start: datetime
    end: datetime
    left: float = 0.0  # percent of the window
    width: float = 0.0
    why: str = ""
    open: bool = False  # still going at the end of the window

    @property
    def label(self) -> str:
        return STATE_LABELS[self.state]

    @property
    def length(self) -> str:
        return duration(self.end - self.start)

    @property
    def times(self) -> str:
        end = "now" if self.open else moment(self.end, precise=self.end - self.start < timedelta(minutes=1))
        return f"{moment(self.start, precise=self.end - self.start < timedelta(minutes=1))} – {end}"

    @property
    def title(self) -> str:
        why = f" ({self.why})" if self.why else ""
        return f"{self.label} {self.length}: {self.times}{why}"


@dataclass
class Mark:
    kind: str  # "failover", "switchover" or "created"
    at: datetime
    title: str
    left: float = 0.0


@dataclass
class HistoryBar:
    stretches: list[Stretch]
    marks: list[Mark]
    start: datetime
    end: datetime

    @property
    def drawn(self) -> list[Stretch]:
        return sorted(self.stretches, key=lambda s: DRAW_ORDER.index(s.state))

    @property
    def notable(self) -> list[Stretch]:
        """The stretches worth a line of text under the bar: all but "up", oldest first."""
        return [s for s in self.stretches if s.state != "up"]

    @property
    def summary(self) -> str:
        """The bar in words, for screen readers."""
        outages = [s for s in self.stretches if s.state == "outage"]
        unprotected = [s for s in self.stretches if s.state == "unprotected"]
        parts = [f"{len(outages)} outage{'s' if len(outages) != 1 else ''}"]
        parts += [f"outage {s.length} at {moment(s.start)}" for s in outages]
        parts += [f"running unprotected {s.length} from {moment(s.start)}" for s in unprotected]
        return "; ".join(parts)


def moment(at: datetime, precise: bool = False) -> str:
    local = timezone.localtime(at)
    return f"{local:%H:%M:%S}.{local.microsecond // 100_000}" if precise else f"{local:%H:%M:%S}"


def duration(length: timedelta) -> str:
    seconds = max(0.0, length.total_seconds())
    if seconds < 60:
        return f"{seconds:.1f} s"
    seconds = round(seconds)
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


def _failure_key(event: dict) -> tuple:
    """What a failure and its recovery share: the server, and the service for a critical service."""
    if event["type"] in SERVICE_EVENTS:
        return (event["server_id"], "service", (event.get("details") or {}).get("service"))
    return (event["server_id"], "server")


def _failure_start(event: dict) -> datetime:
    """When users lost the server: its first missed slot when the failure says so."""
    first_miss = (event.get("details") or {}).get("first_missed_slot_at")
    if isinstance(first_miss, (int, float)) and not isinstance(first_miss, bool):
        return min(event["created_at"], datetime.fromtimestamp(first_miss, tz=UTC))
    return event["created_at"]


def _first_primary(events: list[dict], pair: tuple[int, int], current_primary: int) -> int | None:
    """The primary at the start of the window: the other one of the pair before the window's first
    promotion, else today's primary."""
    promotion = next((e for e in events if e["type"] in PROMOTED), None)
    if promotion is None:
        return current_primary
    if promotion["server_id"] in pair:
        return pair[1] if promotion["server_id"] == pair[0] else pair[0]
    return None


def build(cluster, events: list[dict], end: datetime, names: dict[int, str] | None = None) -> HistoryBar:
    """The bar of `cluster` (a row with primary_id, secondary_id, created_at, active) over the 24
    hours before `end`, from its events of EVENT_TYPES in the window, oldest first (dicts with type,
    server_id, created_at, details)."""
    window_start = end - WINDOW
    begin = max(window_start, min(cluster.created_at, end))
    names = names or {}
    down: set[tuple] = set()
    seen: set[tuple] = set()
    for event in events:  # a recovery before any failure of the same key: it was down at the start
        if event["type"] in FAILED | RECOVERED:
            key = _failure_key(event)
            if key not in seen and event["type"] in RECOVERED:
                down.add(key)
            seen.add(key)
    primary = _first_primary(events, (cluster.primary_id, cluster.secondary_id), cluster.primary_id)
    syncing = any(e["type"] in SYNCED for e in events) or not cluster.active

    def state_now() -> tuple[str, str]:
        failed = {key[0] for key in down}
        if primary in failed:
            name = names.get(primary, "appliance") if primary is not None else "appliance"
            return "outage", f"the primary {name} had failed, no failover yet"
        if failed:
            which = ", ".join(sorted(names.get(server_id, "an appliance") for server_id in failed))
            return "unprotected", f"{which} failed, the other serving"
        return ("syncing", "not yet protected: no automatic failover") if syncing else ("up", "")

    stretches: list[Stretch] = []
    marks: list[Mark] = []
    if cluster.created_at > window_start:
        marks.append(Mark("created", begin, f"Cluster created at {moment(begin)}; nothing before"))
    since = begin

    def close(until: datetime) -> None:
        nonlocal since
        until = max(since, min(until, end))
        state, why = state_now()
        if stretches and stretches[-1].state == state:
            stretches[-1].end = until
        elif until > since or not stretches:
            stretches.append(Stretch(state, since, until, why=why))
        since = until

    for event in events:
        kind = EventType(event["type"])
        at = max(event["created_at"], begin)
        if kind in FAILED:
            close(max(_failure_start(event), begin))
            down.add(_failure_key(event))
        elif kind in RECOVERED:
            close(at)
            down.discard(_failure_key(event))
        elif kind in PROMOTED:
            close(at)
            primary = event["server_id"]
            marks.append(Mark(kind.value.split("_")[0], at, _promotion_title(event, names)))
        elif kind in SYNCED:
            close(at)
            syncing = False
    close(end)
    if stretches:
        stretches[-1].open = True
    for stretch in stretches:
        stretch.left = _percent(stretch.start - window_start)
        stretch.width = _percent(stretch.end - stretch.start)
    for mark in marks:
        mark.left = _percent(mark.at - window_start)
    return HistoryBar(stretches, marks, window_start, end)


def _promotion_title(event: dict, names: dict[int, str]) -> str:
    epoch = (event.get("details") or {}).get("epoch")
    who = names.get(event["server_id"], "the other appliance")
    at_epoch = f" at epoch {epoch}" if epoch else ""
    return f"{EventType(event['type']).label} at {moment(event['created_at'], precise=True)}: {who} primary{at_epoch}"


def _percent(length: timedelta) -> float:
    return round(max(0.0, min(1.0, length / WINDOW)) * 100, 4)
