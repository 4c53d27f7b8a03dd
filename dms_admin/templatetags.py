"""Template helpers shared by every page (`{% load dms %}`, registered in settings.TEMPLATES):
roles, colour badges, durations. Project-level, so it may read both apps' colours."""

from __future__ import annotations

from datetime import datetime

from django import template
from django.utils import timezone
from django.utils.html import format_html

from alerts.choices import COLOURS as ALERT_COLOURS
from cluster.choices import COLOURS as CLUSTER_COLOURS
from dms_admin.permissions import RANK, has_role, role_rank

register = template.Library()


@register.filter
def role_of(user) -> str:
    rank = role_rank(user)
    names = {value: name for name, value in RANK.items()}
    return names.get(rank, "no role")


@register.filter(name="has_role")
def has_role_filter(user, role: str) -> bool:
    return has_role(user, role)


@register.simple_tag
def badge(value: str, label: str | None = None):
    """A status in colour *and* word: `<span class="badge badge-red">Critical</span>`."""
    colour = ALERT_COLOURS.get(value) or CLUSTER_COLOURS.get(value) or "grey"
    text = label if label is not None else str(value).replace("_", " ").capitalize()
    return format_html(
        '<span class="badge badge-{}"><span class="dot" aria-hidden="true"></span>{}</span>', colour, text
    )


@register.filter
def ago(value: datetime | None) -> str:
    """`12 s ago`, `4 min ago`, `3 h ago`, `2 d ago`; — for never."""
    if value is None:
        return "—"
    seconds = max(0, (timezone.now() - value).total_seconds())
    if seconds < 60:
        return f"{seconds:.0f} s ago"
    if seconds < 3600:
        return f"{seconds // 60:.0f} min ago"
    if seconds < 86400:
        return f"{seconds // 3600:.0f} h ago"
    return f"{seconds // 86400:.0f} d ago"
