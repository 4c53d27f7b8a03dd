"""An incident's story on the cluster page, on its own page, on each of its events' pages and in the
API (GET /api/v1/incidents/): readable (millisecond times, words and units, no raw JSON and no Unix
seconds) and linking the failure, the failover and the recovery both ways. Rows as the workers write
them; tests/failover/test_failover_story.py makes them with real agents."""

import re
from datetime import UTC, datetime

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from alerts.choices import SEVERITY_OF
from alerts.models import Event
from cluster.choices import IncidentOutcome, StepKind
from cluster.models import Incident, IncidentStep
from tests.cluster.test_story import FAILOVER_WORKER, HEARTBEAT_WORKER, T0, failover_steps, missed_heartbeats
from tests.factories import ClusterFactory

UNIX_TIME = re.compile(r"\b1[6-9]\d{8}(\.\d+)?\b")
MS_TIME = re.compile(r"\d\d:\d\d:\d\d\.\d{3}")


def at(offset: float) -> datetime:
    return datetime.fromtimestamp(T0 + offset, tz=UTC)


def event(cluster, event_type: str, offset: float, server, details=None) -> Event:
    made = Event.objects.create(
        type=event_type,
        severity=SEVERITY_OF[event_type],
        cluster=cluster,
        server=server,
        message=f"{event_type} of {cluster.name}",
        details=details or {},
    )
    Event.objects.filter(pk=made.pk).update(created_at=at(offset))
    made.refresh_from_db()
    return made


@pytest.fixture
def failed_over(db):
    """A failover after missed heartbeats, from the last answer to healthy again, as recorded."""
    cluster = ClusterFactory(name="signs-hq")
    old, new = cluster.primary, cluster.secondary
    failure = event(cluster, "server_failed", 6.003, old, missed_heartbeats())
    failover = event(
        cluster,
        "failover_completed",
        6.09,
        new,
        {"cause": "missed_heartbeats", "last_grant_at": T0 + 0.5, "lease_deadline": T0 + 4.85, "duration_s": 0.07},
    )
    recovery = event(cluster, "server_recovered", 42.0, old, {"consecutive_answers": 2})
    Event.objects.filter(pk=recovery.pk).update(recovers=failure)
    detection = missed_heartbeats(failure_event=failure.pk)
    incident = Incident.objects.create(
        cluster=cluster,
        cause="missed_heartbeats",
        opened_at=at(2.0),
        closed_at=at(52.0),
        outcome=IncidentOutcome.HEALTHY,
        from_epoch=1,
        old_primary=old,
        new_primary=new,
        detection=detection,
        failure_event=failure,
    )
    events = {12: failover.pk, 13: recovery.pk}
    for step in failover_steps():
        step.incident = incident
        step.event_id = events.get(step.event_id)
        facts = dict(step.facts)
        for key in ("server", "secondary"):
            if key in facts:
                facts[key] = {"dmm-a": old.name, "dmm-b": new.name}[facts[key]]
        step.facts = facts
        step.save()
    return {"cluster": cluster, "incident": incident, "failure": failure, "failover": failover, "recovery": recovery}


def pages_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def assert_readable(page: str) -> None:
    assert not UNIX_TIME.search(page), UNIX_TIME.search(page)
    assert "&quot;" not in page and "{&#x27;" not in page  # no JSON, no Python dicts


def test_the_cluster_page_tells_the_last_incident_step_by_step(viewer_user, failed_over):
    cluster, incident = failed_over["cluster"], failed_over["incident"]
    old, new = cluster.primary.name, cluster.secondary.name

    page = pages_for(viewer_user).get(f"/clusters/{cluster.pk}/").content.decode()

    assert "Last incident" in page
    assert f"Failover of signs-hq: {new} took over from {old}" in page
    assert "users were without service for at most 5.08 s" in page
    assert "How it is measured" in page and "acknowledged its promotion" in page
    titles = [
        "Last answer from the primary",
        "Missed heartbeat 1 of 3",
        "Missed heartbeat 3 of 3",
        "Server failed",
        "Failover requested",
        "Claimed",
        "Grants fenced",
        "Second witness",
        "Candidacy",
        "Lease wait",
        "Promoted",
        "Committed",
        "Old primary not reached",
        "Rejoined as secondary",
        "Server answers again",
        "Healthy again",
    ]
    positions = [page.index(f'<td class="title nowrap">{title}') for title in titles]
    assert positions == sorted(positions)
    assert len(MS_TIME.findall(page)) >= len(titles)
    assert FAILOVER_WORKER in page and HEARTBEAT_WORKER in page
    assert f'href="/clusters/{cluster.pk}/incidents/{incident.pk}/"' in page
    for linked in ("failure", "failover", "recovery"):
        assert f'href="/alerts/{failed_over[linked].pk}/"' in page
    assert_readable(page)


