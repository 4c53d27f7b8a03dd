"""`manage.py seed_demo`, what `make run` seeds (issue 12): each demo server's `web_url` is its
appliance's demo page, and a cluster the database does not hold yet starts on agents without the
role, epoch and files an earlier database left in the run folder."""

import io
import json
from pathlib import Path

import pytest
from django.core.management import call_command

from cluster.models import Cluster, Server

SERVERS = ("dmm-demo-a", "dmm-demo-b", "sns-demo-a", "sns-demo-b")


def seed(run_dir: Path) -> str:
    out = io.StringIO()
    call_command("seed_demo", run_dir=str(run_dir), stdout=out)
    return out.getvalue()


def left_by_a_failover(run_dir: Path, name: str) -> list[Path]:
    """What an agent of an earlier database keeps: its role at a later epoch, a replicated file."""
    state = run_dir / "agents" / name / "state" / "state.json"
    state.write_text(json.dumps({"role": "primary", "epoch": 2, "seq": 6}))
    replicated = run_dir / "agents" / name / "data" / "signs" / "replicated.json"
    replicated.parent.mkdir(parents=True, exist_ok=True)
    replicated.write_text("{}")
    return [state, replicated]


@pytest.mark.django_db
def test_each_demo_server_leads_to_its_own_appliance_page(tmp_path: Path) -> None:
    seed(tmp_path)
    agents = json.loads((tmp_path / "demo.json").read_text())["agents"]

    web_urls = {server.name: server.web_url for server in Server.objects.filter(name__in=SERVERS)}
    assert web_urls == {name: f"http://127.0.0.1:{agents[name]['app_port']}/" for name in SERVERS}
    assert len({agent["app_port"] for agent in agents.values()}) == len(SERVERS)
    assert agents["sns-demo-b"]["cluster"] == "sns-demo"
    assert agents["sns-demo-b"]["application"] == "Show and Share"


@pytest.mark.django_db
def test_the_same_database_keeps_what_its_agents_hold(tmp_path: Path) -> None:
    seed(tmp_path)
    kept = left_by_a_failover(tmp_path, "dmm-demo-b")

    output = seed(tmp_path)

    assert all(path.exists() for path in kept)
    assert "cleared" not in output


@pytest.mark.django_db
def test_a_new_database_starts_its_clusters_on_agents_without_a_past(tmp_path: Path) -> None:
    seed(tmp_path)
    stale = left_by_a_failover(tmp_path, "dmm-demo-b")
    Cluster.objects.all().delete()
    Server.objects.all().delete()  # a new database: `make clean`, or another DATABASE_URL

    output = seed(tmp_path)

    assert not any(path.exists() for path in stale)
    assert "cleared dmm-demo-b's folder, left from an earlier database" in output
    assert (tmp_path / "agents" / "dmm-demo-a" / "data" / "README.txt").exists()  # the primary's demo files again
    assert (tmp_path / "agents" / "dmm-demo-b" / "inventory.json").exists()
    assert Cluster.objects.get(name="dmm-demo").epoch == 1
