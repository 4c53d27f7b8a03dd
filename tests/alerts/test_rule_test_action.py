"""POST /api/v1/notification-rules/{id}/test/ against a real snmptrapd: an SNMPv3 inform is
acknowledged ("delivered"); an inform to nobody answers 502 with the error, within seconds."""

import time

import pytest

from alerts.transports import snmp_oids as oids
from tests.alerts.factories import V3RuleFactory
from tests.support.snmptrapd import free_udp_port, snmptrapd_factory  # noqa: F401  (fixture)

pytestmark = pytest.mark.integration
ENGINE_ID = "80007ed905746573742d6163"


def test_a_test_inform_is_acknowledged(admin_api, settings, snmptrapd_factory):  # noqa: F811
    settings.SNMP_ENGINE_ID = ENGINE_ID
    trapd = snmptrapd_factory(sender_engine_id=ENGINE_ID)
    rule = V3RuleFactory(port=trapd.port, snmp_mode="inform")

    response = admin_api.post(f"/api/v1/notification-rules/{rule.pk}/test/")

    assert response.status_code == 200, response.json()
    assert response.json() == {"ok": True, "outcome": "delivered", "error": None}
    trap = trapd.wait_for(lambda t: t.pdu == "INFORM")
    assert trap.varbinds[oids.dotted(oids.EVENT_ID + (0,))] == 0  # a test carries no event
    assert "Test notification" in str(trap.varbinds[oids.dotted(oids.EVENT_MESSAGE + (0,))])


def test_a_test_inform_to_nobody_answers_502_quickly(admin_api, settings):
    settings.SNMP_ENGINE_ID = ENGINE_ID
    rule = V3RuleFactory(port=free_udp_port(), snmp_mode="inform")

    started = time.monotonic()
    response = admin_api.post(f"/api/v1/notification-rules/{rule.pk}/test/")

    assert response.status_code == 502
    assert response.json()["ok"] is False and "SNMP inform v3" in response.json()["error"]
    assert "dms-auth-key-1" not in response.content.decode()
    assert time.monotonic() - started < 8
