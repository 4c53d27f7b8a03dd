from drf_spectacular.utils import extend_schema
from rest_framework import mixins, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from audit.api import AuditedViewSetMixin
from audit.models import Action
from audit.record import record
from dms_admin.pagination import BoundedCursorPagination

from ..acknowledge import acknowledge
from ..delivery import send_test
from ..filtersets import DeliveryFilterSet, EventFilterSet, NotificationRuleFilterSet
from ..models import Delivery, Event, NotificationRule
from ..transports.base import TransportError
from .serializers import DeliverySerializer, EventSerializer, NotificationRuleSerializer, TestResultSerializer


class EventViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    queryset = Event.objects.select_related("cluster", "server", "acknowledged_by")
    serializer_class = EventSerializer
    filterset_class = EventFilterSet
    pagination_class = BoundedCursorPagination
    operator_actions = {"acknowledge"}

    @extend_schema(request=None, responses=EventSerializer)
    @action(detail=True, methods=["post"])
    def acknowledge(self, request, pk=None):
        event = self.get_object()
        if event.acknowledged_at is None:
            acknowledge(request, [event.pk])
            event.refresh_from_db()
        return Response(self.get_serializer(event).data)


class NotificationRuleViewSet(AuditedViewSetMixin, viewsets.ModelViewSet):
    queryset = NotificationRule.objects.prefetch_related("clusters")
    serializer_class = NotificationRuleSerializer
    filterset_class = NotificationRuleFilterSet
    operator_actions = {"test"}

    @extend_schema(request=None, responses={200: TestResultSerializer, 502: TestResultSerializer})
    @action(detail=True, methods=["post"])
    def test(self, request, pk=None):
        """Send a test notification now (short timeout): 200 with the outcome, 502 with the error."""
        rule = self.get_object()
        try:
            outcome = send_test(rule)
        except TransportError as exc:
            record(request, Action.TESTED, rule, details={"ok": False, "error": exc.message})
            return Response({"ok": False, "outcome": None, "error": exc.message}, status=502)
        record(request, Action.TESTED, rule, details={"ok": True, "outcome": outcome})
        return Response({"ok": True, "outcome": outcome, "error": None})


class DeliveryViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """The notification delivery log: one row per event and rule, with its status and last error."""

    queryset = Delivery.objects.select_related("rule", "event")
    serializer_class = DeliverySerializer
    filterset_class = DeliveryFilterSet
    pagination_class = BoundedCursorPagination
