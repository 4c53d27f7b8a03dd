"""Pages of the cluster app: the dashboard (every deployment, its clusters and their servers) and
a cluster's detail page (servers, replication jobs, operator actions). Both read a fixed number of
queries whatever the number of clusters. The operator actions call cluster/actions.py, like the API."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.contrib import messages
from django.db.models import Count, Prefetch
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from alerts.access import role_required
from alerts.choices import EventType
from alerts.models import Event
from dms_admin.permissions import OPERATOR, VIEWER, has_role

from . import actions
from .api.serializers import ClusterSerializer
from .models import Cluster, Deployment, ReplicationJob
from .replication import with_last_job

WINDOW = timedelta(hours=24)
DOWN = {EventType.SERVER_FAILED, EventType.CRITICAL_SERVICE_FAILED}
UP = {EventType.SERVER_RECOVERED, EventType.CRITICAL_SERVICE_RECOVERED}
FAILOVER = {EventType.FAILOVER_COMPLETED, EventType.SWITCHOVER_COMPLETED}
TIMELINE_TYPES = DOWN | UP | FAILOVER
TIMELINE_WIDTH = 1440  # SVG user units: one per minute of the window
MIN_DOWN_WIDTH = 4  # a failure of a few seconds still shows (4 minutes' width)
MARKER_WIDTH = 6


@dataclass
class Segment:
    x: float
    width: float
    state: str  # "up" or "down"
    title: str


@dataclass
class Marker:
    x: float
    title: str


@dataclass
class Timeline:
    segments: list[Segment]
    markers: list[Marker]


def _x(moment: datetime, start: datetime) -> float:
    return round(max(0.0, min(1.0, (moment - start) / WINDOW)) * TIMELINE_WIDTH, 1)


def build_timeline(events: list[dict], start: datetime, end: datetime) -> Timeline:
    """Up/down stretches and failover marks over the window, from the window's events (oldest first).
    A cluster is drawn down while any of its servers is failed. The state before the window is
    inferred: a recovery with no failure before it in the window means it started down."""
    down_servers: set = set()
    first_change = next((e for e in events if e["type"] in DOWN | UP), None)
    if first_change and first_change["type"] in UP:
        down_servers.add(first_change["server_id"])
    segments: list[Segment] = []
    markers: list[Marker] = []
    since = start

    def close(until: datetime) -> None:
        state = "down" if down_servers else "up"
        if until > since:
            label = "a server failed" if down_servers else "up"
            title = f"{label}: {timezone.localtime(since):%H:%M} – {timezone.localtime(until):%H:%M}"
            if segments and segments[-1].state == state:
                previous = segments[-1]
                previous.width = round(_x(until, start) - previous.x, 1)
                previous.title = previous.title.split(" – ")[0] + f" – {timezone.localtime(until):%H:%M}"
            else:
                segments.append(Segment(_x(since, start), round(_x(until, start) - _x(since, start), 1), state, title))
            if state == "down" and segments[-1].width < MIN_DOWN_WIDTH:
                segments[-1].width = MIN_DOWN_WIDTH
                segments[-1].x = min(segments[-1].x, TIMELINE_WIDTH - MIN_DOWN_WIDTH)

    for event in events:
        kind = event["type"]
        if kind in FAILOVER:
            label = EventType(kind).label
            x = min(_x(event["created_at"], start), TIMELINE_WIDTH - MARKER_WIDTH)
            markers.append(Marker(x, f"{label} at {timezone.localtime(event['created_at']):%H:%M}"))
            continue
        close(event["created_at"])
        since = event["created_at"]
        if kind in DOWN:
            down_servers.add(event["server_id"])
        else:
            down_servers.discard(event["server_id"])
    close(end)
    return Timeline(segments, markers)


def _timelines(cluster_ids: list[int], now: datetime) -> dict[int, Timeline]:
    start = now - WINDOW
    by_cluster: dict[int, list[dict]] = {pk: [] for pk in cluster_ids}
    rows = (
        Event.objects.filter(cluster_id__in=cluster_ids, created_at__gte=start, type__in=TIMELINE_TYPES)
        .order_by("id")
        .values("cluster_id", "server_id", "type", "created_at")
    )
    for row in rows:
        by_cluster[row["cluster_id"]].append(row)
    return {pk: build_timeline(events, start, now) for pk, events in by_cluster.items()}


def _unacknowledged_counts() -> dict[int, int]:
    """Unacknowledged events per cluster, in one query (the event_unacknowledged partial index)."""
    rows = (
        Event.objects.filter(acknowledged_at__isnull=True, cluster__isnull=False)
        .values("cluster_id")
        .annotate(n=Count("id"))
        .order_by()
    )
    return {row["cluster_id"]: row["n"] for row in rows}


def _decorate(clusters: list[Cluster], now: datetime) -> None:
    counts = _unacknowledged_counts()
    timelines = _timelines([c.pk for c in clusters], now)
    serializer = ClusterSerializer()
    for cluster in clusters:
        cluster.unacknowledged = counts.get(cluster.pk, 0)
        cluster.timeline = timelines[cluster.pk]
        cluster.replication = serializer.get_replication(cluster)


# The last job's state and error ride along as annotations (one query), for the replication state.
CLUSTERS = with_last_job(Cluster.objects.select_related("primary", "secondary"))
HISTORY = 20


@role_required(VIEWER)
def dashboard(request: HttpRequest) -> HttpResponse:
    deployments = list(Deployment.objects.prefetch_related(Prefetch("clusters", queryset=CLUSTERS.all())))
    standalone = list(CLUSTERS.filter(deployment__isnull=True))
    clusters = [c for d in deployments for c in d.clusters.all()] + standalone
    now = timezone.now()
    _decorate(clusters, now)
    groups = [(d, list(d.clusters.all())) for d in deployments]
    if standalone:
        groups.append((None, standalone))
    context = {
        "groups": groups,
        "cluster_count": len(clusters),
        "healthy_count": sum(c.state == "healthy" for c in clusters),
        "unacknowledged_total": sum(c.unacknowledged for c in clusters),
        "window_start": now - WINDOW,
        "now": now,
        "timeline_width": TIMELINE_WIDTH,
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
        "servers": [("Primary", cluster.primary), ("Secondary", cluster.secondary)],
        "events": events,
        "now": now,
        "window_start": now - WINDOW,
        "timeline_width": TIMELINE_WIDTH,
        "can_operate": has_role(request.user, OPERATOR),
        **_replication_context(cluster),
    }
    return render(request, "cluster/cluster_detail.html", context)


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


@require_POST
@role_required(OPERATOR)
def cluster_maintenance(request: HttpRequest, pk: int) -> HttpResponse:
    """The maintenance switch: `maintenance=on|off` (no automatic failover while on)."""
    cluster = get_object_or_404(Cluster, pk=pk)
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
