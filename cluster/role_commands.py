"""Role commands: the ordered commands that set an agent's role, epoch and settings (DESIGN §4a
rule 12), and `probe`, a heartbeat without a grant. (Not management commands: those are in
cluster/management/commands/.)

Every command carries `(epoch, seq)`; `seq` is allocated on the cluster row with an autocommitted
`UPDATE … RETURNING` before sending, and reused only to retry the identical command. An agent
refuses (409) anything not newer than what it holds and answers its role, epoch, seq and
candidacy; the caller reconciles on those.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from django.db import connection
from django.db.models import F, Value
from django.db.models.functions import Greatest

from agent.credentials import peer_credential

from . import failover_rules as rules
from .agent_client import AgentAnswer, call_once
from .models import Cluster, Server


def allocate_seq(cluster_id: int) -> int:
    table = Cluster._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET command_seq = command_seq + 1 WHERE id = %s RETURNING command_seq", [cluster_id]
        )
        return int(cursor.fetchone()[0])


TIMING_FIELDS = ("heartbeat_interval", "lease_s", "max_grant_delay", "max_clock_skew")


def current_timing(cluster_id: int) -> Cluster:
    """The timing a command carries, read after its seq was allocated: a later seq then never
    carries older settings than an earlier one (the caller's row may predate a settings change, and
    an agent keeps the settings of the newest seq it accepted)."""
    return Cluster.objects.only(*TIMING_FIELDS).get(pk=cluster_id)


def adopt(cluster_id: int, epoch: object, seq: object) -> None:
    """An agent holds a newer epoch or seq than the database (a restored database, a reused
    appliance, an interrupted failover that demoted the old primary at the pending epoch): the
    database adopts them, so no later command or promotion reuses them (docs/protocol.md,
    "Converge on what the agents hold")."""
    changes = rules.adopted(epoch, seq, F("epoch_floor"), F("command_seq"), Greatest, Value)
    if changes:
        Cluster.objects.filter(pk=cluster_id).update(**changes)


@dataclass
class RoleCommand:
    role: str
    epoch: int
    peer: Server | None = None
    candidacy: dict | None = None
    grant: dict | None = None
    # Makes the grant of each attempt as it leaves (stamped and recorded then): a retry must not
    # carry the first attempt's `sent_at`, which may be older than max_grant_delay by then.
    fresh_grant: Callable[[], dict] | None = None

    def body(self, cluster: Cluster, seq: int, timing: Cluster) -> dict:
        body = {
            "role": self.role,
            "epoch": self.epoch,
            "seq": seq,
            "cluster": cluster.name,  # for the agent's role-change hook (agent/README.md)
            "interval_s": timing.heartbeat_interval,
            "lease_s": timing.effective_lease_s,
            "max_grant_delay": timing.max_grant_delay,
            "max_clock_skew": timing.max_clock_skew,
        }
        if self.peer is not None:
            body["peer_url"] = self.peer.heartbeat_url
            # The peer's peer credential, never its control token (docs/operator-guide.md).
            body["peer_token"] = peer_credential(self.peer.agent_token)
        if self.candidacy is not None:
            body["candidacy"] = self.candidacy
        if self.grant is not None:
            body["grant"] = self.grant
        return body

    def held_by(self, answer: AgentAnswer) -> bool:
        """The agent already holds what this command asks (an earlier send whose answer was lost)."""
        return rules.held_by(answer.body, self.role, self.epoch, self.candidacy)


def send_role(
    cluster: Cluster,
    server: Server,
    command: RoleCommand,
    *,
    attempts: int = 3,
    timeout: float = 2.0,
    before_attempt: Callable[[], None] | None = None,
) -> AgentAnswer:
    """Send a role command, retrying the identical command on no answer, reconciling a 409.

    `before_attempt` runs before each attempt (a failover renews its claim there, so that a claim
    outlives the whole call however many attempts it takes). Returns the last answer; `answer.ok`
    is True when the agent holds the commanded role.
    """
    seq, timing = allocate_seq(cluster.pk), current_timing(cluster.pk)
    answer = AgentAnswer(0, error="not sent")
    for attempt in range(attempts):
        if before_attempt is not None:
            before_attempt()
        if command.fresh_grant is not None:
            command.grant = command.fresh_grant()
        answer = _post_role(server, command.body(cluster, seq, timing), timeout)
        if answer.ok:
            return answer
        if answer.status == 409:
            if command.held_by(answer):
                return AgentAnswer(200, answer.body, "", False, answer.sent_wall, answer.received_wall)
            adopt(cluster.pk, answer.body.get("epoch"), answer.body.get("seq"))
            seq, timing = allocate_seq(cluster.pk), current_timing(cluster.pk)  # a new command now: a fresh seq
            continue
        if answer.answered:
            return answer  # 400/401: retrying the same thing cannot help
        if answer.refused:
            time.sleep(min(0.2 * (attempt + 1), 1.0))
    return answer


def _post_role(server: Server, body: dict, timeout: float) -> AgentAnswer:
    return call_once("POST", server.heartbeat_url, "/v1/role", server.agent_token, body, timeout)


def probe(server: Server, epoch: int, timeout: float = 1.0) -> AgentAnswer:
    """A heartbeat without a grant, on the heartbeat URL and then the intranet URL."""
    body = {"epoch": epoch, "lease_s": 0, "sent_at": time.time()}
    answer = call_once("POST", server.heartbeat_url, "/v1/heartbeat", server.agent_token, body, timeout)
    if not answer.answered:
        answer = call_once("POST", server.intranet_url, "/v1/heartbeat", server.agent_token, body, timeout)
    return answer
