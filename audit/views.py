"""The audit log page: newest first, filtered like the API, keyset pages (`?before=<id>`)."""

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, QueryDict
from django.shortcuts import render

from dms_admin.permissions import OPERATOR, has_role

from .filtersets import AuditEntryFilterSet
from .models import Action, AuditEntry, Source

PAGE_SIZE = 50


def _params(request: HttpRequest) -> QueryDict:
    params = QueryDict(mutable=True)
    for name, values in request.GET.lists():
        kept = [value for value in values if value.strip() and name != "before"]
        if kept:
            params.setlist(name, kept)
    return params


def entry_list(request: HttpRequest) -> HttpResponse:
    """Operators and admins (the same roles as the pages' role_required, without importing alerts)."""
    if not request.user.is_authenticated:
        return redirect_to_login(request.get_full_path())
    if not has_role(request.user, OPERATOR):
        raise PermissionDenied("This page needs the operator role.")
    params = _params(request)
    filterset = AuditEntryFilterSet(params, queryset=AuditEntry.objects.all())
    entries = filterset.qs if filterset.is_valid() else AuditEntry.objects.none()
    try:
        before = int(request.GET.get("before", ""))
    except ValueError:
        before = None
    if before is not None:
        entries = entries.filter(id__lt=before)
    page = list(entries.order_by("-id")[: PAGE_SIZE + 1])
    context = {
        "entries": page[:PAGE_SIZE],
        "next_before": page[PAGE_SIZE - 1].id if len(page) > PAGE_SIZE else None,
        "filterset": filterset,
        "query": params.urlencode(),
        "action_choices": Action.choices,
        "source_choices": Source.choices,
        "object_types": AuditEntry.objects.order_by("object_type").values_list("object_type", flat=True).distinct(),
        "selected_actions": params.getlist("action"),
    }
    return render(request, "audit/entry_list.html", context, status=200 if filterset.is_valid() else 400)
