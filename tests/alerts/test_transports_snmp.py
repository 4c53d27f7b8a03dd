"""SnmpTransport against a real snmptrapd (DESIGN §9): traps and informs, v2c and v3 authPriv."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from alerts.choices import SEVERITY_OF, EventType
from alerts.transports import snmp_oids as oids
from alerts.transports.base import Notification, TransportError
from alerts.transports.snmp import (
    SnmpTarget,
    SnmpTransport,
    generate_engine_id,
    notification_varbinds,
    parse_engine_id,
)
from tests.support.snmptrapd import Snmptrapd, V3User, snmptrapd_factory  # noqa: F401  (fixture)

pytestmark = pytest.mark.integration

# A fixed engine ID for the sender, in the product's format (enterprise 32473, format 5). Fixed so
# that pysnmp's engine-boots file (in the temp dir, per engine ID) is reused across runs.
ENGINE_ID = "80007ed905746573742d736e6d70"
USER = V3User()


def dotted_instance(oid: oids.Oid) -> str:
    return oids.dotted(oid + (0,))


def a_notification(event_id: int = 41, event_type: str = "server_failed", **changes: object) -> Notification:
    notification = Notification(
        event_id=event_id,
        event_type=event_type,
        severity=SEVERITY_OF[EventType(event_type)].value,
        cluster="dms-cluster-1",
        server="dmm-primary",
        message="Server dmm-primary missed 3 consecutive heartbeats.",
        created_at=datetime(2026, 11, 25, 20, 0, tzinfo=UTC),
        url="http://dms.example/alerts/41/",
        rule_id=7,
    )
    return replace(notification, **changes)  # type: ignore[arg-type]


def v2c(port: int, **changes: object) -> SnmpTarget:
    return replace(SnmpTarget(host="127.0.0.1", port=port, community="public"), **changes)  # type: ignore[arg-type]


def v3(port: int, **changes: object) -> SnmpTarget:
    target = SnmpTarget(
        host="127.0.0.1",
        port=port,
        version="v3",
        user=USER.name,
        auth_protocol="sha",
        auth_key=USER.auth_key,
        priv_protocol="aes128",
        priv_key=USER.priv_key,
    )
    return replace(target, **changes)  # type: ignore[arg-type]


def event_id_is(event_id: int):
    return lambda trap: trap.varbinds.get(dotted_instance(oids.EVENT_ID)) == event_id


@pytest.fixture
def trapd(snmptrapd_factory) -> Snmptrapd:  # noqa: F811
    return snmptrapd_factory(sender_engine_id=ENGINE_ID, user=USER)


def test_it_sends_a_v2c_trap_with_the_notification_oid_and_varbinds_exactly_once(trapd):
    outcome = SnmpTransport(v2c(trapd.port), ENGINE_ID).notify(a_notification(41))
    assert outcome == "sent"

    trap = trapd.wait_for(event_id_is(41))
    assert (trap.pdu, trap.version, trap.security) == ("TRAP2", "v2c", "community public")
    assert trap.notification_oid == "1.3.6.1.4.1.32473.1.0.1"  # dmsServerFailed
    assert trap.varbinds == {
        "1.3.6.1.2.1.1.3.0": trap.varbinds["1.3.6.1.2.1.1.3.0"],  # sysUpTime: any
        "1.3.6.1.6.3.1.1.4.1.0": "1.3.6.1.4.1.32473.1.0.1",
        "1.3.6.1.4.1.32473.1.1.1.0": 41,
        "1.3.6.1.4.1.32473.1.1.2.0": "server_failed",
        "1.3.6.1.4.1.32473.1.1.3.0": 3,  # critical
        "1.3.6.1.4.1.32473.1.1.4.0": "dms-cluster-1",
        "1.3.6.1.4.1.32473.1.1.5.0": "dmm-primary",
        "1.3.6.1.4.1.32473.1.1.6.0": "Server dmm-primary missed 3 consecutive heartbeats.",
    }
    # Exactly once: a later trap has arrived, and still only one copy of the first.
    SnmpTransport(v2c(trapd.port), ENGINE_ID).notify(a_notification(42, "server_recovered"))
    trapd.wait_for(event_id_is(42))
    assert len(trapd.matching(event_id_is(41))) == 1


def test_it_sends_a_v3_authpriv_trap_from_the_configured_engine_id(trapd):
    outcome = SnmpTransport(v3(trapd.port), ENGINE_ID).notify(a_notification(51, "failover_completed"))
    assert outcome == "sent"

    trap = trapd.wait_for(event_id_is(51))
    assert (trap.pdu, trap.version, trap.security) == ("TRAP2", "v3", "user dmsuser")
    assert trap.notification_oid == oids.dotted(oids.NOTIFICATION_OIDS["failover_completed"])


def test_a_v3_trap_from_an_engine_id_the_receiver_does_not_know_is_dropped(trapd):
    # Why the product keeps one stable engine ID: the receiver cannot localize the keys otherwise.
    stranger = "80007ed9056f746865722d656e67696e65"  # another engine, unknown to snmptrapd
    assert SnmpTransport(v3(trapd.port), stranger).notify(a_notification(52)) == "sent"
    SnmpTransport(v3(trapd.port), ENGINE_ID).notify(a_notification(53))
    trapd.wait_for(event_id_is(53))
    assert trapd.matching(event_id_is(52)) == []


def test_successive_v3_traps_from_fresh_engines_are_all_accepted(trapd):
    # Each send is a new engine (engine time restarts at 0); pysnmp bumps engine boots on disk so
    # the receiver's time-window check still passes.
    for event_id in (61, 62, 63):
        SnmpTransport(v3(trapd.port), ENGINE_ID).notify(a_notification(event_id))
    trapd.wait_for(event_id_is(63))
    assert [len(trapd.matching(event_id_is(i))) for i in (61, 62, 63)] == [1, 1, 1]


def test_a_trap_to_a_receiver_that_is_down_still_counts_as_sent(trapd):
    trapd.stop()
    assert SnmpTransport(v2c(trapd.port), ENGINE_ID).notify(a_notification(71)) == "sent"


def test_v2c_traps_reuse_one_engine_per_community_without_crossing_or_repeating(trapd):
    # The delivery path keeps an engine per target and community (alerts/transports/snmp.py):
    # alternating communities on one receiver must neither send twice nor under the other's name.
    for event_id in range(121, 127):
        community = "public" if event_id % 2 else "not-the-community"
        assert SnmpTransport(v2c(trapd.port, community=community), ENGINE_ID).notify(a_notification(event_id)) == "sent"
    trapd.wait_for(event_id_is(125))
    received = [trap.value(dotted_instance(oids.EVENT_ID)) for trap in trapd.traps()]
    assert sorted(received) == [121, 123, 125]  # once each; snmptrapd drops the unknown community


def test_a_kept_trap_engine_still_reaches_a_receiver_that_was_down_and_is_back(trapd):
    transport = SnmpTransport(v2c(trapd.port), ENGINE_ID)
    assert transport.notify(a_notification(131)) == "sent"
    trapd.wait_for(event_id_is(131))
    assert len(trapd.matching(event_id_is(131))) == 1
    trapd.stop()
    assert transport.notify(a_notification(132)) == "sent"
    trapd.start()
    assert transport.notify(a_notification(133)) == "sent"
    trapd.wait_for(event_id_is(133))
    assert [len(trapd.matching(event_id_is(i))) for i in (132, 133)] == [0, 1]  # the log restarts with it


def test_a_v2c_inform_to_a_live_receiver_is_delivered(trapd):
    assert SnmpTransport(v2c(trapd.port, mode="inform"), ENGINE_ID).notify(a_notification(81)) == "delivered"
    trap = trapd.wait_for(event_id_is(81))
    assert (trap.pdu, trap.version) == ("INFORM", "v2c")


def test_a_v3_authpriv_inform_is_delivered_after_discovering_the_receivers_engine_id(trapd):
    assert SnmpTransport(v3(trapd.port, mode="inform"), ENGINE_ID).notify(a_notification(82)) == "delivered"
    trap = trapd.wait_for(event_id_is(82))
    assert (trap.pdu, trap.version, trap.security) == ("INFORM", "v3", "user dmsuser")


def test_an_inform_to_a_receiver_that_is_down_raises_a_retryable_error(trapd):
    trapd.stop()
    transport = SnmpTransport(v2c(trapd.port, mode="inform", timeout=0.3, retries=0), ENGINE_ID)
    with pytest.raises(TransportError) as caught:
        transport.notify(a_notification(91))
    assert caught.value.permanent is False
    assert "timeout" in caught.value.message

    trapd.start()  # the receiver is back: the retry goes through
    assert transport.notify(a_notification(91)) == "delivered"
    assert len(trapd.matching(event_id_is(91))) == 1


def test_an_inform_with_a_wrong_key_raises_a_permanent_error_without_showing_the_key(trapd, caplog):
    target = v3(trapd.port, mode="inform", auth_key="not-the-right-key", timeout=0.5, retries=0)
    with caplog.at_level(logging.DEBUG), pytest.raises(TransportError) as caught:
        SnmpTransport(target, ENGINE_ID).notify(a_notification(92))
    assert caught.value.permanent is True
    shown = caught.value.message + caplog.text + repr(target) + repr(SnmpTransport(target, ENGINE_ID))
    assert "not-the-right-key" not in shown and USER.priv_key not in shown


def test_anotify_sends_many_notifications_from_one_event_loop(trapd):
    async def send_all() -> list[str]:
        sends = [
            SnmpTransport(v2c(trapd.port, mode="inform"), ENGINE_ID).anotify(a_notification(100 + i)) for i in range(5)
        ]
        return await asyncio.gather(*sends)

    assert asyncio.run(send_all()) == ["delivered"] * 5
    assert sorted(trap.value(dotted_instance(oids.EVENT_ID)) for trap in trapd.traps()) == [100, 101, 102, 103, 104]


def test_text_beyond_ascii_arrives_intact_and_long_messages_are_cut_at_255_octets(trapd):
    message = "Serveur « dmm-é » injoignable. " + "ü" * 200
    SnmpTransport(v2c(trapd.port), ENGINE_ID).notify(a_notification(111, cluster="grappe-été", message=message))
    trap = trapd.wait_for(event_id_is(111))
    assert trap.value(dotted_instance(oids.EVENT_CLUSTER)) == "grappe-été"
    received = trap.value(dotted_instance(oids.EVENT_MESSAGE))
    assert isinstance(received, str) and message.startswith(received)
    assert 253 <= len(received.encode()) <= 255


def test_snmptrapd_loads_the_mib_and_decodes_our_notifications(snmptrapd_factory):  # noqa: F811
    trapd = snmptrapd_factory(sender_engine_id=ENGINE_ID, user=USER, load_mib=True)
    SnmpTransport(v2c(trapd.port), ENGINE_ID).notify(a_notification(121, message="Tést"))
    trap = trapd.wait_for(event_id_is(121))
    assert "Cannot find module" not in trapd.log_text()
    assert "INTEGER: critical(3)" in trap.raw  # the enumeration came from the MIB
    assert "STRING: Tést" in trap.raw  # DmsUtf8String's DISPLAY-HINT "255t": text, not hex
    assert trap.value(dotted_instance(oids.EVENT_MESSAGE)) == "Tést"


# -- without a receiver


def test_every_event_type_has_its_own_notification():
    assert set(oids.NOTIFICATION_OIDS) == {event_type.value for event_type in EventType}
    assert len(set(oids.NOTIFICATION_OIDS.values())) == len(EventType) == 19


def test_the_varbinds_follow_the_mib_order():
    names = [oids.dotted(oid) for oid, _ in notification_varbinds(a_notification())]
    assert names == [
        "1.3.6.1.2.1.1.3.0",
        "1.3.6.1.6.3.1.1.4.1.0",
        *(dotted_instance(oid) for oid in oids.VARBIND_OBJECTS.values()),
    ]


@pytest.mark.parametrize(
    "target, problem",
    [
        (SnmpTarget(host="127.0.0.1"), "needs a community"),
        (SnmpTarget(host="127.0.0.1", version="v3"), "needs a user name"),
        (SnmpTarget(host="127.0.0.1", version="v3", user="u", auth_protocol="sha", auth_key="short"), "shorter"),
        (SnmpTarget(host="127.0.0.1", version="v3", user="u", priv_protocol="aes128", priv_key="12345678"), "privacy"),
        (SnmpTarget(host="127.0.0.1", version="v3", user="u", auth_protocol="sha1"), "unknown auth protocol"),
        (SnmpTarget(host="127.0.0.1", community="c", mode="bounce"), "unknown mode"),  # type: ignore[arg-type]
    ],
)
def test_it_refuses_settings_that_cannot_work_as_permanent_errors(target, problem):
    with pytest.raises(TransportError) as caught:
        SnmpTransport(target, ENGINE_ID).notify(a_notification())
    assert caught.value.permanent is True
    assert problem in caught.value.message


def test_an_unknown_event_type_is_a_permanent_error():
    with pytest.raises(TransportError) as caught:
        notification_varbinds(replace(a_notification(), event_type="coffee_spilled"))
    assert caught.value.permanent is True


def test_engine_ids_are_read_from_hex_and_checked():
    assert parse_engine_id("0x80007ed905746573742d736e6d70") == bytes.fromhex(ENGINE_ID)
    assert parse_engine_id("80:00:7e:d9:05:01") == bytes.fromhex("80007ed90501")
    assert len(parse_engine_id(generate_engine_id())) == 13
    for bad in ("zz", "8000"):
        with pytest.raises(TransportError):
            parse_engine_id(bad)


def test_the_community_never_shows_in_reprs_or_descriptions():
    target = v2c(162, community="s3cret-community")
    assert "s3cret-community" not in repr(target) + target.describe() + repr(SnmpTransport(target, ENGINE_ID))


@pytest.mark.parametrize(
    "auth, priv",
    [("md5", "des"), ("sha224", "aes128"), ("sha256", "aes192"), ("sha512", "aes256")],
)
def test_each_auth_and_privacy_protocol_interoperates_with_net_snmp(snmptrapd_factory, auth, priv):  # noqa: F811
    # snmptrapd.conf spellings; AES192/AES256 there are the Blumenthal variants the transport uses.
    net_snmp = {"md5": "MD5", "sha224": "SHA-224", "sha256": "SHA-256", "sha512": "SHA-512"}
    net_snmp |= {"des": "DES", "aes128": "AES", "aes192": "AES192", "aes256": "AES256"}
    user = replace(USER, auth_protocol=net_snmp[auth], priv_protocol=net_snmp[priv])
    trapd = snmptrapd_factory(sender_engine_id=ENGINE_ID, user=user)
    target = v3(trapd.port, auth_protocol=auth, priv_protocol=priv)
    assert SnmpTransport(replace(target, mode="inform"), ENGINE_ID).notify(a_notification(131)) == "delivered"
    assert SnmpTransport(target, ENGINE_ID).notify(a_notification(132)) == "sent"
    assert trapd.wait_for(event_id_is(132)).pdu == "TRAP2"
