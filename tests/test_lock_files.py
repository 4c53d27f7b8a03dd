"""The lock files (`make lock`) are up to date with the requirements they are made from: every pin
of requirements*.txt is in its lock at the same version, and every locked package has hashes, so
`pip install --require-hashes` (make install, the operator guide) takes nothing else."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PIN = re.compile(r"^([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?==([^\s;\\]+)")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(path: Path) -> dict[str, str]:
    found = {}
    for line in path.read_text().splitlines():
        if line.startswith("-r "):
            found |= pins(path.parent / line.split()[1])
        elif match := PIN.match(line):
            found[canonical(match[1])] = match[2]
    return found


def locked(path: Path) -> dict[str, tuple[str, int]]:
    """name → (version, number of hashes) of each entry of a lock file."""
    entries: dict[str, tuple[str, int]] = {}
    name = None
    for line in path.read_text().splitlines():
        if match := PIN.match(line):
            name = canonical(match[1])
            entries[name] = (match[2], 0)
        elif name and line.strip().startswith("--hash=sha256:"):
            version, hashes = entries[name]
            entries[name] = (version, hashes + 1)
    return entries


@pytest.mark.parametrize(
    "requirements, lock",
    [
        ("requirements.txt", "requirements.lock"),
        ("requirements-dev.txt", "requirements-dev.lock"),
        ("agent/requirements.txt", "agent/requirements.lock"),
    ],
)
def test_every_pin_is_locked_with_hashes(requirements, lock):
    wanted = pins(ROOT / requirements)
    entries = locked(ROOT / lock)

    assert wanted, requirements
    stale = {name: version for name, version in wanted.items() if entries.get(name, ("",))[0] != version}
    assert not stale, f"{lock} is out of date for {stale}: run `make lock`"
    assert all(hashes for _, hashes in entries.values()), f"{lock}: entries without hashes"


def test_the_runtime_and_agent_locks_agree_with_the_development_lock():
    development = locked(ROOT / "requirements-dev.lock")
    for lock in ["requirements.lock", "agent/requirements.lock"]:
        for name, (version, _) in locked(ROOT / lock).items():
            assert development[name][0] == version, f"{lock}: {name} {version}, requirements-dev.lock differs"
