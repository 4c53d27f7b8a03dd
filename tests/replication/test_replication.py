"""Replication jobs with two real agents and a real worker (DESIGN §5): the secondary pulls the
primary's data straight from it; the job orchestrates, follows and records."""

import copy
import os

import pytest
from rest_framework.test import APIClient

from cluster.hardware import EXAMPLE
from cluster.models import Cluster, ReplicationJob
from cluster.tasks import replicate
from tests.factories import UserFactory
from tests.support.agents import wait_until
from tests.support.controlplane import restart_control_plane, tree_digest, write_files

pytestmark = pytest.mark.integration

INVENTORY = {
    "system": {
        "part_number": "DMM-SVR-C210-K9",
        "hardware": copy.deepcopy(EXAMPLE),
        "configuration": {"time_zone": "Europe/Paris", "ntp": ["ntp1.example.net"], "dns": ["10.0.0.53"]},
    },
    "licenses": [
        {"name": "dmm-base", "key": "DMM-0001-AAAA", "quantity": 1},
        {"name": "digital-signs", "key": "DS-0042-BBBB", "quantity": 50},
    ],
    "modules": [{"name": "show-and-share-bridge", "version": "5.3.1"}, {"name": "cast", "version": "2.0.0"}],
}
FILES = {
    "media/intro.mp4": os.urandom(256 * 1024),
    "media/deep/nested/clip.mov": os.urandom(64 * 1024),
    "playlists/lobby.xml": b"<playlist><item>intro.mp4</item></playlist>",
    "empty.txt": b"",
}


@pytest.fixture
def operator_api(transactional_db):
    client = APIClient()
    client.force_authenticate(UserFactory(role="operator"))
    return client


def _job_after(cluster, job_id: int, timeout: float = 30) -> ReplicationJob:
    def finished():
        job = ReplicationJob.objects.filter(cluster=cluster, pk__gt=job_id).exclude(state="running").first()
        return job

    return wait_until(finished, timeout, interval=0.1, message="the next replication job to finish")


def _last_job_id(cluster) -> int:
    """The last job once none is running: a job asked for while another runs is dropped ("a job is
    running"), and the test would wait for one that never comes."""
    wait_until(
        lambda: not ReplicationJob.objects.filter(cluster=cluster, state="running").exists(),
        30,
        interval=0.1,
        message="no replication job running",
    )
    last = ReplicationJob.objects.filter(cluster=cluster).order_by("-id").first()
    return last.pk if last else 0


def test_the_initial_sync_copies_licenses_modules_configuration_and_every_file(make_cluster, operator_api):
    own = {"media/recorded-before-joining.mp4": b"only on the new secondary"}
    under_test = make_cluster("initial", inventory=INVENTORY, files=FILES, secondary_files=own)
    cluster = under_test.cluster

    assert tree_digest(under_test.secondary_agent.data_dir) == tree_digest(under_test.primary_agent.data_dir)
    assert len(tree_digest(under_test.secondary_agent.data_dir)) == len(FILES)
    # The secondary's own file is not in its data any more, but it is not lost either.
    kept = list(under_test.secondary_agent.state_dir.rglob("recorded-before-joining.mp4"))
    assert kept and kept[0].read_bytes() == b"only on the new secondary"
    inventory = under_test.secondary_agent.request("GET", "/v1/inventory")[1]
    assert [lic["name"] for lic in inventory["licenses"]] == ["dmm-base", "digital-signs"]
    assert inventory["system"]["configuration"]["time_zone"] == "Europe/Paris"
    assert inventory["system"]["part_number"] == "DMM-FA-C210-K9"  # identity is not copied
    licenses = operator_api.get(f"/api/v1/licenses/?server={cluster.secondary_id}").json()["results"]
    assert {(lic["name"], lic["source"]) for lic in licenses} == {("dmm-base", "copied"), ("digital-signs", "copied")}
    primary_licenses = operator_api.get(f"/api/v1/licenses/?server={cluster.primary_id}").json()["results"]
    assert {lic["source"] for lic in primary_licenses} == {"installed"}
    modules = operator_api.get(f"/api/v1/modules/?server={cluster.secondary_id}").json()["results"]
    assert {m["name"] for m in modules} == {"show-and-share-bridge", "cast"}
    assert under_test.events("licenses_copied", "initial_sync_completed") == [
        "licenses_copied",
        "initial_sync_completed",
    ]
    jobs = operator_api.get(f"/api/v1/replication-jobs/?cluster={cluster.pk}").json()["results"]
    assert jobs[0]["kind"] == "initial" and jobs[0]["state"] == "succeeded" and jobs[0]["progress"] == 100.0
    assert operator_api.get(f"/api/v1/clusters/{cluster.pk}/").json()["replication"]["current"] is True


