"""The story of a real failover (real agents, workers and beat at the product's default timing), read
through the API and the pages: the primary is killed, the secondary takes over, the old primary comes
back, rejoins, is resynced and the cluster is healthy again. Every step is there in order with a
millisecond time and who decided, the outage the story derives agrees with the agents' serving logs,
and the failure, the failover and the recovery link to each other."""

import re
import socket

import pytest
from django.test import Client
from django.utils.dateparse import parse_datetime
from rest_framework.test import APIClient

from agent.clock import mono
from cluster.models import Incident
from tests.factories import UserFactory
from tests.support.agents import wait_until

pytestmark = pytest.mark.integration

MS = re.compile(r"T\d\d:\d\d:\d\d\.\d{3}")
UNIX_TIME = re.compile(r"\b1[6-9]\d{8}(\.\d+)?\b")
# The pipeline's main line, in order (other steps come between them).
MAIN_LINE = [
    "last_answer",
    "missed",
    "failure",
    "requested",
    "claimed",
    "fenced",
    "witness",
    "candidacy",
    "wait",
    "promoted",
    "committed",
    "demoted",
    "healthy",
]


@pytest.fixture
def viewer(transactional_db):
    return UserFactory(username="victor-viewer", role="viewer")


def api_for(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def the_story(api: APIClient, cluster_id: int) -> dict:
    listed = api.get("/api/v1/incidents/", {"cluster": cluster_id}).json()["results"]
    stories = [api.get(f"/api/v1/incidents/{row['id']}/").json() for row in listed]
    assert len(stories) == 1, [(s["cause"], s["state"], s["summary"], [t["kind"] for t in s["steps"]]) for s in stories]
    return stories[0]


def measured_outage(under_test, killed_at: float) -> float:
    """From the agents' serving logs: the old primary served until it was killed (or its lease
    ended, if sooner); the new one from its first serving interval."""
    old_end = min(
        [killed_at, *(end for start, end in under_test.primary_agent.serving_intervals() if start < killed_at)]
    )
    new_start = min(start for start, _ in under_test.secondary_agent.serving_intervals() if start >= killed_at)
    return new_start - old_end


def test_a_killed_primary_is_told_from_its_last_answer_to_healthy_again(make_cluster, viewer):
    under_test = make_cluster("story", files={"media/a.mp4": b"a" * 1000})
    cluster = under_test.cluster
    old, new = under_test.primary_agent, under_test.secondary_agent
    under_test.wait_both_heard()  # so that the story has a last answer from the primary

    killed_at = mono()
    old.kill()
    under_test.wait_state(lambda c: c.epoch == 2 and c.state != "failing_over", 30, "the failover")
    new.wait_primary_status(200, timeout=5)
    old.start()  # its state directory still says primary at epoch 1: it must rejoin as secondary
    old.wait_ready()
    under_test.wait_state(lambda c: c.state == "healthy" and not c.needs_resync, 60, "the cluster healthy again")
    wait_until(lambda: the_story(api_for(viewer), cluster.pk)["state"] == "healthy", 10, interval=0.2, message="closed")

    story = the_story(api_for(viewer), cluster.pk)
    kinds = [step["kind"] for step in story["steps"]]
    assert set(MAIN_LINE) <= set(kinds), (kinds, Incident.objects.get(pk=story["id"]).detection)
    positions = [kinds.index(kind) for kind in MAIN_LINE]
    assert positions == sorted(positions), kinds
    assert kinds.count("missed") >= cluster.missed_heartbeats_threshold
    for later in ("rejoined", "recovered", "resync_started", "resync_finished"):
        assert kinds.index("committed") < kinds.index(later) < kinds.index("healthy"), kinds
    assert all(MS.search(step["at"]) for step in story["steps"])
    offsets = [step["offset_s"] for step in story["steps"]]
    assert offsets == sorted(offsets) and offsets[0] == 0.0
    steps = {step["kind"]: step for step in story["steps"]}
    host = socket.gethostname()
    assert steps["missed"]["actor"].startswith(f"heartbeat worker on {host} (pid ")
    assert steps["claimed"]["actor"].startswith(f"failover worker on {host} (pid ")
    assert steps["rejoined"]["actor"].startswith(f"default worker on {host} (pid ")
    assert steps["resync_started"]["actor"].startswith("replication job #")
    assert f"{cluster.missed_heartbeats_threshold} heartbeats missed in a row" in steps["failure"]["evidence"]
    assert "The lease of" in steps["wait"]["evidence"] and "ran out at" in steps["wait"]["evidence"]
    assert "did not take its demotion" in steps["demoted"]["evidence"]  # it was dead
    for step in story["steps"]:
        assert not UNIX_TIME.search(step["evidence"]), step

    # The outage, as derived, against what the agents' logs say users saw.
    outage = story["outage"]
    measured = measured_outage(under_test, killed_at)
    assert outage["bound"] == "at_most"
    assert measured - 0.05 <= outage["seconds"] <= measured + cluster.heartbeat_interval + 0.5, (outage, measured)
    # A killed primary stopped before the first slot it missed (give or take a slot's dispatch lag).
    first_missed = steps["missed"]["at"]
    since_first_miss = (parse_datetime(outage["end"]) - parse_datetime(first_missed)).total_seconds()
    assert measured >= since_first_miss - cluster.heartbeat_interval / 2, (outage, first_missed, measured)
    assert f"at most {outage['seconds']:g} s" in story["summary"]

    # failure ↔ failover ↔ recovery, in the API and on each event's page.
    assert [event["role"] for event in story["events"]] == ["failure", "failover", "recovery"]
    ids = [event["id"] for event in story["events"]]
    pages = Client()
    pages.force_login(viewer)
    for event_id in ids:
        page = pages.get(f"/alerts/{event_id}/").content.decode()
        assert "The incident of this event" in page
        assert all(f'href="/alerts/{other}/"' in page for other in ids)
        assert not UNIX_TIME.search(page)
        assert api_for(viewer).get("/api/v1/incidents/", {"event": event_id}).json()["count"] == 1
    page = pages.get(f"/clusters/{cluster.pk}/").content.decode()
    assert "Last incident" in page and f"took over from {old.name}" in page and not UNIX_TIME.search(page)
    under_test.assert_never_two_primaries()


def test_a_switchover_names_the_operator_and_ends_healthy(make_cluster, viewer):
    under_test = make_cluster("story-switch")
    under_test.wait_both_heard()
    operator = api_for(UserFactory(username="oscar-operator", role="operator"))

    assert operator.post(f"/api/v1/clusters/{under_test.cluster.pk}/switchover/").status_code == 202
    cluster = under_test.wait_state(lambda c: c.epoch == 2 and c.state == "healthy", 30, "the switchover")

    story = the_story(api_for(viewer), cluster.pk)
    kinds = [step["kind"] for step in story["steps"]]
    assert story["state"] == "healthy" and story["cause"] == "switchover"
    assert kinds[0] == "requested" and story["steps"][0]["actor"] == "operator oscar-operator"
    order = [kinds.index(kind) for kind in ("claimed", "witness", "candidacy", "demoted", "wait", "promoted")]
    assert order == sorted(order) and kinds[-2:] == ["committed", "healthy"]
    assert "acknowledged its demotion" in {s["kind"]: s for s in story["steps"]}["wait"]["evidence"]
    assert 0 < story["outage"]["seconds"] < cluster.effective_lease_s
    assert [event["role"] for event in story["events"]] == ["failover"]
    under_test.assert_never_two_primaries()
