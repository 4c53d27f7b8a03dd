"""`manage.py seed_demo`: the demo deployment that `make run` (the `demo` package) starts.

Idempotent: a second run keeps what exists, reuses the stored password, tokens and ports, and only
moves a server's URLs (and re-configures its cluster) when one of its stored ports was taken.

Everything it generates lives in the run folder (default `run/`):

* `admin-password`  the password of the `admin` user (printed by `make run`)
* `demo.json`       the four agents: name, cluster, application, ports (heartbeat, intranet, and the port of the
                    appliance's demo application, the server's `web_url`), token, directories,
                    inventory file
* `agents/<name>/`  each agent's `data/` (demo files on the primaries), `state/` and `inventory.json`

A cluster it creates starts on agents without a past: what `agents/<name>/` held from an earlier
database (a role at another epoch, replicated files) is deleted first, as a new appliance would be
installed empty.

It also keeps two notification rules sending every event to the demo's sinks: an email rule (the
demo points the workers' SMTP settings at its mail sink) and, given `--trap-port`, an SNMPv2c trap
rule to the demo's snmptrapd on that port; without `--trap-port` an existing trap rule is disabled.
"""

from __future__ import annotations

import copy
import json
import os
import secrets
import shutil
import socket
from datetime import date
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand
from django.db import transaction

from alerts.choices import Channel, EventType, Severity, SnmpVersion
from alerts.models import NotificationRule
from cluster.choices import Application, ClusterState, DeploymentKind
from cluster.hardware import EXAMPLE
from cluster.models import Cluster, Deployment, Server
from cluster.tasks import configure_cluster
from licensing.models import License, SoftwareModule, Source

HOST = "127.0.0.1"
PORTS = ("heartbeat_port", "intranet_port", "app_port")
DEPLOYMENT = "demo"
MAIL_RULE = "Demo mail sink"
TRAP_RULE = "Demo trap log"
RECIPIENT = "admin@demo.local"
# The product's defaults: the demo shows what a cluster does when nobody tunes it (an older demo
# database made at other timings is brought back to these, through the same ordered settings
# command an administrator's change goes through).
TIMING = {
    "heartbeat_interval": 2.0,
    "missed_heartbeats_threshold": 3,
    "lease_s": None,
    "max_grant_delay": 0.25,
    "max_clock_skew": 0.1,
}
CONFIGURATION = {
    "time_zone": "Europe/Brussels",
    "ntp_servers": ["0.pool.ntp.org", "1.pool.ntp.org"],
    "dns_servers": ["192.0.2.53"],
    "smtp_relay": "smtp.example.com",
    "snmp": {"community": "demo", "trap_host": "192.0.2.162"},
}
CLUSTERS = [
    {
        "name": "dmm-demo",
        "application": Application.DMM,
        "parts": ("DMM-SVR-C210-K9", "DMM-FA-C210-K9"),
        "licenses": [
            ("Digital Media Manager", "DMM-DEMO-7Q2X-41KD", 1),
            ("Digital Signs endpoints", "DS-DEMO-93LM-0PZA", 50),
            ("Enterprise TV", "ETV-DEMO-55RT-8WQE", 1),
        ],
        "modules": [("Digital Signs", "5.2.3"), ("Enterprise TV", "5.2.3"), ("Cast", "5.2.3")],
        "files": {
            "signs/lobby-playlist.json": json.dumps(
                {"name": "Lobby", "items": ["welcome.png", "news-ticker", "weather"]}, indent=2
            )
            + "\n",
            "signs/schedule.xml": '<schedule><slot start="08:00" end="18:00" playlist="Lobby"/></schedule>\n',
            "README.txt": "Demo data of the DMM primary; replication jobs copy it to the secondary.\n",
        },
    },
    {
        "name": "sns-demo",
        "application": Application.SNS,
        "parts": ("SNS-SVR-C210EN-K9", "SNS-FA-C210EN-K9"),
        "licenses": [
            ("Show and Share Enterprise", "SNS-DEMO-2HJ8-KK4D", 1),
            ("Show and Share users", "SNSU-DEMO-71PO-3MNB", 500),
        ],
        "modules": [("Video Portal", "5.2.3"), ("Live Events", "5.2.3")],
        "files": {
            "videos/town-hall-2024.meta.json": json.dumps(
                {"title": "Town hall 2024", "duration_s": 3120, "category": "Company"}, indent=2
            )
            + "\n",
            "videos/onboarding.meta.json": json.dumps(
                {"title": "Onboarding", "duration_s": 900, "category": "HR"}, indent=2
            )
            + "\n",
            "README.txt": "Demo data of the SNS primary; replication jobs copy it to the secondary.\n",
        },
    },
]


