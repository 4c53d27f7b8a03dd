"""API-wide behaviour: model validation errors become 400s naming their field, never 500s, and
every refusal is JSON (the error contract: dms_admin/schema.py documents it per operation)."""

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import DataError, connections
from django.db.models import ProtectedError
from django.http import JsonResponse
from django.views import defaults
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from .json_types import JsonTypesMixin


def as_drf_error(error: DjangoValidationError) -> serializers.ValidationError:
    if hasattr(error, "error_dict"):
        detail = {("non_field_errors" if k == "__all__" else k): v for k, v in error.message_dict.items()}
        return serializers.ValidationError(detail)
    return serializers.ValidationError({"non_field_errors": error.messages})


def exception_handler(exc, context):
    if isinstance(exc, DjangoValidationError):
        exc = as_drf_error(exc)
    if isinstance(exc, DataError):
        # The database refused the statement: an enclosing atomic block (ATOMIC_REQUESTS, a test's
        # savepoint) can only roll back now, and must be told so rather than fail on its release.
        for connection in connections.all(initialized_only=True):
            if connection.in_atomic_block:
                connection.set_rollback(True)
        return Response({"detail": "A value is out of range for its field."}, status=400)
    if isinstance(exc, RequestDataTooBig):
        # Django's answer would be its HTML 400 page.
        return Response({"detail": f"The request body is larger than {body_limit()}."}, status=413)
    if isinstance(exc, ProtectedError):
        # Deleting a deployment that holds clusters, or a server a cluster uses: refused, not a 500.
        names = sorted({str(obj) for obj in exc.protected_objects})[:10]
        return Response({"detail": f"In use by {', '.join(names)}: remove those first."}, status=409)
    return drf_exception_handler(exc, context)


def _under_api(request) -> bool:
    return request.path.startswith("/api/")


def bad_request(request, exception):
    """Django's own refusals under /api/ (a Host header not in ALLOWED_HOSTS) are JSON too."""
    if _under_api(request):
        return JsonResponse({"detail": "Bad request."}, status=400)
    return defaults.bad_request(request, exception)


def not_found(request, exception):
    """A URL under /api/ that names nothing (`/api/v1/clusters/1.5/`) answers as the API's 404s do."""
    if _under_api(request):
        return JsonResponse({"detail": "Not found."}, status=404)
    return defaults.page_not_found(request, exception)


def server_error(request):
    if _under_api(request):
        return JsonResponse({"detail": "Server error."}, status=500)
    return defaults.server_error(request)


def body_limit() -> str:
    return f"{settings.DATA_UPLOAD_MAX_MEMORY_SIZE / 2**20:g} MB"


class FullCleanSerializer(JsonTypesMixin, serializers.ModelSerializer):
    """Runs the model's `full_clean()` on writes, so the API refuses what the admin refuses."""

    def validate(self, attrs):
        attrs = super().validate(attrs)
        model = self.Meta.model
        instance = model(**{k: v for k, v in attrs.items() if not _is_many(model, k)})
        if self.instance is not None:
            instance = self.instance.__class__.objects.get(pk=self.instance.pk)
            for key, value in attrs.items():
                if not _is_many(model, key):
                    setattr(instance, key, value)
        try:
            instance.full_clean(validate_unique=True, validate_constraints=True)
        except DjangoValidationError as error:
            raise as_drf_error(error) from error
        return attrs


def _is_many(model, name: str) -> bool:
    try:
        return model._meta.get_field(name).many_to_many
    except Exception:
        return False
