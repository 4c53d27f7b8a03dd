from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, viewsets
from rest_framework.decorators import action
from rest_framework.pagination import CursorPagination
from rest_framework.response import Response

from ..filtersets import EventFilterSet
from ..models import Event
from .serializers import EventSerializer


class EventCursorPagination(CursorPagination):
    """Keyset pages over the primary key: no COUNT, the same cost on page 1 and page 10,000."""

    ordering = "-id"
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500


class EventViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    queryset = Event.objects.select_related("cluster", "server", "acknowledged_by")
    serializer_class = EventSerializer
    filterset_class = EventFilterSet
    pagination_class = EventCursorPagination
    operator_actions = {"acknowledge"}

    @extend_schema(request=None, responses=EventSerializer)
    @action(detail=True, methods=["post"])
    def acknowledge(self, request, pk=None):
        event = self.get_object()
        if event.acknowledged_at is None:
            Event.objects.filter(pk=event.pk, acknowledged_at__isnull=True).update(
                acknowledged_at=timezone.now(), acknowledged_by=request.user
            )
            event.refresh_from_db()
        return Response(self.get_serializer(event).data)