def _port_free(port: int) -> bool:
    """Nobody listens on it (SO_REUSEADDR, as the agent and runserver bind, so TIME_WAIT is fine)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((HOST, port))
        except OSError:
            return False
        return True


def _new_ports(count: int, avoid: set[int]) -> list[int]:
    """`count` distinct free loopback ports, none in `avoid` (sockets held until all are chosen)."""
    held, ports = [], []
    try:
        while len(ports) < count:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((HOST, 0))
            held.append(s)
            port = s.getsockname()[1]
            if port not in avoid and port not in ports:
                ports.append(port)
    finally:
        for s in held:
            s.close()
    return ports


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


class Command(BaseCommand):
    help = "Create (or bring up to date) the demo deployment that `make run` starts; idempotent."

    def add_arguments(self, parser):
        parser.add_argument(
            "--run-dir", default=str(Path(settings.BASE_DIR) / "run"), help="Run folder (default: run/)."
        )
        parser.add_argument("--trap-port", type=int, help="UDP port of the demo's snmptrapd on 127.0.0.1.")

    def handle(self, *args, run_dir, trap_port, **options):
        self.run_dir = Path(run_dir).resolve()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.spec_path = self.run_dir / "demo.json"
        spec = json.loads(self.spec_path.read_text()) if self.spec_path.exists() else {}
        agents = spec.get("agents", {})

        password = self._admin()
        agents = self._agent_specs(agents)
        with transaction.atomic():
            deployment, created = Deployment.objects.get_or_create(
                name=DEPLOYMENT,
                defaults={
                    "kind": DeploymentKind.SHOW_AND_SHARE,
                    "description": "Demo: a DMM cluster and an SNS cluster on local agents (make run).",
                },
            )
            self._say(f"deployment {deployment.name}", created)
            for definition in CLUSTERS:  # DMM first: a Show and Share deployment needs it
                self._cluster(definition, deployment, agents)
            self._rules(trap_port)
        _write_private(self.spec_path, json.dumps({"agents": agents}, indent=2) + "\n")
        self.stdout.write(f"Demo seeded: admin password in {self.run_dir / 'admin-password'} ({len(password)} chars).")

    # -- pieces ------------------------------------------------------------------------------

    def _say(self, what: str, created: bool) -> None:
        self.stdout.write(("created " if created else "kept ") + what)

    def _admin(self) -> str:
        path = self.run_dir / "admin-password"
        password = path.read_text().strip() if path.exists() else ""
        if not password:
            password = secrets.token_urlsafe(12)
            _write_private(path, password + "\n")
        user, created = get_user_model().objects.get_or_create(
            username="admin", defaults={"email": "admin@localhost", "is_staff": True, "is_superuser": True}
        )
        changed = created or not (user.is_staff and user.is_superuser and user.is_active)
        user.is_staff = user.is_superuser = user.is_active = True
        if not user.check_password(password):
            user.set_password(password)
            changed = True
        if changed:
            user.save()
        group = Group.objects.filter(name="admin").first()  # the roles' groups come from a migration
        if group is not None:
            user.groups.add(group)
        self._say("user admin", created)
        return password

    def _agent_specs(self, stored: dict) -> dict:
        """Four agents: <cluster>-a (primary) and <cluster>-b (secondary), ports reused when free."""
        names = [(c, f"{c['name']}-{suffix}") for c in CLUSTERS for suffix in ("a", "b")]
        specs: dict[str, dict] = {}
        used: set[int] = set()
        for cluster, name in names:
            old = stored.get(name, {})
            base = self.run_dir / "agents" / name
            spec = {
                "name": name,
                "cluster": cluster["name"],
                "application": Application(cluster["application"]).label,
                "token": old.get("token") or secrets.token_urlsafe(32),
                "data_dir": str(base / "data"),
                "state_dir": str(base / "state"),
                "inventory": str(base / "inventory.json"),
            }
            for key in PORTS:
                port = old.get(key)
                if isinstance(port, int) and port not in used and _port_free(port):
                    spec[key] = port
                    used.add(port)
            specs[name] = spec
        for spec in specs.values():
            for key in PORTS:
                if key not in spec:
                    (port,) = _new_ports(1, used)
                    spec[key] = port
                    used.add(port)
                    if stored:
                        self.stdout.write(f"{spec['name']}: {key.replace('_', ' ')} is now {port}")
        return specs

    def _server(self, name: str, application: str, part: str, agent: dict) -> tuple[Server, bool]:
        """The server of one agent, and whether its agent moved (its cluster must be re-configured)."""
        urls = {
            "heartbeat_url": f"http://{HOST}:{agent['heartbeat_port']}",
            "intranet_url": f"http://{HOST}:{agent['intranet_port']}",
        }
        web_url = f"http://{HOST}:{agent['app_port']}/"  # the appliance's demo application (/go/ leads there)
        server = Server.objects.filter(name=name).first()
        if server is None:
            server = Server(
                name=name,
                application=application,
                part_number=part,
                hardware=copy.deepcopy(EXAMPLE),
                agent_token=agent["token"],
                web_url=web_url,
                **urls,
            )
            server.full_clean()
            server.save()
            self._say(f"server {name}", True)
            return server, True
        moved = any(getattr(server, field) != value for field, value in urls.items())
        if moved or server.agent_token != agent["token"] or server.web_url != web_url:
            for field, value in urls.items():
                setattr(server, field, value)
            server.agent_token, server.web_url = agent["token"], web_url
            server.save(update_fields=[*urls, "agent_token", "web_url"])
            self.stdout.write(f"updated server {name}: {urls['heartbeat_url']}, {urls['intranet_url']}, {web_url}")
        else:
            self._say(f"server {name}", False)
        return server, moved

    def _cluster(self, definition: dict, deployment: Deployment, agents: dict) -> None:
        name, application = definition["name"], definition["application"]
        primary_part, failover_part = definition["parts"]
        # `-a` is the first primary; after a failover the cluster row says which one is primary now.
        first, moved_a = self._server(f"{name}-a", application, primary_part, agents[f"{name}-a"])
        second, moved_b = self._server(f"{name}-b", application, failover_part, agents[f"{name}-b"])

        cluster = Cluster.objects.filter(name=name).first()
        if cluster is None:
            self._forget_agents(agents[first.name], agents[second.name])
            cluster = Cluster(
                name=name,
                application=application,
                deployment=deployment,
                primary=first,
                secondary=second,
                **TIMING,
            )
            cluster.full_clean()
            cluster.save()  # queues configure_cluster once committed (cluster/signals.py)
            self._say(f"cluster {name} (configured by the workers once they start)", True)
        else:
            timing = {field: value for field, value in TIMING.items() if getattr(cluster, field) != value}
            if timing:
                for field, value in timing.items():
                    setattr(cluster, field, value)
                cluster.save()  # cluster/signals.py sends the change to both agents
            reconfigure = moved_a or moved_b or cluster.state == ClusterState.SYNCING
            if reconfigure:
                transaction.on_commit(lambda pk=cluster.pk: configure_cluster.delay(pk))
            note = f"epoch {cluster.epoch}, {cluster.state}" + (", re-configuring its agents" if reconfigure else "")
            self._say(f"cluster {name} ({note})", False)

        self._licenses(definition, first)
        self._agent_files(definition, first, second, agents)

    def _forget_agents(self, *specs: dict) -> None:
        """A new cluster's agents start empty: a role, epoch and files they kept from an earlier
        database would belong to a cluster this database never had."""
        for spec in specs:
            folder = self.run_dir / "agents" / spec["name"]
            if folder.exists():
                shutil.rmtree(folder)
                self.stdout.write(f"cleared {spec['name']}'s folder, left from an earlier database")

    def _rules(self, trap_port: int | None) -> None:
        """Every event to the mail sink and the trap log. A rule an operator edited keeps its edits,
        except the trap rule's address and on/off, which follow the demo's snmptrapd (a new free
        port each run, none when it is not installed)."""
        everything = {"event_types": list(EventType.values), "min_severity": Severity.INFO}
        mail = NotificationRule.objects.filter(name=MAIL_RULE).first()
        if mail is None:
            mail = NotificationRule(name=MAIL_RULE, channel=Channel.EMAIL, recipients=[RECIPIENT], **everything)
            mail.full_clean()
            mail.save()
            self._say(f"notification rule “{MAIL_RULE}” (email to {RECIPIENT})", True)
        else:
            self._say(f"notification rule “{MAIL_RULE}” (email to {mail.destination})", False)
        trap = NotificationRule.objects.filter(name=TRAP_RULE).first()
        if trap_port is None:
            if trap is not None and trap.enabled:
                NotificationRule.objects.filter(pk=trap.pk).update(enabled=False)
                self.stdout.write(f"disabled notification rule “{TRAP_RULE}”: no snmptrapd to send to")
            return
        created = trap is None
        if trap is None:
            trap = NotificationRule(
                name=TRAP_RULE, channel=Channel.SNMP, snmp_version=SnmpVersion.V2C, community="public", **everything
            )
        trap.host, trap.port, trap.enabled = HOST, trap_port, True
        trap.full_clean()
        trap.save()
        self._say(f"notification rule “{TRAP_RULE}” (SNMPv2c trap to {HOST}:{trap_port})", created)

    def _licenses(self, definition: dict, server: Server) -> None:
        """Installed on the first primary (`-a`); copying them to the secondary is the replication's job."""
        expires = date(date.today().year + 1, 12, 31)
        for name, key, quantity in definition["licenses"]:
            License.objects.get_or_create(
                server=server,
                name=name,
                defaults={"key": key, "quantity": quantity, "expires_at": expires, "source": Source.INSTALLED},
            )
        for name, version in definition["modules"]:
            SoftwareModule.objects.get_or_create(
                server=server, name=name, defaults={"version": version, "source": Source.INSTALLED}
            )

    def _agent_files(self, definition: dict, first: Server, second: Server, agents: dict) -> None:
        """The agents' --inventory seeds (read on their first start only) and the first primary's data."""
        expires = date(date.today().year + 1, 12, 31).isoformat()
        for server in (first, second):
            agent = agents[server.name]
            installed = server == first
            inventory = {
                "system": {
                    "part_number": server.part_number,
                    "hardware": server.hardware,
                    "configuration": CONFIGURATION if installed else {},
                },
                "licenses": [
                    {"name": n, "key": k, "quantity": q, "expires_at": expires} for n, k, q in definition["licenses"]
                ]
                if installed
                else [],
                "modules": [{"name": n, "version": v} for n, v in definition["modules"]] if installed else [],
            }
            path = Path(agent["inventory"])
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(inventory, indent=2) + "\n")
            Path(agent["state_dir"]).mkdir(parents=True, exist_ok=True)
            data_dir = Path(agent["data_dir"])
            data_dir.mkdir(parents=True, exist_ok=True)
            if installed:
                for relative, text in definition["files"].items():
                    target = data_dir / relative
                    if not target.exists():
                        target.parent.mkdir(parents=True, exist_ok=True)
                        target.write_text(text)
