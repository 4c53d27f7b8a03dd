"""`/v1/sync` between two real agents (DESIGN §5 Replication, §8): the secondary pulls the primary's
data directly, verified, atomically, aborting when its role or epoch changes."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from tests.agent.sync_pair import Pair, digest, temp_files, tree, write
from tests.support.agents import wait_until
from tests.support.faultproxy import FaultProxy

pytestmark = pytest.mark.integration

MB = 1024 * 1024


def test_a_sync_copies_everything_then_follows_changes(pair: Pair) -> None:
    p, s = pair.primary.data_dir, pair.secondary.data_dir
    big = os.urandom(5 * MB)
    write(p, "a.txt", b"alpha")
    write(p, "nested/deep/b.bin", os.urandom(70_000))
    write(p, "empty", b"")
    write(p, "big.bin", big)
    write(p, "odd name & 100%.txt", b"odd")
    write(s, "stale/only-here.txt", b"the primary has no such file")

    first = pair.sync()
    assert tree(s) == tree(p)
    assert first["files_total"] == first["files_done"] == 5
    assert first["bytes_total"] == first["bytes_done"] == 5 + 70_000 + 5 * MB + 3
    assert first["deleted"] == 1 and first["quarantined"] == 0 and first["error"] is None
    assert first["finished_at"] >= first["started_at"]
    assert not (s / "stale").exists()  # the emptied directory went with its file
    assert temp_files(pair.secondary) == []

    write(p, "a.txt", b"alpha, changed")
    write(p, "new/c.txt", b"gamma")
    (p / "nested/deep/b.bin").unlink()
    second = pair.sync()
    assert tree(s) == tree(p)
    assert (second["files_total"], second["deleted"]) == (2, 1)
    assert second["bytes_total"] == len(b"alpha, changed") + len(b"gamma")

    third = pair.sync()  # nothing changed: nothing moves
    assert (third["files_total"], third["bytes_total"], third["deleted"]) == (0, 0, 0)
    assert pair.secondary.request("GET", "/v1/sync/no-such-id")[0] == 404


def test_delete_false_keeps_local_only_files(pair: Pair) -> None:
    write(pair.primary.data_dir, "a.txt", b"a")
    write(pair.secondary.data_dir, "mine.txt", b"mine")
    answer = pair.sync(delete=False)
    assert answer["deleted"] == 0
    assert tree(pair.secondary.data_dir) == {
        **tree(pair.primary.data_dir),
        "mine.txt": digest(pair.secondary.data_dir / "mine.txt"),
    }


def test_quarantine_keeps_every_overwritten_or_deleted_file(pair: Pair) -> None:
    p, s = pair.primary.data_dir, pair.secondary.data_dir
    write(p, "a.txt", b"new a")
    write(p, "same.txt", b"same")
    write(p, "dir/c.txt", b"c")
    write(s, "a.txt", b"old a, written while this appliance was primary")
    write(s, "same.txt", b"same")
    write(s, "gone/b.txt", b"only here")
    write(s, "dir", b"a file where the primary has a directory")

    sync_id = pair.start(quarantine=True)
    answer = pair.wait(sync_id)
    assert answer["state"] == "succeeded", answer
    assert tree(s) == tree(p)
    kept = pair.secondary.state_dir / "quarantine" / sync_id
    assert tree(kept) == {
        "a.txt": hashlib.sha256(b"old a, written while this appliance was primary").hexdigest(),
        "gone/b.txt": hashlib.sha256(b"only here").hexdigest(),
        "dir": hashlib.sha256(b"a file where the primary has a directory").hexdigest(),
    }
    assert answer["quarantined"] == 3


def test_sync_is_refused_out_of_order_or_role(pair: Pair, agent_factory) -> None:
    status, answer = pair.post(agent=pair.primary)
    assert status == 409 and "secondary" in answer["error"] and answer["role"] == "primary"
    lone = agent_factory("u")
    assert pair.post(agent=lone)[0] == 409  # unconfigured
    status, answer = pair.post(epoch=2)
    assert status == 409 and answer["epoch"] == 1
    status, answer = pair.post(seq=1)  # the role command already holds seq 1
    assert status == 409 and answer["seq"] == 1
    status, answer = pair.post(seq=5)
    assert status == 202
    assert pair.wait(answer["id"])["state"] == "succeeded"
    status, answer = pair.post(seq=4)  # older than the accepted 5
    assert status == 409 and answer["seq"] == 5
    for bad in (
        {},
        {"source_url": "ftp://x", "source_token": "t", "epoch": 1, "seq": 99},
        {"source_url": pair.primary.heartbeat_url, "source_token": "t", "epoch": 1, "seq": 99, "quarantine": "yes"},
    ):
        assert pair.secondary.request("POST", "/v1/sync", bad)[0] == 400, bad
    assert pair.secondary.request("POST", "/v1/sync", {}, token="wrong")[0] == 401


def test_a_second_sync_while_one_runs_is_refused(pair: Pair) -> None:
    write(pair.primary.data_dir, "a.txt", b"a")
    pair.primary.stop()  # SIGSTOP: the first sync hangs on the manifest
    try:
        first = pair.start()
        status, answer = pair.post()
        assert status == 409 and answer["id"] == first, answer
        assert pair.status(first)["state"] == "running"
    finally:
        pair.primary.cont()
    assert pair.wait(first)["state"] == "succeeded"
    assert tree(pair.secondary.data_dir) == tree(pair.primary.data_dir)
    pair.sync()  # and the next one is accepted again


def test_a_wrong_source_token_fails_the_sync(pair: Pair) -> None:
    sync_id = pair.start(source_token="wrong")
    answer = pair.wait(sync_id)
    assert answer["state"] == "failed" and "401" in answer["error"]


@pytest.fixture
def proxy(pair: Pair):
    fp = FaultProxy(pair.primary.heartbeat_url).start()
    yield fp
    fp.stop()


def test_corruption_in_transit_is_refused_and_retried(pair: Pair, proxy: FaultProxy) -> None:
    p = pair.primary.data_dir
    write(p, "big.bin", os.urandom(5 * MB))
    write(p, "nested/small.txt", b"small")
    write(p, "empty", b"")
    write(pair.secondary.data_dir, "big.bin", b"an old version")
    proxy.set("other", "corrupt")
    proxy.corrupt_times = 1  # the first answer for each file is corrupt, the retry is not
    answer = pair.sync(proxy.url)
    assert tree(pair.secondary.data_dir) == tree(p)
    assert proxy.corrupted == {"/v1/data/files/big.bin": 1, "/v1/data/files/nested/small.txt": 1}
    assert answer["bytes_done"] == answer["bytes_total"] == 5 * MB + 5  # retries not counted twice
    assert "sha256 mismatch" in pair.secondary.log_text()


def test_corruption_every_time_fails_naming_the_file_and_leaves_nothing(pair: Pair, proxy: FaultProxy) -> None:
    p, s = pair.primary.data_dir, pair.secondary.data_dir
    write(p, "data/big.bin", os.urandom(2 * MB))
    write(s, "data/big.bin", b"the old version stays")
    write(s, "local-only.txt", b"not deleted by a failed sync")
    proxy.set("other", "corrupt")
    answer = pair.wait(pair.start(proxy.url))
    assert answer["state"] == "failed", answer
    assert "data/big.bin" in answer["error"] and "sha256 mismatch" in answer["error"]
    assert proxy.corrupted == {"/v1/data/files/data/big.bin": 3}
    assert (s / "data/big.bin").read_bytes() == b"the old version stays"
    assert (s / "local-only.txt").exists() and answer["deleted"] == 0
    assert temp_files(pair.secondary) == []
    assert set(tree(s)) == {"data/big.bin", "local-only.txt"}


def many_files(root: Path, count: int, size: int) -> None:
    block = os.urandom(size)
    for i in range(count):
        write(root, f"d{i % 40}/f{i}.bin", block[i % size :] + block[: i % size])


def test_a_role_change_mid_sync_aborts_and_deletes_nothing(pair: Pair) -> None:
    p, s = pair.primary.data_dir, pair.secondary.data_dir
    many_files(p, 1500, 32 * 1024)
    write(s, "local-only.txt", b"would be deleted at the end of a complete sync")
    sync_id = pair.start()
    wait_until(lambda: pair.status(sync_id)["files_done"] >= 1, 20, interval=0.005, message="the first file")
    pair.primary.stop()  # freeze the source mid-transfer: downloads hang until the abort
    try:
        assert pair.secondary.role("secondary", 2, 100)[0] == 200  # a failover elsewhere
        answer = wait_until(lambda: (a := pair.status(sync_id))["state"] != "running" and a, 2, message="the abort")
    finally:
        pair.primary.cont()
    assert answer["state"] == "aborted" and "epoch 2" in answer["error"], answer
    assert 1 <= answer["files_done"] < answer["files_total"] == 1500
    assert answer["deleted"] == 0 and (s / "local-only.txt").exists()
    assert temp_files(pair.secondary) == []
    source = tree(p)
    local = tree(s)
    local.pop("local-only.txt")
    assert len(local) == answer["files_done"]
    assert all(source[rel] == sha for rel, sha in local.items())  # complete files only
    # The job at the old epoch is over; a sync at the new epoch completes what was left.
    assert pair.post(epoch=1)[0] == 409
    assert pair.post(epoch=2, seq=101)[0] == 202


def test_a_killed_agent_leaves_only_complete_files_and_the_next_sync_finishes(pair: Pair) -> None:
    p, s = pair.primary.data_dir, pair.secondary.data_dir
    many_files(p, 120, MB)  # larger than a chunk: downloads write temp files as they go
    sync_id = pair.start()
    wait_until(lambda: pair.status(sync_id)["files_done"] >= 1, 20, interval=0.005, message="the first file")
    pair.primary.stop()  # downloads hang mid-file
    try:
        pair.secondary.kill()
    finally:
        pair.primary.cont()
    # Whatever the crash left in the temp folder, plus a leftover of an older crash.
    write(s, ".dms-tmp/sync-leftover", b"partial")
    source = tree(p)
    assert all(source[rel] == sha for rel, sha in tree(s).items() if not rel.startswith(".dms-"))
    pair.secondary.start().wait_ready()
    assert temp_files(pair.secondary) == []  # cleaned at start
    assert pair.secondary.request("GET", f"/v1/sync/{sync_id}")[0] == 404  # memory only
    answer = pair.sync()
    assert 0 < answer["files_total"] < 120
    assert tree(s) == source
