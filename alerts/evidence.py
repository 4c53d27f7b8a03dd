"""An event's details in words and units, for its page: the JSON kept for the API and the
notifications, read as labelled facts — times to the millisecond in the site's time zone, lengths
in seconds, nested facts under their parent's label — never raw JSON or Unix seconds."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dms_admin.moments import from_unix, seconds, stamp

# Labels of the keys events carry (cluster/heartbeat/evaluate.py, cluster/failover.py, cluster/replication.py);
# any other key is labelled from its name.
LABELS = {
    "cause": "Cause",
    "old_primary": "Old primary",
    "duration_s": "Claim to commit",
    "last_grant_at": "Last grant to the old primary",
    "lease_deadline": "Old primary's lease ran out",
    "secondary_peer": "Secondary's view of the primary",
    "last_answer_age_s": "Last answer heard, age",
    "last_grant_sent_age_s": "Last grant sent, age",
    "secondary_last_grant_sent_age_s": "Secondary's last grant sent, age",
    "secondary_last_answer_age_s": "Secondary's last answer from the primary, age",
    "needed_s": "Age needed for a failover",
    "requested_by": "Requested by",
    "wait": "Lease wait",
    "missed_slots": "Missed heartbeats in a row",
    "first_missed_slot_at": "First missed slot",
    "last_missed_slot_at": "Last missed slot",
    "interval_s": "Heartbeat interval",
    "last_answer_at": "Last answer",
    "heartbeat_error": "Heartbeat URL",
    "intranet_error": "Intranet URL",
    "refused_reason": "Not granted because",
    "sent_at": "Sent",
    "lease_s": "Lease",
    "failure_event": "Failure event",
    "detected_by": "Detected by",
    "consecutive_answers": "Answers in a row",
    "consecutive_failures": "Failed checks in a row",
    "ok": "Link up",
    "offset_s": "Clock offset",
    "uncertainty_s": "Uncertainty",
    "limit_s": "Limit",
    "job": "Replication job",
}
WORDS = {"cause": lambda value: str(value).replace("_", " ")}
EVENT_IDS = ("failure_event",)


@dataclass(frozen=True)
class Fact:
    label: str
    text: str


def describe(details: dict | None) -> list[Fact]:
    """`details` as facts, in their stored order; a nested object's facts follow, labelled
    `Parent · child`."""
    facts: list[Fact] = []
    for key, value in (details or {}).items():
        _add(facts, label(key), key, value)
    return facts


def label(key: str) -> str:
    if key in LABELS:
        return LABELS[key]
    for suffix in ("_at", "_s"):
        if key.endswith(suffix):
            key = key[: -len(suffix)]
    return key.replace("_", " ").capitalize()


def _add(facts: list[Fact], name: str, key: str, value: Any) -> None:
    if isinstance(value, dict):
        if not value:
            facts.append(Fact(name, "—"))
        for child, child_value in value.items():
            _add(facts, f"{name} · {label(child).lower()}", child, child_value)
        return
    facts.append(Fact(name, text(key, value)))


def is_time(key: str, value: Any) -> bool:
    return (key.endswith("_at") or key.endswith("deadline")) and isinstance(value, (int, float)) and value > 1e8


def text(key: str, value: Any) -> str:
    if value is None or value == "" or value == []:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if key in WORDS:
        return WORDS[key](value)
    if key in EVENT_IDS:
        return f"event #{value}"
    if isinstance(value, (int, float)):
        if is_time(key, value):
            return stamp(from_unix(value))
        if key.endswith("_s"):
            return seconds(value)
        return f"{value:g}" if isinstance(value, float) else str(value)
    if isinstance(value, list):
        return "; ".join(_item(key, item) for item in value)
    return str(value)


def _item(key: str, item: Any) -> str:
    if isinstance(item, dict):
        return ", ".join(f"{label(k).lower()} {text(k, v)}" for k, v in item.items())
    return text(key, item)
