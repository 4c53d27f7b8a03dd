"""The hardware configuration schema of DESIGN §2, validated on input and compared field by field.

Kept free of models so that the same check applies to what an administrator types and to what an
agent's inventory reports.
"""

from typing import Any

FIELDS = ("cpu_model", "cpu_count", "memory_gb", "disks", "raid_level", "nic_count")
DISK_FIELDS = ("size_gb", "kind")
EXAMPLE = {
    "cpu_model": "Intel Xeon E5620",
    "cpu_count": 2,
    "memory_gb": 12,
    "disks": [{"size_gb": 300, "kind": "sas"}, {"size_gb": 300, "kind": "sas"}],
    "raid_level": "RAID1",
    "nic_count": 2,
}


def _text(longest: int) -> dict:
    return {"type": "string", "minLength": 1, "maxLength": longest}


def _positive(largest: float | None = None) -> dict:
    schema = {"type": "number", "minimum": 0, "exclusiveMinimum": True}
    return {**schema, "maximum": largest} if largest is not None else schema


# The same rules as hardware_errors() below, as the OpenAPI (3.0) schema of the API's `hardware`.
JSON_SCHEMA = {
    "type": "object",
    "properties": {
        "cpu_model": _text(200),
        "cpu_count": {"type": "integer", "minimum": 1, "maximum": 1024},
        "memory_gb": _positive(1_048_576),
        "disks": {
            "type": "array",
            "minItems": 1,
            "maxItems": 256,
            "items": {
                "type": "object",
                "properties": {"size_gb": _positive(), "kind": _text(40)},
                "required": list(DISK_FIELDS),
                "additionalProperties": False,
            },
        },
        "raid_level": _text(40),
        "nic_count": {"type": "integer", "minimum": 1, "maximum": 64},
    },
    "required": list(FIELDS),
    "additionalProperties": False,
    "example": EXAMPLE,
}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def hardware_errors(value: Any) -> list[str]:
    """Every way `value` breaks the schema, as readable sentences (empty when it is valid)."""
    if not isinstance(value, dict):
        return ["Hardware configuration must be a JSON object with the fields " + ", ".join(FIELDS) + "."]
    errors = []
    missing = [name for name in FIELDS if name not in value]
    if missing:
        errors.append("Missing field(s): " + ", ".join(missing) + ".")
    unknown = sorted(str(name) for name in value if name not in FIELDS)
    if unknown:
        errors.append("Unknown field(s): " + ", ".join(unknown) + ".")
    if "cpu_model" in value and not (isinstance(value["cpu_model"], str) and 0 < len(value["cpu_model"]) <= 200):
        errors.append("cpu_model must be a non-empty string of at most 200 characters.")
    for name, low, high in (("cpu_count", 1, 1024), ("nic_count", 1, 64)):
        if name in value and not (_is_int(value[name]) and low <= value[name] <= high):
            errors.append(f"{name} must be an integer from {low} to {high}.")
    if "memory_gb" in value and not (_is_number(value["memory_gb"]) and 0 < value["memory_gb"] <= 1_048_576):
        errors.append("memory_gb must be a positive number.")
    if "raid_level" in value and not (isinstance(value["raid_level"], str) and 0 < len(value["raid_level"]) <= 40):
        errors.append("raid_level must be a non-empty string of at most 40 characters (e.g. RAID1).")
    if "disks" in value:
        errors.extend(_disk_errors(value["disks"]))
    return errors


def _disk_errors(disks: Any) -> list[str]:
    if not isinstance(disks, list) or not disks or len(disks) > 256:
        return ["disks must be a list of 1 to 256 objects {size_gb, kind}."]
    errors = []
    for index, disk in enumerate(disks, start=1):
        if not isinstance(disk, dict) or set(disk) != set(DISK_FIELDS):
            errors.append(f"disk {index} must be an object with exactly size_gb and kind.")
            continue
        if not (_is_number(disk["size_gb"]) and disk["size_gb"] > 0):
            errors.append(f"disk {index}: size_gb must be a positive number.")
        if not (isinstance(disk["kind"], str) and 0 < len(disk["kind"]) <= 40):
            errors.append(f"disk {index}: kind must be a non-empty string (e.g. sas, ssd).")
    return errors


def differing_fields(first: dict, second: dict) -> list[str]:
    """The schema fields on which two configurations differ ("identical" means equal on every one)."""
    return [name for name in FIELDS if first.get(name) != second.get(name)]
