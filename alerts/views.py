"""Pages of the alerts app: the alerts browser (list, live updates, acknowledge, CSV, detail) and the
notification rules (list, forms, test). Filtering is EventFilterSet's, the same as the API's."""

from __future__ import annotations

import csv
from collections.abc import Iterator

from django.contrib import messages
from django.db import transaction
from django.http import HttpRequest, HttpResponse, QueryDict, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from audit.models import Action
from audit.record import record, record_change, stored
from dms_admin.moments import stamp
from dms_admin.permissions import ADMIN, OPERATOR, VIEWER, has_role
from dms_admin.spreadsheet import safe_row

from . import panels
from .access import role_required
from .acknowledge import acknowledge
from .choices import Channel, EventType, Severity
from .counts import total, unacknowledged_by_cluster
from .delivery import send_test, snmp_engine_id
from .evidence import describe
from .filtersets import EventFilterSet
from .forms import NotificationRuleForm
from .models import Delivery, Event, NotificationRule
from .transports.base import TransportError

PAGE_SIZE = 50
POLL_SECONDS = 5


def _events() -> object:
    return Event.objects.select_related("cluster", "server", "acknowledged_by")


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value else None
    except ValueError:
        return None


def _params(request: HttpRequest) -> QueryDict:
    """The query without empty values: a filter form's "All types" submits `type=`, which means
    no filter, not an invalid choice."""
    params = QueryDict(mutable=True)
    for name, values in request.GET.lists():
        kept = [value for value in values if value.strip()]
        if kept:
            params.setlist(name, kept)
    return params


def _filter_query(request: HttpRequest) -> str:
    query = _params(request)
    for name in ("before", "after"):
        query.pop(name, None)
    return query.urlencode()


def _filter_choices() -> dict:
    """Clusters and servers for the filter form, from Event's own foreign keys (no cluster import)."""
    cluster_model = Event._meta.get_field("cluster").related_model
    server_model = Event._meta.get_field("server").related_model
    return {
        "clusters": cluster_model.objects.only("id", "name").order_by("name"),
        "servers": server_model.objects.only("id", "name").order_by("name"),
        "type_choices": EventType.choices,
        "severity_choices": Severity.choices,
    }


@role_required(VIEWER)
def event_list(request: HttpRequest) -> HttpResponse:
    """Newest first, keyset pages (`?before=<id>`: no COUNT, the same cost on every page)."""
    filterset = EventFilterSet(_params(request), queryset=_events())
    events = filterset.qs
    before = _int(request.GET.get("before"))
    if before is not None:
        events = events.filter(id__lt=before)
    page = list(events[: PAGE_SIZE + 1])
    has_more = len(page) > PAGE_SIZE
    page = page[:PAGE_SIZE]
    query = _filter_query(request)
    context = {
        "events": page,
        "filterset": filterset,
        "query": query,
        "before": before,
        "next_before": page[-1].id if has_more else None,
        "newest_id": page[0].id if page else 0,
        "live": before is None,
        "poll_seconds": POLL_SECONDS,
        "selected_types": request.GET.getlist("type"),
        "selected_severities": request.GET.getlist("severity"),
        "selected_cluster": request.GET.get("cluster", ""),
        "selected_server": request.GET.get("server", ""),
        "can_acknowledge": _has(request, OPERATOR),
        "open_alerts": total(unacknowledged_by_cluster()),
        **_filter_choices(),
    }
    return render(request, "alerts/event_list.html", context)


def _has(request: HttpRequest, role: str) -> bool:
    return has_role(request.user, role)


@role_required(VIEWER)
def event_list_new(request: HttpRequest) -> HttpResponse:
    """The live-update fragment (htmx polls it): filtered events newer than `after`, and the poller
    itself with the new cursor."""
    after = _int(request.GET.get("after")) or 0
    filterset = EventFilterSet(_params(request), queryset=_events())
    events = list(filterset.qs.filter(id__gt=after)[:PAGE_SIZE])
    context = {
        "events": events,
        "newest_id": events[0].id if events else after,
        "query": _filter_query(request),
        "poll_seconds": POLL_SECONDS,
        "can_acknowledge": _has(request, OPERATOR),
        "highlight": True,
    }
    return render(request, "alerts/_event_poll.html", context)


@require_POST
@role_required(OPERATOR)
def event_acknowledge(request: HttpRequest) -> HttpResponse:
    one = _int(request.POST.get("one"))
    ids = [one] if one else [i for i in (_int(v) for v in request.POST.getlist("ids")) if i]
    if ids:
        count = acknowledge(request, ids)
        noun = "event" if count == 1 else "events"
        messages.success(request, f"Acknowledged {count} {noun}." if count else "Already acknowledged.")
    else:
        messages.warning(request, "Select the events to acknowledge first.")
    target = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(target, {request.get_host()}, request.is_secure()):
        target = reverse("alerts:event_list")
    return redirect(target)


