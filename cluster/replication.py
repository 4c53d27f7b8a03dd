"""Replication jobs (DESIGN §5): the secondary's agent pulls the primary's data over the heartbeat
network while this job orchestrates and records progress; licenses, modules and the system
configuration travel with `PUT /v1/inventory`.

A job is one row, claimed by inserting it (one running job per cluster, by a partial unique
index): cluster/replication_schedule.py starts it when it is due. A job whose worker died is
noticed by its stale `alive_at` and closed; the next job is a diff, so it completes whatever was
left, and it adopts a sync the agent is still running.
"""

from __future__ import annotations

import logging
import time
from datetime import date
from typing import Any

from django.db import transaction
from django.utils import timezone

from agent.credentials import peer_credential
from alerts.choices import EventType
from alerts.events import record_event
from licensing.models import License, SoftwareModule, Source

from .agent_client import call_once
from .choices import ClusterState, Role
from .hardware import differing_fields
from .heartbeat.incidents import Incidents
from .heartbeat.state import HeartbeatState
from .models import Cluster, ReplicationJob, Server
from .role_commands import allocate_seq

log = logging.getLogger(__name__)

POLL_S = 0.5
SHRINK_RATIO = 0.5  # more than half of the files gone pauses deletions (DESIGN §5)
SHRINK_MIN_FILES = 4  # below this, a "sharp shrink" is noise
JOB_DEADLINE_S = 6 * 3600
DELETIONS_PAUSED = "deletions paused"


class JobFailed(Exception):
    pass


class JobAborted(Exception):
    pass


