"""The OIDs of DMS-FAILOVER-MIB (alerts/mibs/DMS-FAILOVER-MIB.txt), the single source for the SNMP
transport. tests/alerts/test_transports_snmp_mib.py checks that the MIB file defines exactly these.

Enterprise arc: 1.3.6.1.4.1.32473 is the Private Enterprise Number IANA reserves for documentation
and examples (RFC 5612). No organisation owns it, so it can never collide with a real vendor's
tree; a deployment with its own PEN renumbers by changing ENTERPRISE here and the `enterprises 32473`
line in the MIB (the test keeps the two in step).
"""

from alerts.choices import EventType

Oid = tuple[int, ...]

ENTERPRISE: Oid = (1, 3, 6, 1, 4, 1, 32473)
# dmsFailoverMIB MODULE-IDENTITY ::= { enterprises 32473 1 }
MIB_ROOT: Oid = ENTERPRISE + (1,)
NOTIFICATIONS: Oid = MIB_ROOT + (0,)  # dmsNotifications: the SMIv2 ".0" arc, so v1 proxies map back
OBJECTS: Oid = MIB_ROOT + (1,)  # dmsObjects
CONFORMANCE: Oid = MIB_ROOT + (2,)  # dmsConformance

# Standard varbinds every SNMPv2 notification starts with (RFC 3416 §4.2.6).
SYS_UP_TIME_0: Oid = (1, 3, 6, 1, 2, 1, 1, 3, 0)
SNMP_TRAP_OID_0: Oid = (1, 3, 6, 1, 6, 3, 1, 1, 4, 1, 0)

# The objects every notification carries, in this order (the MIB's OBJECTS clause). They are
# accessible-for-notify scalars, so in a varbind each takes the instance suffix .0.
EVENT_ID: Oid = OBJECTS + (1,)  # dmsEventId, Unsigned32
EVENT_TYPE: Oid = OBJECTS + (2,)  # dmsEventType, DmsUtf8String: the EventType value, "server_failed"
EVENT_SEVERITY: Oid = OBJECTS + (3,)  # dmsEventSeverity, INTEGER { info(1), warning(2), critical(3) }
EVENT_CLUSTER: Oid = OBJECTS + (4,)  # dmsEventCluster, DmsUtf8String
EVENT_SERVER: Oid = OBJECTS + (5,)  # dmsEventServer, DmsUtf8String (empty for cluster-wide events)
EVENT_MESSAGE: Oid = OBJECTS + (6,)  # dmsEventMessage, DmsUtf8String (at most 255 octets)

VARBIND_OBJECTS: dict[str, Oid] = {
    "dmsEventId": EVENT_ID,
    "dmsEventType": EVENT_TYPE,
    "dmsEventSeverity": EVENT_SEVERITY,
    "dmsEventCluster": EVENT_CLUSTER,
    "dmsEventServer": EVENT_SERVER,
    "dmsEventMessage": EVENT_MESSAGE,
}

SEVERITY_VALUES: dict[str, int] = {"info": 1, "warning": 2, "critical": 3}

# Upper bounds the MIB puts on the string objects (SIZE clauses), in octets of UTF-8.
MAX_TYPE_OCTETS = 64
MAX_TEXT_OCTETS = 255


def notification_name(event_type: str) -> str:
    """The MIB descriptor of an event type's notification: server_failed -> dmsServerFailed."""
    return "dms" + "".join(part.capitalize() for part in event_type.split("_"))


# One NOTIFICATION-TYPE per event type (DESIGN §7), numbered explicitly so that reordering
# EventType cannot renumber a published OID. A new event type takes the next free number; a number
# is never reused.
NOTIFICATION_NUMBERS: dict[str, int] = {
    EventType.SERVER_FAILED: 1,
    EventType.SERVER_RECOVERED: 2,
    EventType.CRITICAL_SERVICE_FAILED: 3,
    EventType.CRITICAL_SERVICE_RECOVERED: 4,
    EventType.COMPONENT_FAILED: 5,
    EventType.COMPONENT_RECOVERED: 6,
    EventType.HEARTBEAT_LINK_DOWN: 7,
    EventType.HEARTBEAT_LINK_RESTORED: 8,
    EventType.REPLICATION_FAILED: 9,
    EventType.REPLICATION_RECOVERED: 10,
    EventType.CLOCK_SKEW_DETECTED: 11,
    EventType.CLOCK_SKEW_RESOLVED: 12,
    EventType.FAILOVER_COMPLETED: 13,
    EventType.FAILOVER_FAILED: 14,
    EventType.FAILOVER_ABANDONED: 15,
    EventType.SWITCHOVER_COMPLETED: 16,
    EventType.SWITCHOVER_FAILED: 17,
    EventType.INITIAL_SYNC_COMPLETED: 18,
    EventType.LICENSES_COPIED: 19,
}
NOTIFICATION_OIDS: dict[str, Oid] = {
    str(event_type): NOTIFICATIONS + (number,) for event_type, number in NOTIFICATION_NUMBERS.items()
}


def dotted(oid: Oid) -> str:
    return ".".join(str(arc) for arc in oid)
