"""Throughput of `/v1/sync` between two local agents next to `rsync -a` (printed, not asserted).

Opt-in: `DMS_SYNC_BENCH=1 pytest tests/agent/test_sync_throughput.py -s`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time

import pytest

from tests.agent.sync_pair import Pair, tree, write

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not os.environ.get("DMS_SYNC_BENCH"), reason="set DMS_SYNC_BENCH=1"),
]

FILES = 2000
SIZE = 100 * 1024  # 2,000 × 100 KiB ≈ 200 MB


def test_sync_throughput_next_to_rsync(pair: Pair, tmp_path) -> None:
    primary, secondary = pair.primary, pair.secondary
    for i in range(FILES):
        write(primary.data_dir, f"d{i % 50}/f{i}.bin", os.urandom(SIZE))
    total = FILES * SIZE
    # The primary's first manifest hashes everything; time it apart, as a warm-up.
    started = time.monotonic()
    assert primary.request("GET", "/v1/data/manifest", timeout=120)[0] == 200
    manifest_s = time.monotonic() - started

    started = time.monotonic()
    answer = pair.wait(pair.start(), timeout=300)
    sync_s = time.monotonic() - started
    assert answer["state"] == "succeeded", answer
    assert tree(secondary.data_dir) == tree(primary.data_dir)

    started = time.monotonic()
    again = pair.wait(pair.start(), timeout=300)
    noop_s = time.monotonic() - started
    assert again["files_total"] == 0

    target = tmp_path / "rsync-target"
    started = time.monotonic()
    subprocess.run(["rsync", "-a", f"{primary.data_dir}/", f"{target}/"], check=True)
    rsync_s = time.monotonic() - started
    started = time.monotonic()
    subprocess.run(["rsync", "-a", f"{primary.data_dir}/", f"{target}/"], check=True)
    rsync_noop_s = time.monotonic() - started
    shutil.rmtree(target)

    mb = total / 1e6
    print(f"\n{FILES} files, {mb:.0f} MB; primary's first manifest (hashing): {manifest_s:.2f}s")
    print(
        f"/v1/sync: {sync_s:.2f}s = {mb / sync_s:.0f} MB/s, {FILES / sync_s:.0f} files/s; no-change sync {noop_s:.2f}s"
    )
    print(
        f"rsync -a: {rsync_s:.2f}s = {mb / rsync_s:.0f} MB/s, {FILES / rsync_s:.0f} files/s; "
        f"no-change rsync {rsync_noop_s:.2f}s"
    )
