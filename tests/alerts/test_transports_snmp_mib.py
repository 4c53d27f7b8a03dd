"""DMS-FAILOVER-MIB.txt and alerts/transports/snmp_oids.py say the same thing, and the MIB lints."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from alerts.choices import EventType
from alerts.transports import snmp_oids as oids

MIB = Path(__file__).resolve().parents[2] / "alerts" / "mibs" / "DMS-FAILOVER-MIB.txt"

# name MACRO ... ::= { parent 1 2 }, for the macros our MIB uses.
DEFINITION = re.compile(
    r"^(?P<name>[a-z][A-Za-z0-9-]*)\s+"
    r"(?P<kind>MODULE-IDENTITY|OBJECT IDENTIFIER|OBJECT-TYPE|NOTIFICATION-TYPE|OBJECT-GROUP|"
    r"NOTIFICATION-GROUP|MODULE-COMPLIANCE)\b"
    r"(?P<body>.*?)::=\s*\{\s*(?P<parent>[A-Za-z][A-Za-z0-9-]*)\s+(?P<arcs>[\d\s]+)\}",
    re.MULTILINE | re.DOTALL,
)


def mib_text() -> str:
    # Drop comments (they run from "--" to the end of the line) so they cannot match.
    return re.sub(r"--.*$", "", MIB.read_text(), flags=re.MULTILINE)


def definitions() -> dict[str, dict[str, object]]:
    known: dict[str, tuple[int, ...]] = {"enterprises": (1, 3, 6, 1, 4, 1)}
    found: dict[str, dict[str, object]] = {}
    for match in DEFINITION.finditer(mib_text()):
        oid = known[match.group("parent")] + tuple(int(arc) for arc in match.group("arcs").split())
        known[match.group("name")] = oid
        found[match.group("name")] = {"kind": match.group("kind"), "oid": oid, "body": match.group("body")}
    return found


def braced_names(body: str, keyword: str) -> list[str]:
    match = re.search(keyword + r"\s*\{([^}]*)\}", body)
    assert match, f"no {keyword} clause"
    return [name.strip() for name in match.group(1).split(",")]


def test_the_module_sits_under_the_enterprise_the_transport_sends():
    assert definitions()["dmsFailoverMIB"]["oid"] == oids.MIB_ROOT
    assert oids.MIB_ROOT[: len(oids.ENTERPRISE)] == oids.ENTERPRISE


def test_every_event_type_has_the_notification_the_transport_sends():
    mib_notifications = {name: d["oid"] for name, d in definitions().items() if d["kind"] == "NOTIFICATION-TYPE"}
    python_notifications = {
        oids.notification_name(event_type): oids.NOTIFICATION_OIDS[event_type] for event_type in EventType
    }
    assert mib_notifications == python_notifications
    assert len(mib_notifications) == 19


def test_every_notification_carries_the_six_objects_in_the_transports_order():
    found = definitions()
    for name, definition in found.items():
        if definition["kind"] == "NOTIFICATION-TYPE":
            assert braced_names(str(definition["body"]), "OBJECTS") == list(oids.VARBIND_OBJECTS), name


def test_the_varbind_objects_have_the_transports_oids_and_are_accessible_for_notify():
    found = definitions()
    objects = {name: d["oid"] for name, d in found.items() if d["kind"] == "OBJECT-TYPE"}
    assert objects == oids.VARBIND_OBJECTS
    for name in objects:
        assert "MAX-ACCESS  accessible-for-notify" in str(found[name]["body"]), name


def test_the_severity_enumeration_and_sizes_match_what_the_transport_encodes():
    body = str(definitions()["dmsEventSeverity"]["body"])
    assert dict((label, int(number)) for label, number in re.findall(r"(\w+)\((\d+)\)", body)) == (oids.SEVERITY_VALUES)
    assert f"SIZE (1..{oids.MAX_TYPE_OCTETS})" in str(definitions()["dmsEventType"]["body"])
    assert f"OCTET STRING (SIZE (0..{oids.MAX_TEXT_OCTETS}))" in mib_text()


def test_the_groups_cover_every_object_and_notification():
    found = definitions()
    assert braced_names(str(found["dmsEventObjectGroup"]["body"]), "OBJECTS") == list(oids.VARBIND_OBJECTS)
    notifications = braced_names(str(found["dmsEventNotificationGroup"]["body"]), "NOTIFICATIONS")
    assert sorted(notifications) == sorted(oids.notification_name(event_type) for event_type in EventType)


# Minimal stand-ins for the IETF base modules, used only where the machine has none (Debian ships
# them in non-free's snmp-mibs-downloader): libsmi needs the OID tree, the base types and the macro
# names; it knows what the macros mean.
SMI_STUBS = {
    "SNMPv2-SMI": """SNMPv2-SMI DEFINITIONS ::= BEGIN
org OBJECT IDENTIFIER ::= { iso 3 }
dod OBJECT IDENTIFIER ::= { org 6 }
internet OBJECT IDENTIFIER ::= { dod 1 }
private OBJECT IDENTIFIER ::= { internet 4 }
enterprises OBJECT IDENTIFIER ::= { private 1 }
MODULE-IDENTITY MACRO ::= BEGIN END
OBJECT-IDENTITY MACRO ::= BEGIN END
OBJECT-TYPE MACRO ::= BEGIN END
NOTIFICATION-TYPE MACRO ::= BEGIN END
Integer32 ::= INTEGER (-2147483648..2147483647)
Counter32 ::= [APPLICATION 1] IMPLICIT INTEGER (0..4294967295)
Gauge32 ::= [APPLICATION 2] IMPLICIT INTEGER (0..4294967295)
Unsigned32 ::= [APPLICATION 2] IMPLICIT INTEGER (0..4294967295)
TimeTicks ::= [APPLICATION 3] IMPLICIT INTEGER (0..4294967295)
END
""",
    "SNMPv2-TC": "SNMPv2-TC DEFINITIONS ::= BEGIN\nTEXTUAL-CONVENTION MACRO ::= BEGIN END\nEND\n",
    "SNMPv2-CONF": (
        "SNMPv2-CONF DEFINITIONS ::= BEGIN\nOBJECT-GROUP MACRO ::= BEGIN END\n"
        "NOTIFICATION-GROUP MACRO ::= BEGIN END\nMODULE-COMPLIANCE MACRO ::= BEGIN END\nEND\n"
    ),
}


def smilint(path: Path, tmp_path: Path) -> str:
    command = ["smilint", "-l", "3", "-s", str(path)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=30)
    output = result.stdout + result.stderr
    if "failed to locate MIB module" in output:
        for name, text in SMI_STUBS.items():
            (tmp_path / name).write_text(text)
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=30, env={**os.environ, "SMIPATH": str(tmp_path)}
        )
        output = result.stdout + result.stderr
    return output


@pytest.mark.skipif(shutil.which("smilint") is None, reason="smilint is not installed (Debian package smitools)")
def test_smilint_finds_nothing_to_report_at_level_3(tmp_path):
    assert smilint(MIB, tmp_path) == ""


@pytest.mark.skipif(shutil.which("smilint") is None, reason="smilint is not installed (Debian package smitools)")
def test_smilint_would_catch_a_broken_mib(tmp_path):
    # Proves the check above can fail: a misspelt object in a notification.
    broken = tmp_path / "broken" / "DMS-FAILOVER-MIB.txt"
    broken.parent.mkdir()
    broken.write_text(MIB.read_text().replace("dmsEventSeverity,\n", "dmsEventSeveriti,\n", 1))
    assert "unknown object identifier label `dmsEventSeveriti'" in smilint(broken, tmp_path)
