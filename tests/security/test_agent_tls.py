"""Agents over TLS (DESIGN §4.7, §8): the control plane verifies the agents' certificates against
`AGENT_CA_FILE`, and the agents verify each other's (`--peer-ca`) for peer heartbeats and the data
pull. With the right CA a cluster of HTTPS agents is configured, synced, serves and fails over;
with a wrong CA the control plane refuses the agents and the cluster never becomes healthy.

Each test starts a private control plane (heartbeat, failover and default workers and beat) with
its own `AGENT_CA_FILE` on a Redis database of its own, which is also a broker of its own: the
session's workers never receive these tasks. The session's control plane, when another module
started it, shares the test database, so it would probe these HTTPS agents without the CA; it is
paused (SIGSTOP) for the test and resumed after.
"""

from __future__ import annotations

import datetime
import ipaddress
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from alerts.models import Event
from cluster.models import Cluster, ReplicationJob
from dms_admin.celery import app
from dms_admin.redis import redis_client
from tests.support.agents import wait_until
from tests.support.controlplane import TIMING, server_row, tree_digest, write_files
from tests.support.processes import celery_beat, celery_worker

pytestmark = pytest.mark.integration

PRIVATE_REDIS = "redis://127.0.0.1:6379/13"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "agent-tls"


# -- certificates ------------------------------------------------------------------------------


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write_key(key, path: Path) -> None:
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )


class CertificateAuthority:
    def __init__(self, directory: Path, name: str):
        now = datetime.datetime.now(datetime.UTC)
        self.directory = directory
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(_name(name))
            .issuer_name(_name(name))
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_cert_sign=True,
                    crl_sign=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        self.pem = directory / f"{name}.pem"
        self.pem.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))

    def issue(self, name: str, ip: str = "127.0.0.1") -> tuple[Path, Path]:
        """A server certificate for `ip` (an IP SAN); the file holds it and the CA, as a chain."""
        now = datetime.datetime.now(datetime.UTC)
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(name))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        cert_path, key_path = self.directory / f"{name}.crt", self.directory / f"{name}.key"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM) + self.pem.read_bytes())
        _write_key(key, key_path)
        return cert_path, key_path


# -- a private control plane -------------------------------------------------------------------


@pytest.fixture
def private_redis(settings, control_plane_paused):
    settings.REDIS_URL = settings.CELERY_BROKER_URL = PRIVATE_REDIS
    redis_client.cache_clear()
    redis_client().flushdb()
    yield
    redis_client().flushdb()
    redis_client.cache_clear()


@pytest.fixture
def control_plane_with(private_redis, transactional_db, request):
    started = []

    def start(ca_file: Path) -> dict:
        log_dir = ARTIFACTS / request.node.name
        env = dict(REDIS_URL=PRIVATE_REDIS, CELERY_BROKER_URL=PRIVATE_REDIS, AGENT_CA_FILE=str(ca_file))
        processes = {
            "heartbeat": celery_worker(log_dir, "heartbeat", "tls-heartbeat", concurrency=2, **env),
            "failover": celery_worker(log_dir, "failover", "tls-failover", concurrency=2, **env),
            "default": celery_worker(log_dir, "default", "tls-default", concurrency=2, **env),
            "replication": celery_worker(log_dir, "replication", "tls-replication", concurrency=1, **env),
        }
        started.extend(processes.values())
        processes["beat"] = celery_beat(log_dir, **env)
        started.append(processes["beat"])
        return processes

    yield start
    for process in started:
        process.stop()


@pytest.fixture
def privately_configured(monkeypatch):
    """A new cluster's configure task goes to the private broker, whichever broker this process's
    Celery app was set up with by earlier tests (its connection pool outlives a settings change)."""
    from cluster.tasks import configure_cluster

    class ToPrivateRedis:
        """Stands in for the task in cluster/signals.py: `delay` sends it to the private Redis."""

        @staticmethod
        def delay(cluster_id: int) -> None:
            with app.connection_for_write(PRIVATE_REDIS) as connection:
                configure_cluster.apply_async((cluster_id,), producer=app.amqp.Producer(connection))

    monkeypatch.setattr("cluster.signals.configure_cluster", ToPrivateRedis)


def _tls_agents(agents, ca: CertificateAuthority, name: str):
    made = []
    for suffix in ("a", "b"):
        cert_key = ca.issue(f"{name}-{suffix}")
        made.append(agents(f"{name}-{suffix}", tls=cert_key, peer_ca=ca.pem))
    return made


def _cluster(name: str, primary_agent, secondary_agent) -> Cluster:
    for agent in (primary_agent, secondary_agent):
        assert agent.heartbeat_url.startswith("https://") and agent.intranet_url.startswith("https://")
    primary, secondary = server_row(primary_agent, "DMM-SVR-C210-K9"), server_row(secondary_agent, "DMM-FA-C210-K9")
    return Cluster.objects.create(name=name, application="dmm", primary=primary, secondary=secondary, **TIMING)


def _refreshed(cluster: Cluster) -> Cluster:
    cluster.refresh_from_db()
    return cluster


# -- the tests ---------------------------------------------------------------------------------


def test_a_cluster_of_tls_agents_syncs_serves_and_fails_over(
    tmp_path, agents, control_plane_with, privately_configured
):
    ca = CertificateAuthority(tmp_path, "dms-test-ca")
    primary_agent, secondary_agent = _tls_agents(agents, ca, "tls")
    write_files(primary_agent.data_dir, {"media/welcome.mp4": b"\x00video" * 1000, "playlists/lobby.json": b"[]"})
    control_plane_with(ca.pem)

    cluster = _cluster("tls-dmm", primary_agent, secondary_agent)

    wait_until(lambda: _refreshed(cluster).state == "healthy", 45, 0.2, "the initial sync over TLS")
    job = ReplicationJob.objects.get(cluster=cluster, kind="initial")
    assert job.state == "succeeded" and job.files_done == 2
    assert tree_digest(secondary_agent.data_dir) == tree_digest(primary_agent.data_dir)
    primary_agent.wait_primary_status(200, timeout=15)

    old_primary_id = cluster.primary_id
    primary_agent.kill()

    wait_until(
        lambda: _refreshed(cluster).primary_id != old_primary_id and cluster.state != "failing_over",
        30,
        0.2,
        "the failover to the TLS secondary",
    )
    assert cluster.epoch == 2 and cluster.primary.name == secondary_agent.name
    assert Event.objects.filter(cluster=cluster, type="failover_completed").exists()
    secondary_agent.wait_primary_status(200, timeout=15)


def test_with_a_wrong_ca_the_control_plane_refuses_the_agents(
    tmp_path, agents, control_plane_with, privately_configured
):
    ca = CertificateAuthority(tmp_path, "dms-test-ca")
    other = CertificateAuthority(tmp_path, "someone-elses-ca")
    primary_agent, secondary_agent = _tls_agents(agents, ca, "untrusted")
    processes = control_plane_with(other.pem)

    cluster = _cluster("untrusted-dmm", primary_agent, secondary_agent)

    processes["default"].wait_for_log("certificate verify failed", timeout=30)
    deadline = time.monotonic() + 6  # several retries of the configure task (every 5 s)
    while time.monotonic() < deadline:
        assert _refreshed(cluster).state == "syncing" and not cluster.active
        time.sleep(0.5)
    for agent in (primary_agent, secondary_agent):
        assert agent.heartbeat(1, 0)["role"] == "unconfigured"  # no command reached it
        assert agent.primary_status() == 503
    assert not ReplicationJob.objects.filter(cluster=cluster, state="succeeded").exists()