class Replication:
    def __init__(self, job: ReplicationJob):
        self.job = job
        self.cluster = Cluster.objects.select_related("primary", "secondary").get(pk=job.cluster_id)
        self.primary: Server = self.cluster.primary
        self.secondary: Server = self.cluster.secondary

    def run(self) -> str:
        job = self.job
        try:
            if self.cluster.epoch != job.epoch or self.cluster.state == ClusterState.FAILING_OVER:
                raise JobAborted("a failover is in progress")
            self.copy_inventory()
            self.copy_data()
        except JobAborted as error:
            self._finish(ReplicationJob.State.ABORTED, str(error))
            return "aborted"
        except JobFailed as error:
            self._finish(ReplicationJob.State.FAILED, str(error))
            self._failed(str(error))
            return "failed"
        self._finish(ReplicationJob.State.SUCCEEDED, "")
        self._succeeded()
        return "succeeded"

    # -- inventory ------------------------------------------------------------------------------
    def copy_inventory(self) -> None:
        source = self._get(self.primary, "/v1/inventory")
        target = self._get(self.secondary, "/v1/inventory")
        system, target_system = source.get("system") or {}, target.get("system") or {}
        differing = differing_fields(system.get("hardware") or {}, target_system.get("hardware") or {})
        if differing:
            raise JobFailed("the appliances' hardware configurations differ in: " + ", ".join(differing))
        body: dict[str, Any] = {
            "epoch": self.cluster.epoch,
            "seq": allocate_seq(self.cluster.pk),
            "licenses": source.get("licenses") or [],
            "modules": source.get("modules") or [],
            "configuration": system.get("configuration") or {},
        }
        answer = call_once("PUT", self.secondary.heartbeat_url, "/v1/inventory", self.secondary.agent_token, body, 10)
        if answer.status == 409:
            raise JobAborted(f"the secondary refused the inventory: {answer.body.get('error')}")
        if not answer.ok:
            raise JobFailed(f"the secondary did not take the inventory: {answer.error or answer.body}")
        if self._record_inventory(source):
            record_event(
                EventType.LICENSES_COPIED,
                f"{len(body['licenses'])} licenses and {len(body['modules'])} modules copied from "
                f"{self.primary.name} to {self.secondary.name}.",
                cluster=self.cluster,
                server=self.secondary,
                details={"licenses": [lic.get("name") for lic in body["licenses"]], "modules": body["modules"]},
            )

    def _record_inventory(self, inventory: dict) -> bool:
        """Both servers' licenses and modules as the agents hold them; the secondary's marked copied."""
        changed = False
        with transaction.atomic():
            for server, source in ((self.primary, Source.INSTALLED), (self.secondary, Source.COPIED)):
                changed |= _sync_rows(License, server, source, inventory.get("licenses") or [], _license_fields)
                changed |= _sync_rows(SoftwareModule, server, source, inventory.get("modules") or [], _module_fields)
        return changed

    # -- data -----------------------------------------------------------------------------------
    def copy_data(self) -> None:
        source_files = len(self._get(self.primary, "/v1/data/manifest").get("files") or [])
        target_files = len(self._get(self.secondary, "/v1/data/manifest").get("files") or [])
        shrink = target_files >= SHRINK_MIN_FILES and source_files < target_files * (1 - SHRINK_RATIO)
        allow = not shrink or self.cluster.deletions_confirmed
        sync_id = self._start_sync(delete=allow)
        self.job.sync_id = sync_id
        self.job.save(update_fields=["sync_id"])
        status = self._follow(sync_id)
        if status.get("state") == "aborted":
            raise JobAborted(status.get("error") or "the secondary's role or epoch changed")
        if status.get("state") != "succeeded":
            raise JobFailed(f"the secondary's sync failed: {status.get('error') or status}")
        if shrink and allow:
            Cluster.objects.filter(pk=self.cluster.pk).update(deletions_confirmed=False)
        if not allow:
            raise JobFailed(
                f"{DELETIONS_PAUSED}: the primary holds {source_files} files where the secondary holds {target_files} "
                "(more than half gone); confirm the deletions on the cluster page or through the API"
            )

    def _start_sync(self, *, delete: bool) -> str:
        body = {
            "source_url": self.primary.heartbeat_url,
            # The primary's peer credential: it may read the primary's data, nothing else.
            "source_token": peer_credential(self.primary.agent_token),
            "epoch": self.cluster.epoch,
            "seq": allocate_seq(self.cluster.pk),
            # Files only the secondary holds are kept in its quarantine folder, never deleted, when it
            # joins a cluster (an appliance added with data of its own) and when it returns.
            "quarantine": self.job.kind in (ReplicationJob.Kind.INITIAL, ReplicationJob.Kind.RESYNC),
            "delete": delete,
        }
        answer = call_once("POST", self.secondary.heartbeat_url, "/v1/sync", self.secondary.agent_token, body, 10)
        if answer.status in (200, 202) and answer.body.get("id"):
            return str(answer.body["id"])
        running = answer.body.get("running") or answer.body.get("id")
        if answer.status == 409 and running and answer.body.get("role") == Role.SECONDARY:
            return str(running)  # a sync of a job whose worker died: follow it
        if answer.status == 409:
            raise JobAborted(f"the secondary refused the sync: {answer.body.get('error')}")
        raise JobFailed(f"the secondary did not start the sync: {answer.error or answer.body}")

    def _follow(self, sync_id: str) -> dict:
        deadline = time.monotonic() + JOB_DEADLINE_S
        misses = 0
        while time.monotonic() < deadline:
            if not ReplicationJob.objects.filter(pk=self.job.pk).exists():
                # Its cluster was deleted (the job row goes with it): nothing left to copy for.
                raise JobAborted("the cluster was deleted")
            answer = call_once("GET", self.secondary.heartbeat_url, f"/v1/sync/{sync_id}", self.secondary.agent_token)
            if answer.ok:
                misses = 0
                status = answer.body
                self._progress(status)
                if status.get("state") != "running":
                    return status
            elif answer.status == 404:
                raise JobFailed("the secondary lost the sync (its agent restarted); the next job resumes")
            else:
                misses += 1
                if misses > 20:
                    raise JobFailed(f"the secondary stopped answering: {answer.error}")
            time.sleep(POLL_S)
        raise JobFailed("the sync did not finish in time")

    def _progress(self, status: dict) -> None:
        fields = {
            "files_total": int(status.get("files_total") or 0),
            "files_done": int(status.get("files_done") or 0),
            "bytes_total": int(status.get("bytes_total") or 0),
            "bytes_done": int(status.get("bytes_done") or 0),
            "deleted": int(status.get("deleted") or 0),
            "quarantined": int(status.get("quarantined") or 0),
            "alive_at": timezone.now(),
        }
        ReplicationJob.objects.filter(pk=self.job.pk).update(**fields)

    # -- outcome --------------------------------------------------------------------------------
    def _finish(self, state: str, error: str) -> None:
        ReplicationJob.objects.filter(pk=self.job.pk).update(state=state, error=error, finished_at=timezone.now())

    def _succeeded(self) -> None:
        now = timezone.now()
        state = HeartbeatState()
        with transaction.atomic():
            Cluster.objects.filter(pk=self.cluster.pk).update(last_replication_at=now)
            if self.job.kind == ReplicationJob.Kind.RESYNC:
                Cluster.objects.filter(pk=self.cluster.pk).update(needs_resync=False)
            # A failure is recorded against the job's secondary; once a failover or switchover has
            # swapped the roles, that is today's primary: close it wherever it is open.
            for server in (self.secondary, self.primary):
                Incidents(state, server.pk).close(
                    EventType.REPLICATION_FAILED,
                    f"Replication of cluster {self.cluster.name} works again.",
                    cluster=self.cluster,
                    server=server,
                    details={"job": self.job.pk},
                )
            if Cluster.objects.filter(pk=self.cluster.pk, state=ClusterState.SYNCING).update(
                state=ClusterState.HEALTHY, active=True
            ):
                record_event(
                    EventType.INITIAL_SYNC_COMPLETED,
                    f"Initial sync of cluster {self.cluster.name} completed: {self.secondary.name} holds every "
                    f"license, module and file of {self.primary.name}; the cluster is protected.",
                    cluster=self.cluster,
                    server=self.secondary,
                    details={"job": self.job.pk},
                )

    def _failed(self, error: str) -> None:
        with transaction.atomic():
            Incidents(HeartbeatState(), self.secondary.pk).open(
                EventType.REPLICATION_FAILED,
                f"Replication of cluster {self.cluster.name} failed: {error}"[:500],
                cluster=self.cluster,
                server=self.secondary,
                details={"job": self.job.pk, "error": error, "kind": self.job.kind},
            )

    def _get(self, server: Server, path: str) -> dict:
        answer = call_once("GET", server.heartbeat_url, path, server.agent_token, timeout=30)
        if not answer.ok:
            raise JobFailed(f"{server.name} did not answer {path}: {answer.error or answer.status}")
        return answer.body


