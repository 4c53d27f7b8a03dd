"""Pagination of every API list: a page is at most MAX_PAGE rows, and a page size or offset that is
not a number in range is refused with 400 naming the parameter (DRF quietly used its default, and
took any size), so a client learns of its mistake and no request makes the server build a huge page.
A cursor is opaque: one this list did not give out answers 404, as DRF's does."""

from rest_framework import serializers
from rest_framework.exceptions import NotFound
from rest_framework.pagination import CursorPagination, LimitOffsetPagination

from .filters import whole_number

MAX_PAGE = 500
BIGINT_MAX = 2**63 - 1  # an offset past this is out of range for the database


def _parameter(request, name: str, default: int | None, minimum: int, maximum: int) -> int | None:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    value = whole_number(raw)
    if value is None:
        raise serializers.ValidationError({name: [f"“{raw[:40]}” is not a whole number."]})
    if not minimum <= value <= maximum:
        raise serializers.ValidationError({name: [f"Must be from {minimum} to {maximum}."]})
    return value


def _bounded(parameters: list[dict], bounds: dict[str, tuple[int, int]]) -> list[dict]:
    for parameter in parameters:
        if parameter["name"] in bounds:
            minimum, maximum = bounds[parameter["name"]]
            parameter["schema"] = {**parameter["schema"], "minimum": minimum, "maximum": maximum}
    return parameters


class BoundedLimitOffsetPagination(LimitOffsetPagination):
    max_limit = MAX_PAGE

    def get_limit(self, request):
        return _parameter(request, self.limit_query_param, self.default_limit, 1, self.max_limit)

    def get_offset(self, request):
        return _parameter(request, self.offset_query_param, 0, 0, BIGINT_MAX)

    def get_schema_operation_parameters(self, view):
        bounds = {self.limit_query_param: (1, self.max_limit), self.offset_query_param: (0, BIGINT_MAX)}
        return _bounded(super().get_schema_operation_parameters(view), bounds)


class BoundedCursorPagination(CursorPagination):
    """Keyset pages over the primary key: no COUNT, the same cost on page 1 and page 10,000."""

    ordering = "-id"
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = MAX_PAGE

    def decode_cursor(self, request):
        """DRF checks the offset and direction but not the position, which the query then compares
        with ids: a cursor crafted with a position that is not a number was a 500."""
        cursor = super().decode_cursor(request)
        if cursor is not None and cursor.position is not None and whole_number(cursor.position) is None:
            raise NotFound(self.invalid_cursor_message)
        return cursor

    def get_page_size(self, request):
        return _parameter(request, self.page_size_query_param, self.page_size, 1, self.max_page_size)

    def get_schema_operation_parameters(self, view):
        bounds = {self.page_size_query_param: (1, self.max_page_size)}
        return _bounded(super().get_schema_operation_parameters(view), bounds)
