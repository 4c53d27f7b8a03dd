"""The OpenAPI schema states the API's whole contract, because monitoring tools generate their
clients from it: each operation lists every error it can answer, with the body the API sends
(dms_admin/api.py, pagination.py, filters.py), and ids and filters carry the bounds the server
checks. Derived here from each view, its permissions, parameters and model, rather than declared
per view, so that a new endpoint is documented the same way."""

import inspect

from django import forms
from django.core.validators import ProhibitNullCharactersValidator
from django.db import models
from drf_spectacular.contrib.django_filters import DjangoFilterExtension
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.plumbing import ResolvedComponent, get_view_model
from rest_framework.permissions import AllowAny
from rest_framework.relations import PrimaryKeyRelatedField

from .api import body_limit
from .pagination import BoundedCursorPagination

INT32_MAX = 2**31 - 1
NO_NUL = "^[^\\u0000]*$"  # Django's text fields refuse NUL characters (PostgreSQL cannot store them)
MESSAGES = {"type": "array", "items": {"type": "string"}}
SCHEMAS = {
    "Error": {
        "type": "object",
        "description": "A refusal: `detail` says why, in words.",
        "properties": {"detail": {"type": "string"}},
        "required": ["detail"],
    },
    "ValidationError": {
        "type": "object",
        "description": "Each refused field or query parameter, with what is wrong with it; "
        "`non_field_errors` for a rule over several fields; only `detail` when the body could not be read.",
        "properties": {"detail": {"type": "string"}, "non_field_errors": MESSAGES},
        "additionalProperties": {
            "oneOf": [
                MESSAGES,
                {"type": "object", "description": "A list's items, by position.", "additionalProperties": MESSAGES},
            ]
        },
        "example": {"limit": ["Must be from 1 to 500."]},
    },
}


def _answers() -> dict[int, tuple[str, str, str]]:
    """Status: (response component, body schema, description)."""
    return {
        400: ("BadRequest", "ValidationError", "A field or query parameter is refused: the body names each."),
        401: (
            "Unauthenticated",
            "Error",
            "No credentials, or a token that is not valid: send `Authorization: Token <key>`.",
        ),
        403: (
            "Forbidden",
            "Error",
            "The user's role does not allow this (reads need viewer; acknowledging, switchovers, "
            "maintenance and the audit log operator; configuration admin), or a signed-in session's "
            "write came without its CSRF token.",
        ),
        404: ("NotFound", "Error", "No object with this id, or a `cursor` this list did not give out."),
        406: ("NotAcceptable", "Error", "The `Accept` header allows no type the API answers in (JSON)."),
        409: ("Conflict", "Error", "Other objects still use this one, named in `detail`: remove those first."),
        413: ("TooLarge", "Error", f"The request body is larger than {body_limit()}."),
        415: ("UnsupportedMediaType", "Error", "The body is not JSON (`Content-Type: application/json`)."),
    }


def id_bounds(model) -> dict:
    """The range of `model`'s integer ids, for the schema of an id wherever one is taken."""
    pk = model._meta.pk
    if isinstance(pk, models.ForeignKey):
        return id_bounds(pk.related_model)
    if not isinstance(pk, (models.AutoField, models.IntegerField)):
        return {}
    maximum = 2**63 - 1 if isinstance(pk, (models.BigAutoField, models.BigIntegerField)) else INT32_MAX
    return _integer(1, maximum)


def _integer(minimum, maximum) -> dict:
    schema = {"type": "integer", "minimum": minimum, "maximum": maximum}
    if max(abs(minimum), abs(maximum)) > INT32_MAX:
        schema["format"] = "int64"
    return schema


def _protected(model) -> bool:
    """Whether another model's foreign key keeps `model`'s rows from being deleted (related_name "+" too)."""
    reverse = (f for f in model._meta.get_fields(include_hidden=True) if f.auto_created and not f.concrete)
    return any(getattr(relation, "on_delete", None) is models.PROTECT for relation in reverse)


def form_field_bounds(field: forms.Field) -> dict:
    """What a filter's form field accepts, as schema keywords."""
    bounds = {}
    minimum, maximum = getattr(field, "min_value", None), getattr(field, "max_value", None)
    if isinstance(field, forms.IntegerField) and minimum is not None and maximum is not None:
        bounds.update(_integer(minimum, maximum))
    elif minimum is not None or maximum is not None:
        bounds.update({k: v for k, v in (("minimum", minimum), ("maximum", maximum)) if v is not None})
    if getattr(field, "max_length", None):
        bounds["maxLength"] = field.max_length
    if _refuses_nul(field):
        bounds["pattern"] = NO_NUL
    return bounds


