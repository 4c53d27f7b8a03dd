"""Failures and their recoveries, in pairs (DESIGN §7).

A failure is *open* from its event until its recovery's event. Which failures are open lives in
Redis beside the heartbeat counters; after a Redis restart it is rebuilt once from the events.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction

from alerts.choices import RECOVERY_OF, EventType
from alerts.events import record_event
from alerts.models import Event

from .state import HeartbeatState, incident_key, open_key

LOADED = "_loaded"


class Incidents:
    def __init__(self, state: HeartbeatState, server_id: int, snapshot: dict[str, str] | None = None):
        self.redis = state.redis
        self.server_id = server_id
        self.key = open_key(server_id)
        # The key's fields read with the batch (HeartbeatState.acount_slots); used by is_open
        # only when it holds LOADED.
        self.snapshot = snapshot if snapshot and LOADED in snapshot else None

    def _ensure_loaded(self) -> None:
        if self.redis.hexists(self.key, LOADED):
            return
        open_events: dict[str, int] = {}
        types = [*RECOVERY_OF, *RECOVERY_OF.values()]
        for event in (
            Event.objects.filter(server_id=self.server_id, type__in=types).order_by("id").only("id", "type", "details")
        ):
            key = incident_key(event.type, (event.details or {}).get("name", ""))
            if event.type in RECOVERY_OF:
                open_events[key] = event.pk
            else:
                open_events.pop(key, None)
        mapping: dict = {LOADED: 1, **open_events}
        self.redis.hset(self.key, mapping=mapping)

    def open_set(self) -> dict[str, str]:
        """The open failures (incident key → event id): the batch's snapshot, or when it was read
        before this set was rebuilt (a first slot, a Redis restart), the set rebuilt now."""
        if self.snapshot is not None:
            return self.snapshot
        self._ensure_loaded()
        stored: dict[bytes, bytes] = self.redis.hgetall(self.key)  # type: ignore[assignment]  # bytes: no decoding
        return {key.decode(): value.decode() for key, value in stored.items()}

    def is_open(self, failure: EventType, name: str = "") -> bool:
        if self.snapshot is not None:
            return incident_key(failure, name) in self.snapshot
        self._ensure_loaded()
        return self.redis.hexists(self.key, incident_key(failure, name))

    def open_event_id(self, failure: EventType, name: str = "") -> int | None:
        """The id of the open failure's event, or None when it is not open."""
        key = incident_key(failure, name)
        value: Any
        if self.snapshot is not None:
            value = self.snapshot.get(key)
        else:
            self._ensure_loaded()
            value = self.redis.hget(self.key, key)
        return int(value) if value else None

    def open(self, failure: EventType, message: str, *, cluster, server, details: dict, name: str = "") -> Event | None:
        """Record the failure unless it is already open. Call inside the transaction of the change."""
        self._ensure_loaded()
        key = incident_key(failure, name)
        if self.redis.hexists(self.key, key):
            return None
        event = record_event(
            failure, message, cluster=cluster, server=server, details={**details, **({"name": name} if name else {})}
        )
        transaction.on_commit(lambda: self.redis.hset(self.key, key, event.pk))
        return event

    def close(
        self, failure: EventType, message: str, *, cluster, server, details: dict, name: str = ""
    ) -> Event | None:
        """Record the recovery of an open failure; nothing when it was not open."""
        self._ensure_loaded()
        key = incident_key(failure, name)
        failure_id = self.redis.hget(self.key, key)
        if failure_id is None:
            return None
        failure_event = Event.objects.filter(pk=int(failure_id)).first()
        event = record_event(
            RECOVERY_OF[failure],
            message,
            cluster=cluster,
            server=server,
            details={**details, **({"name": name} if name else {})},
            recovers=failure_event,
        )
        transaction.on_commit(lambda: self.redis.hdel(self.key, key))
        return event
