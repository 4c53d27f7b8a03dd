"""Pages of the cluster app: the dashboard (every deployment, its clusters and their servers) and
a cluster's detail page (servers, replication jobs, operator actions). Both read a fixed number of
queries whatever the number of clusters. The operator actions call cluster/actions.py, like the API."""

from __future__ import annotations

from datetime import datetime

from django.contrib import messages
from django.db.models import Prefetch
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.utils import timezone
from django.views.decorators.http import require_POST

from alerts.access import role_required
from alerts.counts import OpenAlerts, total, unacknowledged_by_cluster
from alerts.models import Event
from audit.models import Action, AuditEntry
from dms_admin.moments import stamp
from dms_admin.permissions import OPERATOR, VIEWER, has_role

from . import actions, history_bar
from .api.serializers import ClusterSerializer
from .display import protection, shown_role
from .models import Cluster, Deployment, IncidentStep, ReplicationJob
from .replication_schedule import with_last_job
from .story import INCIDENTS, outage_of, story_for_event, story_of


def _history_bars(clusters: list[Cluster], now: datetime) -> dict[int, history_bar.HistoryBar]:
    """Every cluster's bar from one query over the window's events."""
    by_cluster: dict[int, list[dict]] = {c.pk: [] for c in clusters}
    rows = (
        Event.objects.filter(
            cluster_id__in=list(by_cluster),
            created_at__gte=now - history_bar.WINDOW,
            type__in=history_bar.EVENT_TYPES,
        )
        .order_by("created_at", "id")
        .values("cluster_id", "server_id", "type", "created_at", "details")
    )
    for row in rows:
        by_cluster[row["cluster_id"]].append(row)
    return {
        c.pk: history_bar.build(c, by_cluster[c.pk], now, {s.pk: s.name for s in (c.primary, c.secondary)})
        for c in clusters
    }


def _decorate(clusters: list[Cluster], now: datetime) -> OpenAlerts:
    """What the pages show of each cluster beyond its row; returns the open alerts of every
    cluster and of none, summed."""
    counts = unacknowledged_by_cluster()
    bars = _history_bars(clusters, now)
    serializer = ClusterSerializer()
    for cluster in clusters:
        cluster.open_alerts = counts.get(cluster.pk, OpenAlerts())
        cluster.history = bars[cluster.pk]
        cluster.replication = serializer.get_replication(cluster)
        cluster.primary_role = shown_role(cluster, cluster.primary)
        cluster.secondary_role = shown_role(cluster, cluster.secondary)
        cluster.protection = protection(cluster, now)
    return total(counts)


# The last job's state and error ride along as annotations (one query), for the replication state.
CLUSTERS = with_last_job(Cluster.objects.select_related("primary", "secondary"))
HISTORY = 20


@role_required(VIEWER)
def dashboard(request: HttpRequest) -> HttpResponse:
    deployments = list(Deployment.objects.prefetch_related(Prefetch("clusters", queryset=CLUSTERS.all())))
    standalone = list(CLUSTERS.filter(deployment__isnull=True))
    clusters = [c for d in deployments for c in d.clusters.all()] + standalone
    now = timezone.now()
    open_alerts = _decorate(clusters, now)
    groups = [(d, list(d.clusters.all())) for d in deployments]
    if standalone:
        groups.append((None, standalone))
    context = {
        "groups": groups,
        "cluster_count": len(clusters),
        "healthy_count": sum(c.state == "healthy" for c in clusters),
        "unprotected_count": sum(c.protection is not None for c in clusters),
        "open_alerts": open_alerts,
        "now": now,
    }
    return render(request, "cluster/dashboard.html", context)


@role_required(VIEWER)
def cluster_detail(request: HttpRequest, pk: int) -> HttpResponse:
    cluster = get_object_or_404(CLUSTERS.select_related("deployment"), pk=pk)
    now = timezone.now()
    _decorate([cluster], now)
    events = Event.objects.filter(cluster=cluster).select_related("server", "acknowledged_by")[:25]
    context = {
        "cluster": cluster,
        "servers": [
            ("Primary", cluster.primary, cluster.primary_role),
            ("Secondary", cluster.secondary, cluster.secondary_role),
        ],
        "events": events,
        "now": now,
        "maintenance_since": _maintenance_since(cluster),
        "can_operate": has_role(request.user, OPERATOR),
        **_replication_context(cluster),
        **_incidents_context(cluster),
    }
    return render(request, "cluster/cluster_detail.html", context)


def _maintenance_since(cluster: Cluster) -> AuditEntry | None:
    """Who put the cluster into maintenance, and when (the audit log's last "maintenance on")."""
    if not cluster.maintenance:
        return None
    return AuditEntry.objects.filter(
        object_type=Cluster._meta.model_name, object_id=cluster.pk, action=Action.MAINTENANCE_ON
    ).first()


EARLIER_INCIDENTS = 10


