"""The fault matrix: PostgreSQL restarted during a failover (the worker paused before promotion
loses its database mid-claim). The scenario runs in a subprocess against a private PostgreSQL
cluster (tests/faults/pg_restart_scenario.py), so that this suite's own connections survive; it
also checks that every event reached its notification receivers at least once."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.conf import settings

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(not shutil.which("pg_createcluster"), reason="needs Debian's postgresql-common")
def test_a_postgresql_restart_during_a_failover_ends_in_one_promotion(control_plane):
    # `control_plane` only to order this after the shared control plane started: the scenario's own
    # workers use another Redis database (5), hence another broker, and another PostgreSQL.
    redis_url = urlsplit(settings.REDIS_URL)._replace(path="/5").geturl()
    completed = subprocess.run(
        [sys.executable, "-m", "tests.faults.pg_restart_scenario"],
        cwd=ROOT,
        env={**os.environ, "FAULTS_REDIS_URL": redis_url},
        capture_output=True,
        text=True,
        timeout=300,
    )
    lines = [line for line in completed.stdout.splitlines() if line.startswith("{")]
    assert lines, completed.stdout[-2000:] + completed.stderr[-4000:]
    result = json.loads(lines[-1])

    assert "error" not in result, result.get("error")
    assert result == {"epoch": 2, "primary": "pg-b", "failovers_completed": 1, "no_overlap": True, "notified": True}
