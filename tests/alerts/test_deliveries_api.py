"""GET /api/v1/deliveries/: the delivery log, filtered by status, rule and event; read-only."""

from tests.alerts.factories import DeliveryFactory, EmailRuleFactory
from tests.factories import EventFactory

URL = "/api/v1/deliveries/"


def test_it_lists_deliveries_newest_first_with_their_rule_and_error(viewer_api):
    older = DeliveryFactory(status="failed", last_error="SMTP server unreachable")
    newer = DeliveryFactory(status="delivered", attempts=2)

    body = viewer_api.get(URL).json()

    assert [row["id"] for row in body["results"]] == [newer.pk, older.pk]
    row = body["results"][1]
    assert row["status"] == "failed" and row["last_error"] == "SMTP server unreachable"
    assert row["rule_name"] == older.rule.name and row["event_type"] == "server_failed"


def test_it_filters_by_status_rule_and_event(viewer_api):
    rule = EmailRuleFactory()
    event = EventFactory()
    mine = DeliveryFactory(rule=rule, event=event, status="pending")
    DeliveryFactory(status="pending")
    DeliveryFactory(rule=rule, status="sent")

    def ids(query):
        return {row["id"] for row in viewer_api.get(URL + query).json()["results"]}

    assert ids(f"?rule={rule.pk}&status=pending") == {mine.pk}
    assert ids(f"?event={event.pk}") == {mine.pk}
    assert len(ids("?status=pending&status=sent")) == 3


def test_it_is_read_only_and_closed(anonymous_api, outsider_api, admin_api):
    delivery = DeliveryFactory()

    assert anonymous_api.get(URL).status_code in (401, 403)
    assert outsider_api.get(URL).status_code == 403
    assert admin_api.post(URL, {}, format="json").status_code == 405
    assert admin_api.delete(f"{URL}{delivery.pk}/").status_code == 405


def test_it_reads_a_constant_number_of_queries(viewer_api, django_assert_max_num_queries):
    for _ in range(3):
        DeliveryFactory()
    viewer_api.get(URL)
    for _ in range(20):
        DeliveryFactory()

    with django_assert_max_num_queries(5):
        assert len(viewer_api.get(URL).json()["results"]) == 23
