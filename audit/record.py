"""Writing audit entries: what an action changed (before → after of the editable fields, a secret
field only as "changed") and who did it, from where (page, admin, API or dmsctl).

Models say which of their fields are secrets and which booleans are actions of their own
(a cluster's `maintenance`: "maintenance_on"/"maintenance_off" rather than "changed") with
`register`, from their app's `ready()`; this module knows no model of the project.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models

from .models import Action, AuditEntry, Source

SECRET_CHANGED = "changed"
CLI_USER_AGENT = "dmsctl/"


@dataclass(frozen=True)
class Options:
    secret_fields: frozenset[str] = frozenset()
    toggles: dict[str, tuple[str, str]] = field(default_factory=dict)  # field -> (action when on, when off)


_registry: dict[type[models.Model], Options] = {}


def register(model: type[models.Model], *, secret_fields=(), toggles: dict[str, tuple[str, str]] | None = None) -> None:
    _registry[model] = Options(frozenset(secret_fields), dict(toggles or {}))


def _options(model: type[models.Model]) -> Options:
    return _registry.get(model, Options())


# Whatever a model registers, a field so named is never written down (a secret added later is safe).
SECRET_NAME_PARTS = ("token", "password", "secret", "_key")


def _is_secret(model: type[models.Model], name: str) -> bool:
    return name in _options(model).secret_fields or any(part in name for part in SECRET_NAME_PARTS)


def snapshot(obj: models.Model) -> dict:
    """The values a person can edit, as stored now. A related object reads "name (#id)", so that
    the log says which without a lookup; many-to-many are read from the database (a prefetch cache
    may be stale after a save), in id order."""
    values = {}
    for f in obj._meta.concrete_fields:
        if not f.editable or f.primary_key:
            continue
        values[f.name] = _label(getattr(obj, f.name)) if f.is_relation else f.value_from_object(obj)
    if obj.pk is not None:
        for f in obj._meta.many_to_many:
            related = f.related_model._default_manager.filter(pk__in=getattr(obj, f.name).values("pk"))
            values[f.name] = [_label(o) for o in related.order_by("pk")]
    return values


def _label(related: models.Model | None) -> str | None:
    return None if related is None else f"{related} (#{related.pk})"


def _json(value):
    return json.loads(json.dumps(value, cls=DjangoJSONEncoder))


def diff(model: type[models.Model], before: dict, after: dict) -> dict:
    """{field: [before, after]} of the fields that differ; a secret's entry is "changed". With no
    `before` (a creation) the empty fields are left out."""
    changes = {}
    for name, new in after.items():
        old = before.get(name)
        if old == new or (not before and new in (None, "", [], {})):
            continue
        changes[name] = SECRET_CHANGED if _is_secret(model, name) else [_json(old), _json(new)]
    return changes


def change_action(model: type[models.Model], changes: dict, *, created: bool) -> str:
    if created:
        return Action.CREATED
    for name, (on, off) in _options(model).toggles.items():
        if name in changes:
            return on if changes[name][1] else off
    return Action.CHANGED


def source_of(request) -> str:
    path = request.path
    if path.startswith("/admin/"):
        return Source.ADMIN
    if path.startswith("/api/"):
        agent = request.META.get("HTTP_USER_AGENT", "")
        return Source.CLI if agent.startswith(CLI_USER_AGENT) else Source.API
    return Source.PAGE


def record(request, action: str, obj: models.Model, *, changes: dict | None = None, details: dict | None = None):
    """One entry for `request.user` acting on `obj` (call it before a deletion: the id is gone after)."""
    user = request.user
    return AuditEntry.objects.create(
        user=user if user.is_authenticated else None,
        username=user.get_username(),
        source=source_of(request),
        action=action,
        object_type=obj._meta.model_name,
        object_id=obj.pk,
        object_name=str(obj)[:200],
        changes=changes or {},
        details=_json(details or {}),
    )


def record_change(request, obj: models.Model, before: dict | None) -> AuditEntry | None:
    """After a save: an entry with what changed since `before` (None for a creation); none when
    nothing did."""
    model = type(obj)
    changes = diff(model, before or {}, snapshot(obj))
    if before is not None and not changes:
        return None
    return record(request, change_action(model, changes, created=before is None), obj, changes=changes)


def stored(obj: models.Model) -> dict:
    """The snapshot of `obj` as the database has it (the instance may hold unsaved edits)."""
    return snapshot(type(obj)._default_manager.get(pk=obj.pk))
