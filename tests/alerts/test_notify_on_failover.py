"""Issue 5's acceptance: a `server_failed` event on a real cluster reaches a real snmptrapd (a v2c trap
and an SNMPv3 authPriv trap) and a real SMTP server exactly once each, and the `server_recovered`
that follows the old primary's return goes the same way (DESIGN §4.5, §7, §9).

Real agents and the session's real control plane (make_cluster); the control plane's `default`
workers send the email to the session's SMTP server (tests/support/controlplane.py, smtp_sink). The
v3 user is configured in snmptrapd with the product's engine ID, read from the database as the
workers read it. Every wait polls with a deadline.
"""

from __future__ import annotations

import pytest

from alerts.delivery import snmp_engine_id
from alerts.models import Delivery, Event
from alerts.transports import snmp_oids as oids
from tests.alerts.factories import EmailRuleFactory, SnmpRuleFactory, V3RuleFactory
from tests.support.agents import wait_until
from tests.support.controlplane import smtp_sink  # noqa: F401 (fixture)
from tests.support.snmptrapd import Snmptrapd, V3User, available

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not available(), reason="snmptrapd is not installed"),
]

EVENT_ID_OID = oids.dotted(oids.EVENT_ID + (0,))
EVENT_TYPE_OID = oids.dotted(oids.EVENT_TYPE + (0,))
EVENT_SERVER_OID = oids.dotted(oids.EVENT_SERVER + (0,))
RECIPIENT = "noc-failover@example.com"


@pytest.fixture
def trapd(tmp_path, make_cluster):
    """snmptrapd accepting the v2c community and the v3 authPriv user keyed to the product's
    engine ID (generated and stored now, in the test database the workers use)."""
    receiver = Snmptrapd(tmp_path / "snmptrapd", sender_engine_id=snmp_engine_id(), user=V3User()).start()
    yield receiver
    receiver.stop()


def wait_delivered(event: Event, rules: int, timeout: float = 30) -> list[Delivery]:
    def finished():
        rows = list(Delivery.objects.filter(event=event).select_related("rule").order_by("id"))
        done = len(rows) == rules and all(row.status not in ("pending", "sending") for row in rows)
        return rows if done else None

    return wait_until(finished, timeout, interval=0.1, message=f"the deliveries of event {event.pk} to finish")


def assert_notified_once(event: Event, trapd: Snmptrapd, smtp) -> None:
    """Both traps and the email arrived, each exactly once, each carrying the event."""
    notification = oids.dotted(oids.NOTIFICATION_OIDS[event.type])

    def about(trap):
        return trap.varbinds.get(EVENT_ID_OID) == event.pk

    v2c = trapd.wait_for(lambda t: about(t) and t.version == "v2c", timeout=15)
    v3 = trapd.wait_for(lambda t: about(t) and t.version == "v3", timeout=15)
    mail = smtp.wait_for(lambda m: m.header("X-DMS-Event-Id") == str(event.pk) and RECIPIENT in m.rcpt_tos, 15)

    rows = wait_delivered(event, rules=3)
    assert {row.rule.name: (row.status, row.attempts) for row in rows} == {
        "v2c": ("sent", 1),
        "v3": ("sent", 1),
        "mail": ("delivered", 1),
    }
    assert (v2c.pdu, v2c.security) == ("TRAP2", "community public")
    assert (v3.pdu, v3.version, v3.security) == ("TRAP2", "v3", "user dmsuser")
    for trap in (v2c, v3):
        assert trap.notification_oid == notification
        assert trap.value(EVENT_TYPE_OID) == event.type
        assert trap.value(EVENT_SERVER_OID) == event.server.name
    mail_rule = next(row.rule_id for row in rows if row.rule.name == "mail")
    assert mail.message_id == f"<dms-event-{event.pk}.rule-{mail_rule}@dms-failover>"
    assert mail.header("X-DMS-Event-Type") == event.type
    # Every delivery has finished after one attempt: nothing more can arrive.
    assert len(trapd.matching(lambda t: about(t) and t.version == "v2c")) == 1
    assert len(trapd.matching(lambda t: about(t) and t.version == "v3")) == 1
    assert len(smtp.matching(lambda m: m.header("X-DMS-Event-Id") == str(event.pk))) == 1


def test_a_server_failed_and_its_recovery_reach_both_traps_and_email_exactly_once(
    make_cluster,
    trapd,
    smtp_sink,  # noqa: F811 (the fixture imported above)
):
    under_test = make_cluster("notify")
    SnmpRuleFactory(name="v2c", port=trapd.port, community=trapd.community)
    V3RuleFactory(name="v3", port=trapd.port)
    EmailRuleFactory(name="mail", recipients=[RECIPIENT])
    old = under_test.primary_agent

    old.kill()

    failed = under_test.wait_event("server_failed", 20)
    assert failed.server.name == old.name and failed.severity == "critical"
    assert_notified_once(failed, trapd, smtp_sink)
    under_test.wait_state(lambda c: c.epoch == 2 and c.state != "failing_over", 30, "the failover")

    old.start()  # comes back with its stale state, and rejoins as secondary
    old.wait_ready()

    recovered = under_test.wait_event("server_recovered", 30)
    assert recovered.server.name == old.name and recovered.recovers_id == failed.pk
    assert_notified_once(recovered, trapd, smtp_sink)
    assert Event.objects.filter(cluster=under_test.cluster, type__in=["server_failed", "server_recovered"]).count() == 2
    under_test.assert_never_two_primaries()