@pytest.mark.parametrize("this", ["failure", "failover", "recovery"])
def test_each_event_of_the_incident_tells_it_and_links_the_others(viewer_user, failed_over, this):
    page = pages_for(viewer_user).get(f"/alerts/{failed_over[this].pk}/").content.decode()

    assert "The incident of this event" in page and "Promoted" in page
    assert "(this event)" in page
    for other in ("failure", "failover", "recovery"):
        assert f'href="/alerts/{failed_over[other].pk}/"' in page
    assert_readable(page)


def test_an_event_outside_any_incident_has_no_story(viewer_user, failed_over):
    lonely = event(failed_over["cluster"], "component_failed", 90.0, failed_over["cluster"].secondary)

    page = pages_for(viewer_user).get(f"/alerts/{lonely.pk}/").content.decode()

    assert "The incident of this event" not in page


def test_the_incident_has_a_page_of_its_own(viewer_user, outsider_user, failed_over):
    cluster, incident = failed_over["cluster"], failed_over["incident"]
    url = f"/clusters/{cluster.pk}/incidents/{incident.pk}/"

    page = pages_for(viewer_user).get(url).content.decode()

    assert "The story" in page and "Healthy again" in page
    assert f'href="/api/v1/incidents/{incident.pk}/"' in page
    assert_readable(page)
    other = ClusterFactory()
    assert pages_for(viewer_user).get(f"/clusters/{other.pk}/incidents/{incident.pk}/").status_code == 404
    assert pages_for(outsider_user).get(url).status_code == 403
    assert Client().get(url).status_code == 302


def test_earlier_incidents_are_listed_under_the_last_one(viewer_user, failed_over):
    cluster = failed_over["cluster"]
    later = Incident.objects.create(
        cluster=cluster,
        cause="switchover",
        opened_at=at(600.0),
        from_epoch=2,
        old_primary=cluster.secondary,
        new_primary=cluster.primary,
        detection={"cause": "switchover", "requested_at": T0 + 600, "requested_by": "alice"},
    )
    IncidentStep.objects.create(incident=later, kind=StepKind.CLAIMED, at=at(600.01), actor=FAILOVER_WORKER)

    page = pages_for(viewer_user).get(f"/clusters/{cluster.pk}/").content.decode()

    assert "operator alice" in page and "Earlier incidents" in page
    assert f'href="/clusters/{cluster.pk}/incidents/{failed_over["incident"].pk}/"' in page
    assert "at most 5.08 s" in page and "Healthy again" in page


def test_a_cluster_without_incidents_says_so(viewer_user, db):
    cluster = ClusterFactory()

    page = pages_for(viewer_user).get(f"/clusters/{cluster.pk}/").content.decode()

    assert "No failover or switchover yet" in page


# -- the API


def test_the_api_lists_incidents_with_their_outage(viewer_api, failed_over):
    answer = viewer_api.get("/api/v1/incidents/", {"cluster": failed_over["cluster"].pk}).json()

    assert answer["count"] == 1
    listed = answer["results"][0]
    assert listed["id"] == str(failed_over["incident"].pk)
    assert listed["state"] == "healthy" and listed["cause"] == "missed_heartbeats"
    assert listed["outage_s"] == pytest.approx(5.08)
    assert listed["failure_event"] == failed_over["failure"].pk


