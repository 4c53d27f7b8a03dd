"""A real switchover through dmsctl: two real agents, the session's control plane (workers and
beat) and the web app; dmsctl waits for the outcome and reports the new primary, and the audit
log names the operator who asked, from dmsctl."""

import json

import pytest

from audit.models import AuditEntry
from tests.support.agents import wait_until

from .conftest import Dmsctl, token_for

pytestmark = pytest.mark.integration


def test_dmsctl_switches_over_and_waits_for_the_outcome(make_cluster, web, tmp_path):
    under_test = make_cluster("cli-switch")
    wait_until(lambda: under_test.refresh().secondary.state == "up", 15, interval=0.1, message="the secondary up")
    wait_until(lambda: under_test.refresh().replication_current(), 30, interval=0.2, message="replication current")
    dmsctl = Dmsctl(tmp_path, web, token_for("operator", "oscar-operator"))
    old_primary, old_secondary = under_test.primary_agent.name, under_test.secondary_agent.name

    result = dmsctl("switchover", "cli-switch", "--timeout", "60")

    assert result.returncode == 0, (result.stdout, result.stderr)
    assert result.stdout.startswith("Switchover of cli-switch completed:")
    assert f"{old_secondary} is now the primary of cluster cli-switch (epoch 2)" in result.stdout
    cluster = under_test.refresh()
    assert (cluster.primary.name, cluster.secondary.name, cluster.epoch) == (old_secondary, old_primary, 2)
    under_test.secondary_agent.wait_primary_status(200, timeout=5)
    under_test.assert_never_two_primaries()
    entry = AuditEntry.objects.get(action="switchover")
    assert (entry.username, entry.source, entry.details["outcome"]) == ("oscar-operator", "cli", "started")

    status = json.loads(dmsctl("status", "cli-switch", "--json").stdout)
    assert status["cluster"]["epoch"] == 2
    assert status["servers"]["primary"]["name"] == old_secondary
    assert status["events"][0]["type"] == "switchover_completed"

    again = dmsctl("switchover", "cli-switch", "--no-wait")
    wait_until(lambda: under_test.refresh().epoch == 3, 30, interval=0.2, message="the second switchover")
    assert (again.returncode, again.stdout.strip()) == (
        0,
        "Switchover of cli-switch started (not waiting for its outcome).",
    ), again.stderr