def test_added_changed_and_deleted_files_reach_the_secondary_after_one_job(make_cluster, operator_api):
    under_test = make_cluster("incremental", inventory=INVENTORY, files=FILES)
    primary_dir = under_test.primary_agent.data_dir
    before = _last_job_id(under_test.cluster)

    write_files(primary_dir, {"media/new.mp4": os.urandom(32 * 1024), "playlists/lobby.xml": b"<playlist/>"})
    (primary_dir / "empty.txt").unlink()
    response = operator_api.post(f"/api/v1/clusters/{under_test.cluster.pk}/replicate/")

    assert response.status_code == 202
    job = _job_after(under_test.cluster, before)
    assert job.state == "succeeded" and job.kind == "incremental"
    assert tree_digest(under_test.secondary_agent.data_dir) == tree_digest(primary_dir)
    assert job.deleted == 1


def test_a_worker_killed_mid_job_leaves_a_state_the_next_job_completes(make_cluster, control_plane):
    under_test = make_cluster("killed-job", inventory=INVENTORY, files=FILES)
    primary_dir = under_test.primary_agent.data_dir
    write_files(primary_dir, {f"bulk/file-{i:04d}.bin": os.urandom(64 * 1024) for i in range(600)})
    before = _last_job_id(under_test.cluster)

    replicate.delay(under_test.cluster.pk)
    wait_until(
        lambda: ReplicationJob.objects.filter(cluster=under_test.cluster, pk__gt=before, state="running").exists(),
        20,
        interval=0.02,
        message="a running job",
    )
    restart_control_plane(control_plane, ["replication"])  # the job's worker killed mid-copy

    def equal_after_a_later_success():
        later = ReplicationJob.objects.filter(cluster=under_test.cluster, pk__gt=before + 1, state="succeeded")
        return later.exists() and tree_digest(under_test.secondary_agent.data_dir) == tree_digest(primary_dir)

    wait_until(equal_after_a_later_success, 90, interval=0.5, message="a later job to complete the copy")
    assert not list(under_test.secondary_agent.data_dir.rglob("*.tmp"))


def test_a_sharp_shrink_pauses_deletions_until_an_operator_confirms(make_cluster, operator_api):
    files = {f"catalog/item-{i}.txt": f"item {i}".encode() for i in range(10)}
    under_test = make_cluster("shrink", inventory=INVENTORY, files=files)
    primary_dir, secondary_dir = under_test.primary_agent.data_dir, under_test.secondary_agent.data_dir
    before = _last_job_id(under_test.cluster)

    for i in range(6):  # 60 % of the files
        (primary_dir / f"catalog/item-{i}.txt").unlink()
    operator_api.post(f"/api/v1/clusters/{under_test.cluster.pk}/replicate/")
    paused = _job_after(under_test.cluster, before)

    assert paused.state == "failed" and "deletions paused" in paused.error
    assert len(tree_digest(secondary_dir)) == 10  # nothing deleted yet
    failed = under_test.wait_event("replication_failed", 5)
    assert "deletions paused" in failed.message
    state = operator_api.get(f"/api/v1/clusters/{under_test.cluster.pk}/").json()["replication"]["state"]
    assert state == "deletions paused"

    response = operator_api.post(f"/api/v1/clusters/{under_test.cluster.pk}/confirm-deletions/")
    assert response.status_code == 202
    done = _job_after(under_test.cluster, paused.pk)

    assert done.state == "succeeded" and done.deleted == 6
    assert tree_digest(secondary_dir) == tree_digest(primary_dir)
    recovered = under_test.wait_event("replication_recovered", 5)
    assert recovered.recovers_id == failed.pk
    assert Cluster.objects.get(pk=under_test.cluster.pk).deletions_confirmed is False


def test_a_replication_failure_is_recovered_after_a_failover_swapped_the_roles(make_cluster, operator_api):
    # Found by the fault campaign (there after a switchover): the failure is recorded against the
    # job's secondary, and the first successful job after the roles swapped closed it only on the
    # new secondary, the other server: the failure stayed open for ever.
    files = {f"catalog/item-{i}.txt": f"item {i}".encode() for i in range(10)}
    under_test = make_cluster("fail-then-switch", inventory=INVENTORY, files=files)
    old_secondary = under_test.refresh().secondary
    before = _last_job_id(under_test.cluster)
    for i in range(6):  # a sharp shrink: the job stops before deleting, a failure
        (under_test.primary_agent.data_dir / f"catalog/item-{i}.txt").unlink()
    operator_api.post(f"/api/v1/clusters/{under_test.cluster.pk}/replicate/")
    assert _job_after(under_test.cluster, before).state == "failed"
    failed = under_test.wait_event("replication_failed", 5)
    assert failed.server_id == old_secondary.pk

    under_test.primary_agent.stop()  # the primary falls silent: a failover onto the secondary
    under_test.wait_state(lambda c: c.epoch == 2 and c.state != "failing_over", 30, "the failover")
    under_test.primary_agent.cont()
    under_test.wait_state(lambda c: c.state == "healthy" and not c.needs_resync, 60, "the old primary resynced")

    recovered = under_test.wait_event("replication_recovered", 10)
    assert recovered.recovers_id == failed.pk
    assert recovered.server_id == old_secondary.pk  # now the primary
    under_test.assert_never_two_primaries()


