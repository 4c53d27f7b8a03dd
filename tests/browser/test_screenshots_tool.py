"""`make screenshots` keeps working: the README's pictures are taken again from the seeded estate
into a folder of the test's, each a 1280 × 800 PNG (a page renamed or broken fails here, not on the
day someone needs new pictures)."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from tests.browser.conftest import CHROMIUM

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
PICTURES = ["dashboard", "cluster-after-failover", "alerts", "notification-rule-form"]


def png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n", f"{path.name} is not a PNG"
    return struct.unpack(">II", header[16:24])


def test_the_screenshots_are_taken_from_a_seeded_estate(tmp_path):
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip("chromium is not installed (Debian package chromium)")
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "DJANGO_ALLOW_ASYNC_UNSAFE")}

    done = subprocess.run(
        [sys.executable, "-m", "tools.screenshots", "--out", str(tmp_path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )

    assert done.returncode == 0, done.stdout + done.stderr
    for name in PICTURES:
        assert png_size(tmp_path / f"{name}.png") == (1280, 800)
    assert "Traceback" not in done.stderr
