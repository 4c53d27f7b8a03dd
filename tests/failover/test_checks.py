"""A critical service failing N checks in a row fails over, though the primary still answers
heartbeats; a failing component is an event, never a failover (DESIGN §4.3)."""

import pytest

pytestmark = pytest.mark.integration


def _flag_check(tmp_path, name: str, critical: bool) -> tuple[dict, object]:
    flag = tmp_path / f"{name}.down"
    check = {"name": name, "command": f"test ! -e {flag}", "critical": critical, "interval": 0.3, "timeout": 2}
    return check, flag


def test_a_failing_critical_service_fails_over(make_cluster, tmp_path):
    check, flag = _flag_check(tmp_path, "media-engine", critical=True)
    under_test = make_cluster("critical", checks_primary=[check], notify=True)

    flag.touch()

    cluster = under_test.wait_state(lambda c: c.epoch == 2 and c.state != "failing_over", 30, "the failover")
    event = under_test.wait_event("critical_service_failed", 5)
    assert event.details["service"] == "media-engine"
    completed = under_test.wait_event("failover_completed", 5)
    assert completed.details["cause"] == "critical_service"
    assert cluster.primary.name == under_test.secondary_agent.name
    assert under_test.primary_agent.running  # it kept answering heartbeats all along
    under_test.secondary_agent.wait_primary_status(200, timeout=5)
    under_test.assert_never_two_primaries()
    under_test.assert_notified(exactly_once=True)


def test_a_failing_component_is_an_event_and_not_a_failover(make_cluster, tmp_path):
    check, flag = _flag_check(tmp_path, "raid-disk-2", critical=False)
    under_test = make_cluster("component", checks_primary=[check], notify=True)

    flag.touch()
    failed = under_test.wait_event("component_failed", 15)
    flag.unlink()
    recovered = under_test.wait_event("component_recovered", 15)

    assert failed.details["component"] == "raid-disk-2"
    assert recovered.recovers_id == failed.pk
    cluster = under_test.refresh()
    assert cluster.epoch == 1 and "failover_completed" not in under_test.events()
    under_test.primary_agent.wait_primary_status(200, timeout=5)
    under_test.assert_never_two_primaries()
    under_test.assert_notified(exactly_once=True)