def _license_fields(item: dict) -> dict:
    return {
        "key": str(item.get("key", ""))[:200],
        "quantity": _int(item.get("quantity"), 1),
        "expires_at": _date(item.get("expires_at")),
    }


def _int(value, default: int) -> int:
    try:
        return max(0, int(value))
    except (TypeError, ValueError):
        return default


def _date(value):
    try:
        return date.fromisoformat(str(value)[:10]) if value else None
    except ValueError:
        return None


def _module_fields(item: dict) -> dict:
    return {"version": str(item.get("version", ""))[:40]}


def _sync_rows(model, server: Server, source: str, items: list, fields) -> bool:
    """Make `server`'s rows equal `items` (by name); True when anything changed."""
    existing = {row.name: row for row in model.objects.filter(server=server)}
    wanted = {str(item.get("name"))[:100]: item for item in items if isinstance(item, dict) and item.get("name")}
    changed = False
    for name, item in wanted.items():
        values = {**fields(item), "source": source}
        row = existing.get(name)
        if row is None:
            model.objects.create(server=server, name=name, **values)
            changed = True
        elif any(getattr(row, key) != value for key, value in values.items()):
            model.objects.filter(pk=row.pk).update(**values)
            changed = True
    stale = [row.pk for name, row in existing.items() if name not in wanted]
    if stale:
        model.objects.filter(pk__in=stale).delete()
        changed = True
    return changed