class _Echo:
    def write(self, value: str) -> str:
        return value


@role_required(VIEWER)
def event_export(request: HttpRequest) -> StreamingHttpResponse:
    """The filtered list as CSV, streamed row by row (no limit, no page in memory)."""
    filterset = EventFilterSet(_params(request), queryset=_events())
    writer = csv.writer(_Echo())

    def rows() -> Iterator[str]:
        yield writer.writerow(
            [
                "id",
                "created_at",
                "type",
                "severity",
                "cluster",
                "server",
                "message",
                "acknowledged_at",
                "acknowledged_by",
            ]
        )
        for event in filterset.qs.iterator(chunk_size=2000):
            yield writer.writerow(
                safe_row(
                    [
                        event.id,
                        event.created_at.isoformat(),
                        event.type,
                        event.severity,
                        event.cluster.name if event.cluster else "",
                        event.server.name if event.server else "",
                        event.message,
                        event.acknowledged_at.isoformat() if event.acknowledged_at else "",
                        event.acknowledged_by.username if event.acknowledged_by else "",
                    ]
                )
            )

    stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
    response = StreamingHttpResponse(rows(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="dms-events-{stamp}.csv"'
    return response


@role_required(VIEWER)
def event_detail(request: HttpRequest, pk: int) -> HttpResponse:
    event = get_object_or_404(_events().select_related("recovers"), pk=pk)
    deliveries = event.deliveries.select_related("rule").prefetch_related("attempt_log")
    context = {
        "event": event,
        "time": stamp(event.created_at),
        "facts": describe(event.details),
        "panels": panels.render(request, event),
        "deliveries": deliveries,
        "recovered_by": event.recovered_by.order_by("id").first(),
        "can_acknowledge": _has(request, OPERATOR),
    }
    return render(request, "alerts/event_detail.html", context)


# -- notification rules


@role_required(VIEWER)
def rule_list(request: HttpRequest) -> HttpResponse:
    rules = NotificationRule.objects.prefetch_related("clusters")
    recent = Delivery.objects.select_related("rule", "event").order_by("-id")[:20]
    context = {
        "rules": rules,
        "recent_deliveries": recent,
        "engine_id": snmp_engine_id(),
        "is_admin": _has(request, ADMIN),
        "can_test": _has(request, OPERATOR),
    }
    return render(request, "alerts/rule_list.html", context)


def _rule_form(request: HttpRequest, rule: NotificationRule | None, channel: str) -> HttpResponse:
    form = NotificationRuleForm(request.POST or None, instance=rule, channel=channel)
    if request.method == "POST" and form.is_valid():
        with transaction.atomic():
            before = stored(rule) if rule else None
            saved = form.save()
            record_change(request, saved, before)
        verb = "saved" if rule else "created"
        messages.success(request, f"Rule “{saved.name}” {verb}.")
        return redirect("alerts:rule_list")
    context = {"form": form, "rule": rule, "channel": Channel(channel), "engine_id": snmp_engine_id()}
    return render(request, "alerts/rule_form.html", context, status=400 if form.errors else 200)


@role_required(ADMIN)
def rule_create(request: HttpRequest, channel: str) -> HttpResponse:
    if channel not in Channel.values:
        return redirect("alerts:rule_list")
    return _rule_form(request, None, channel)


@role_required(ADMIN)
def rule_edit(request: HttpRequest, pk: int) -> HttpResponse:
    rule = get_object_or_404(NotificationRule, pk=pk)
    return _rule_form(request, rule, rule.channel)


@role_required(ADMIN)
def rule_delete(request: HttpRequest, pk: int) -> HttpResponse:
    rule = get_object_or_404(NotificationRule, pk=pk)
    if request.method == "POST":
        with transaction.atomic():
            record(request, Action.DELETED, rule)
            rule.delete()
        messages.success(request, f"Rule “{rule.name}” deleted.")
        return redirect("alerts:rule_list")
    return render(request, "alerts/rule_confirm_delete.html", {"rule": rule})


@require_POST
@role_required(OPERATOR)
def rule_test(request: HttpRequest, pk: int) -> HttpResponse:
    rule = get_object_or_404(NotificationRule, pk=pk)
    try:
        outcome = send_test(rule)
    except TransportError as exc:
        record(request, Action.TESTED, rule, details={"ok": False, "error": exc.message})
        messages.error(request, f"Test of “{rule.name}” failed: {exc.message}")
    else:
        record(request, Action.TESTED, rule, details={"ok": True, "outcome": outcome})
        messages.success(request, f"Test notification of “{rule.name}” {outcome} ({rule.destination}).")
    return redirect("alerts:rule_list")