def _refuses_nul(field) -> bool:
    return any(isinstance(validator, ProhibitNullCharactersValidator) for validator in field.validators)


class BoundedFilterExtension(DjangoFilterExtension):
    """django-filter's query parameters, with the type and bounds its form fields check."""

    priority = 1

    def resolve_filter_field(self, auto_schema, model, filterset_class, field_name, filter_field):
        parameters = super().resolve_filter_field(auto_schema, model, filterset_class, field_name, filter_field)
        for parameter in parameters:
            schema = parameter["schema"]
            target = schema["items"] if schema.get("type") == "array" else schema
            bounds = form_field_bounds(filter_field.field)
            if "type" in bounds:
                target.pop("format", None)
            target.update(bounds)
        return parameters


class ApiSchema(AutoSchema):
    def get_operation(self, path, path_regex, path_prefix, method, registry):
        operation = super().get_operation(path, path_regex, path_prefix, method, registry)
        if operation is None:
            return None
        model = get_view_model(self.view, emit_warnings=False)
        for parameter in operation.get("parameters", []):
            if parameter["in"] == "path" and parameter["schema"].get("type") == "integer" and model is not None:
                parameter["schema"].update(id_bounds(model))
        responses = operation["responses"]
        for status in self._errors(operation, model):
            responses.setdefault(str(status), self._error_response(status))
        operation["responses"] = dict(sorted(responses.items()))
        return operation

    def _errors(self, operation: dict, model) -> list[int]:
        """Every error status this operation can answer, from how DRF and the project refuse."""
        parameters = operation.get("parameters", [])
        query = {p["name"] for p in parameters if p["in"] == "query"}
        body = "requestBody" in operation
        deleting = self.method == "DELETE" and model is not None
        statuses = [406]  # content negotiation comes first, on every DRF view
        # A body or a parameter that is refused; a model whose delete() checks a rule (Cluster).
        if body or query or (deleting and model.delete is not models.Model.delete):
            statuses.append(400)
        if self.view.get_authenticate_header(self.view.request):
            statuses.append(401)  # a wrong token is refused even where no role is needed
        if not all(isinstance(permission, AllowAny) for permission in self.view.get_permissions()):
            statuses.append(403)
        if any(p["in"] == "path" for p in parameters) or BoundedCursorPagination.cursor_query_param in query:
            statuses.append(404)
        if deleting and _protected(model):
            statuses.append(409)  # dms_admin/api.py: a ProtectedError names what still uses the object
        if body:
            statuses += [413, 415]
        return statuses

    def _error_response(self, status: int) -> dict:
        name, body, description = _answers()[status]
        schema = ResolvedComponent(name=body, type=ResolvedComponent.SCHEMA, object=body, schema=SCHEMAS[body])
        self.registry.register_on_missing(schema)
        response = {"description": description, "content": {"application/json": {"schema": schema.ref}}}
        component = ResolvedComponent(name=name, type=ResolvedComponent.RESPONSE, object=name, schema=response)
        self.registry.register_on_missing(component)
        return component.ref

    def _map_serializer_field(self, field, direction, bypass_extensions=False):
        schema = super()._map_serializer_field(field, direction, bypass_extensions)
        related = getattr(field, "queryset", None)
        if isinstance(field, PrimaryKeyRelatedField) and related is not None and schema.get("type") == "integer":
            schema.update(id_bounds(related.model))
        if schema.get("type") == "array" and getattr(field, "allow_empty", True) is False:
            schema.setdefault("minItems", 1)
        return schema

    def _insert_field_validators(self, field, schema):
        super()._insert_field_validators(field, schema)
        if schema.get("type") == "string" and "pattern" not in schema and _refuses_nul(field):
            schema["pattern"] = NO_NUL

    def get_description(self):
        """The action's docstring, else the view's own: not one inherited from a mixin, which says
        how the server works (AuditedViewSetMixin), not what the operation does."""
        action = getattr(self.view, getattr(self.view, "action", self.method.lower()), None)
        own = self.view.__class__.__dict__.get("__doc__")
        return inspect.getdoc(action) or (inspect.cleandoc(own) if own else "")

    def _map_basic_serializer(self, serializer, direction):
        schema = super()._map_basic_serializer(serializer, direction)
        if not type(serializer).__dict__.get("__doc__"):
            schema.pop("description", None)  # FullCleanSerializer's, about the server
        return schema