def test_a_returning_old_primary_is_resynced_and_its_own_files_are_quarantined(make_cluster):
    under_test = make_cluster("quarantine", inventory=INVENTORY, files=FILES)
    old, new = under_test.primary_agent, under_test.secondary_agent
    old.stop()  # cut off: it keeps running, unseen
    write_files(old.data_dir, {"media/written-while-cut-off.mp4": b"only on the old primary"})
    under_test.wait_state(lambda c: c.epoch == 2 and c.state != "failing_over", 30, "the failover")
    write_files(new.data_dir, {"media/after-failover.mp4": b"written on the new primary"})

    old.cont()
    under_test.wait_state(lambda c: c.state == "healthy" and not c.needs_resync, 60, "the resync")

    assert tree_digest(old.data_dir) == tree_digest(new.data_dir)
    quarantined = [p for p in old.state_dir.rglob("written-while-cut-off.mp4")]
    assert quarantined and quarantined[0].read_bytes() == b"only on the old primary"
    job = ReplicationJob.objects.filter(cluster=under_test.cluster, kind="resync", state="succeeded").first()
    assert job is not None and job.quarantined >= 1
    under_test.assert_never_two_primaries()


def test_a_switchover_during_a_sync_aborts_it_and_deletes_nothing_on_the_new_primary(make_cluster, operator_api):
    under_test = make_cluster("switch-mid-sync", inventory=INVENTORY, files=FILES, proxied=True)
    new_primary_dir = under_test.secondary_agent.data_dir
    held_before = tree_digest(new_primary_dir)
    wait_until(lambda: under_test.refresh().secondary.state == "up", 15, interval=0.1, message="the secondary up")
    # Files over 1 MiB travel one request each, and each waits 1 s at the primary's heartbeat proxy:
    # the sync surely outlasts the switchover's preflight, whatever the machine's speed.
    under_test.proxies[under_test.primary_agent.name]["heartbeat"].set("other", "slow")
    write_files(
        under_test.primary_agent.data_dir, {f"big/part-{i:04d}.bin": os.urandom(3 * 512 * 1024) for i in range(40)}
    )
    before = _last_job_id(under_test.cluster)

    operator_api.post(f"/api/v1/clusters/{under_test.cluster.pk}/replicate/")
    wait_until(
        lambda: (
            ReplicationJob.objects.filter(cluster=under_test.cluster, pk__gt=before, state="running")
            .exclude(files_done=0)
            .exists()
        ),
        30,
        interval=0.02,
        message="the sync under way",
    )
    response = operator_api.post(f"/api/v1/clusters/{under_test.cluster.pk}/switchover/")

    assert response.status_code == 202, response.content
    job = _job_after(under_test.cluster, before, timeout=40)
    assert job.state == "aborted"
    under_test.wait_state(lambda c: c.epoch == 2 and c.state != "failing_over", 30, "the switchover")
    held_after = tree_digest(new_primary_dir)
    assert all(path in held_after for path in held_before)  # nothing deleted on the new primary
    under_test.assert_never_two_primaries()


def test_corrupted_transfers_are_refused_retried_and_never_left_on_the_secondary(make_cluster, operator_api):
    under_test = make_cluster("corrupt", inventory=INVENTORY, files=FILES, proxied=True)
    proxy = under_test.proxies[under_test.primary_agent.name]["heartbeat"]
    primary_dir, secondary_dir = under_test.primary_agent.data_dir, under_test.secondary_agent.data_dir

    proxy.corrupt_times = 1  # each file's first transfer is damaged, the retry is clean
    proxy.set("other", "corrupt")
    write_files(primary_dir, {"media/once.mp4": os.urandom(128 * 1024)})
    before = _last_job_id(under_test.cluster)
    operator_api.post(f"/api/v1/clusters/{under_test.cluster.pk}/replicate/")
    retried = _job_after(under_test.cluster, before)

    assert retried.state == "succeeded" and proxy.corrupted
    assert tree_digest(secondary_dir) == tree_digest(primary_dir)

    proxy.corrupt_times = None  # every transfer damaged: the job fails, nothing damaged is kept
    write_files(primary_dir, {"media/always.mp4": os.urandom(128 * 1024)})
    operator_api.post(f"/api/v1/clusters/{under_test.cluster.pk}/replicate/")
    failed = _job_after(under_test.cluster, retried.pk)

    assert failed.state == "failed" and "always.mp4" in failed.error
    assert not (secondary_dir / "media/always.mp4").exists()
    assert not [p for p in secondary_dir.rglob("*") if p.is_file() and "sync-" in p.name]
    assert under_test.wait_event("replication_failed", 5).details["job"] == failed.pk