@pytest.mark.parametrize("this", ["failure", "failover", "recovery"])
def test_the_api_finds_the_incident_of_an_event(viewer_api, failed_over, this):
    answer = viewer_api.get("/api/v1/incidents/", {"event": failed_over[this].pk}).json()

    assert [row["id"] for row in answer["results"]] == [str(failed_over["incident"].pk)]


def test_the_api_tells_the_whole_story(viewer_api, failed_over):
    story = viewer_api.get(f"/api/v1/incidents/{failed_over['incident'].pk}/").json()

    kinds = [step["kind"] for step in story["steps"]]
    assert kinds[:6] == ["last_answer", "missed", "missed", "missed", "failure", "requested"]
    assert kinds.index("claimed") < kinds.index("wait") < kinds.index("promoted") < kinds.index("healthy")
    promoted = story["steps"][kinds.index("promoted")]
    assert all(re.search(r"T\d\d:\d\d:\d\d\.\d{3}Z$", step["at"]) for step in story["steps"])
    assert story["steps"][0]["at"].endswith(":30.000Z")  # a slot on a whole second keeps its milliseconds
    assert promoted["offset_s"] == 6.08 and promoted["actor"] == FAILOVER_WORKER
    assert promoted["facts"]["answered_at"].endswith(".080Z")
    assert "serves from then" in promoted["evidence"]
    assert story["outage"]["seconds"] == pytest.approx(5.08) and story["outage"]["bound"] == "at_most"
    assert [e["role"] for e in story["events"]] == ["failure", "failover", "recovery"]
    committed = story["steps"][kinds.index("committed")]
    assert committed["event"] == failed_over["failover"].pk
    assert story["summary"].startswith(f"{failed_over['cluster'].secondary.name} took over")


def test_the_api_refuses_outsiders_and_bad_filters(anonymous_api, outsider_api, viewer_api, failed_over):
    url = f"/api/v1/incidents/{failed_over['incident'].pk}/"

    assert anonymous_api.get(url).status_code in (401, 403)
    assert outsider_api.get("/api/v1/incidents/").status_code == 403
    assert viewer_api.get("/api/v1/incidents/00000000-0000-0000-0000-000000000000/").status_code == 404
    assert viewer_api.get("/api/v1/incidents/not-a-uuid/").status_code == 404
    assert viewer_api.get("/api/v1/incidents/", {"event": "x"}).status_code == 400
    assert viewer_api.get("/api/v1/incidents/", {"cause": "gremlins"}).status_code == 400
    assert viewer_api.get("/api/v1/incidents/", {"open": "null"}).status_code == 400
    assert viewer_api.get("/api/v1/incidents/", {"since": "yesterday"}).status_code == 400
    assert viewer_api.get("/api/v1/incidents/", {"open": "true"}).json()["count"] == 0
    assert viewer_api.get("/api/v1/incidents/", {"open": "false"}).json()["count"] == 1


def test_the_list_and_the_cluster_page_cost_the_same_queries_for_1_and_20_incidents(viewer_api, viewer_user, db):
    cluster = ClusterFactory()
    pages = pages_for(viewer_user)

    def add_incidents(count: int) -> None:
        for n in range(count):
            incident = Incident.objects.create(
                cluster=cluster,
                cause="missed_heartbeats",
                opened_at=at(1000.0 * n),
                from_epoch=n + 1,
                old_primary=cluster.primary,
                new_primary=cluster.secondary,
                detection=missed_heartbeats(),
            )
            for step in failover_steps()[:7]:
                step.incident, step.event_id = incident, None
                step.save()

    def queries(client, url: str) -> int:
        with CaptureQueriesContext(connection) as context:
            assert client.get(url).status_code == 200
        return len(context.captured_queries)

    add_incidents(1)
    viewer_api.get("/api/v1/incidents/")
    few = {
        url: queries(client, url)
        for client, url in ((viewer_api, "/api/v1/incidents/"), (pages, f"/clusters/{cluster.pk}/"))
    }
    add_incidents(19)

    assert {
        url: queries(client, url)
        for client, url in ((viewer_api, "/api/v1/incidents/"), (pages, f"/clusters/{cluster.pk}/"))
    } == few