def _incidents_context(cluster: Cluster) -> dict:
    """The last incident's story and the ones before it, each with its outage (cluster/story/)."""
    steps = Prefetch("steps", queryset=IncidentStep.objects.order_by("at", "id"))
    incidents = list(INCIDENTS.filter(cluster=cluster).prefetch_related(steps)[: EARLIER_INCIDENTS + 1])
    for incident in incidents[1:]:
        incident.began = stamp(incident.opened_at)
        incident.outage = outage_of(incident, list(incident.steps.all()))
    return {"story": story_of(incidents[0]) if incidents else None, "earlier_incidents": incidents[1:]}


@role_required(VIEWER)
def incident_detail(request: HttpRequest, pk: int, incident_id) -> HttpResponse:
    """One incident's story on a page of its own (linked from the cluster page and the events)."""
    incident = get_object_or_404(INCIDENTS, cluster_id=pk, pk=incident_id)
    return render(request, "cluster/incident_detail.html", {"cluster": incident.cluster, "story": story_of(incident)})


def event_story(request: HttpRequest, event) -> str:
    """The story of the incident `event` belongs to, for the event's page (alerts/panels.py)."""
    story = story_for_event(event.pk)
    if story is None:
        return ""
    context = {"story": story, "heading": "The incident of this event", "current_event": event.pk}
    context["link_incident"] = True
    return render_to_string("cluster/_story.html", context, request=request)


def _replication_context(cluster: Cluster) -> dict:
    """The running job (if any) and the last jobs, newest first, in one query."""
    jobs = list(ReplicationJob.objects.filter(cluster=cluster).order_by("-id")[:HISTORY])
    for job in jobs:
        end = job.finished_at or timezone.now()
        job.duration = _duration((end - job.started_at).total_seconds())
    running = next((job for job in jobs if job.state == ReplicationJob.State.RUNNING), None)
    return {
        "running_job": running,
        "jobs": jobs,
        "deletions_paused": cluster.replication["state"] == "deletions paused",
    }


def _duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


@role_required(VIEWER)
def cluster_replication(request: HttpRequest, pk: int) -> HttpResponse:
    """The replication block alone: htmx polls it every 2 s while a job runs (DESIGN §5)."""
    cluster = get_object_or_404(CLUSTERS, pk=pk)
    _decorate_replication(cluster)
    context = {"cluster": cluster, "can_operate": has_role(request.user, OPERATOR), **_replication_context(cluster)}
    return render(request, "cluster/_replication.html", context)


def _decorate_replication(cluster: Cluster) -> None:
    cluster.replication = ClusterSerializer().get_replication(cluster)


def _back(pk: int) -> HttpResponse:
    return redirect("cluster:cluster_detail", pk=pk)


@require_POST
@role_required(OPERATOR)
def cluster_replicate(request: HttpRequest, pk: int) -> HttpResponse:
    cluster = get_object_or_404(Cluster, pk=pk)
    outcome = actions.queue_replication(cluster, request)
    messages.success(request, f"Cluster {cluster.name}: {outcome.status}.")
    return _back(pk)


@require_POST
@role_required(OPERATOR)
def cluster_confirm_deletions(request: HttpRequest, pk: int) -> HttpResponse:
    cluster = get_object_or_404(Cluster, pk=pk)
    outcome = actions.confirm_deletions(cluster, request)
    messages.success(request, f"Cluster {cluster.name}: {outcome.status}.")
    return _back(pk)


@role_required(OPERATOR)
def cluster_maintenance(request: HttpRequest, pk: int) -> HttpResponse:
    """The maintenance switch. GET: the confirmation step, saying what changes; POST
    `maintenance=on|off` (no automatic failover and no notifications while on), recorded in the
    audit log with the user."""
    cluster = get_object_or_404(CLUSTERS, pk=pk)
    if request.method != "POST":
        return render(request, "cluster/maintenance_confirm.html", {"cluster": cluster})
    wanted = request.POST.get("maintenance")
    if wanted not in ("on", "off"):
        messages.error(request, "Choose maintenance on or off.")
        return _back(pk)
    outcome = actions.set_maintenance(cluster, wanted == "on", request)
    messages.success(request, f"Cluster {cluster.name}: {outcome.status}.")
    return _back(pk)


@role_required(OPERATOR)
def cluster_switchover(request: HttpRequest, pk: int) -> HttpResponse:
    """GET: the confirmation step; POST: the switchover, or the reasons it was refused."""
    cluster = get_object_or_404(CLUSTERS, pk=pk)
    if request.method != "POST":
        return render(request, "cluster/switchover_confirm.html", {"cluster": cluster})
    outcome = actions.start_switchover(cluster.pk, request)
    if outcome.started:
        messages.success(
            request,
            f"Switchover of {cluster.name} started: {cluster.secondary.name} becomes primary. "
            "The events below show its progress.",
        )
    else:
        messages.error(request, f"Switchover of {cluster.name} refused: " + " ".join(outcome.reasons))
    return _back(pk)
