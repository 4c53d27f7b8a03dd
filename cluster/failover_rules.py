"""The control plane's failover decisions as pure functions: plain values in, a decision out.

No ORM, no Redis, no clock, no I/O. `cluster/failover.py` and `cluster/heartbeat.py` gather the
facts (rows, Redis records, agents' answers) and call these to decide; the protocol model in
`tests/model/` calls the very same functions over its simulated database row and Redis, so what the
model checks is what production runs (docs/model.md). Rules whose condition is a conditional SQL
UPDATE take the comparison function as an argument (`greatest`) so the same function builds the SQL
expression and the model's value.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

# -- steps -----------------------------------------------------------------------------------------

# The failover's steps in pipeline order (the values of cluster.choices.FailoverStep, "" aside).
STEPS = ("claimed", "witness", "candidacy", "wait", "promote", "commit")
PROMOTE = "promote"


def later_step(a: str, b: str) -> str:
    """The later of two steps: a recorded step never moves backwards (a takeover resumes it)."""
    return max(a or STEPS[0], b or STEPS[0], key=STEPS.index)


def committed_to_promote(step: str) -> bool:
    """Past the point of no return: the promotion may have reached the secondary, so the failover
    is completed, never abandoned or cleaned up."""
    return STEPS.index(step or STEPS[0]) >= STEPS.index(PROMOTE)


# -- causes ----------------------------------------------------------------------------------------

# Causes that a failure of the primary raises by itself; a switchover is an operator's request.
AUTOMATIC = ("missed_heartbeats", "critical_service", "clock_skew", "agents_disagree", "not_serving")
# Causes whose standing is judged by probing the primary.
PROBED_CAUSES = ("critical_service", "agents_disagree", "not_serving")

# Causes a recent failover damps: a failover for them within this many intervals of the last one
# is not requested (no ping-pong when the fault follows the role). Not missed heartbeats or a
# primary that does not hold its role: there the old primary cannot serve whatever happens.
DAMPED_CAUSES = ("critical_service", "clock_skew", "not_serving")
DAMPING_INTERVALS = 10


def damping_window_s(cause: str, interval: float) -> float:
    """How long after a failover a request for `cause` is refused (0: never damped)."""
    return DAMPING_INTERVALS * interval if cause in DAMPED_CAUSES else 0.0


def damped(cause: str, since_last_failover_s: float | None, interval: float) -> bool:
    """A request for `cause` is refused `since_last_failover_s` after the last failover (None: none
    yet). The database applies the same window in its conditional UPDATE."""
    window = damping_window_s(cause, interval)
    return window > 0 and since_last_failover_s is not None and since_last_failover_s <= window


def may_request(maintenance: bool, active: bool, syncing: bool) -> bool:
    """A cluster that is syncing, inactive or in maintenance never fails over automatically."""
    return not maintenance and active and not syncing


def request_current(request: dict, epoch: int, primary_id: Any) -> bool:
    """A failover request still names the cluster's epoch and primary (otherwise it is abandoned)."""
    return request.get("seen_epoch") == epoch and request.get("server_id") == primary_id


def pending_epoch(epoch, epoch_floor, greatest: Callable = max):
    """The epoch a promotion goes to: above the database's and any epoch an agent was seen to hold,
    so never one already used. `greatest` is `max` for values, `Greatest` for the claim's UPDATE."""
    return greatest(epoch, epoch_floor) + 1


def release_backoff_s(failures: int) -> float:
    """How long a failed failover's kept request waits before it is claimed again."""
    return min(60.0, 2.0 * (1 + failures))


def adopted(epoch, seq, epoch_floor, command_seq, greatest: Callable = max, value: Callable = lambda v: v) -> dict:
    """What the database adopts of an agent's 409 answer (docs/protocol.md, "Converge on what the
    agents hold"): the newer of its seq and the epoch floor, for whichever the answer carries as an
    integer. `greatest` and `value` are `max` and identity for values, `Greatest` and `Value` for
    the UPDATE."""
    changes = {}
    if isinstance(seq, int) and not isinstance(seq, bool):
        changes["command_seq"] = greatest(command_seq, value(seq))
    if isinstance(epoch, int) and not isinstance(epoch, bool):
        changes["epoch_floor"] = greatest(epoch_floor, value(epoch))
    return changes


def held_by(answer: dict, role: str, epoch: int, candidacy: dict | None) -> bool:
    """The agent already holds what a role command asks (an earlier send whose answer was lost)."""
    if answer.get("role") != role or answer.get("epoch") != epoch:
        return False
    if candidacy is not None and role == "candidate":
        return (answer.get("candidacy") or {}).get("id") == candidacy.get("id")
    return True


def longest_lease_s(effective_lease_s: float, lease_bound_s: float | None) -> float:
    """What a lease wait must assume a granter may have granted: the current lease, or a longer one
    from before a settings change that the agents have not acknowledged yet."""
    return max(effective_lease_s, lease_bound_s or 0.0)


# -- what agents answer ----------------------------------------------------------------------------


def disagreement(heartbeat_answer: dict, epoch: int) -> str:
    """Why the database's primary, by its own answer, is not the primary at the cluster's epoch
    ("" when it is, or when it did not answer)."""
    if not heartbeat_answer:
        return ""
    role, held = heartbeat_answer.get("role"), heartbeat_answer.get("epoch")
    if role == "primary" and held == epoch:
        return ""
    return f"the primary's agent holds {role} at epoch {held}, the database primary at epoch {epoch}"


def holds_no_lease(body: dict, epoch: int) -> bool:
    """The primary answers as primary at the cluster's epoch, yet serves nobody: it holds no lease
    after this slot's grants (refused, or none sent)."""
    return body.get("role") == "primary" and body.get("epoch") == epoch and not body.get("lease_remaining_s")


def failing_critical_services(heartbeat_answer: dict) -> list[str]:
    services = heartbeat_answer.get("services") or []
    return [str(s.get("name")) for s in services if s.get("critical", True) and not s.get("ok")]


def not_serving(dark: bool, streak: int, threshold: int, critical_failing: bool) -> bool:
    """A primary dark for `threshold` slots in a row (and not for a failing service, its own cause)."""
    return dark and streak >= threshold and not critical_failing


# -- slots -----------------------------------------------------------------------------------------


def missed_enough(misses: int, first_miss_at: float | None, slot_time: float, threshold: int, interval: float) -> bool:
    """N consecutive misses spanning at least (N−1) × interval fail a server."""
    span = slot_time - (first_miss_at or slot_time)
    return misses >= threshold and span >= (threshold - 1) * interval - 1e-6


def recovered(answers: int, recovery_threshold: int) -> bool:
    """R consecutive answers bring a failed server back."""
    return answers >= recovery_threshold


def primary_back(last_answer_at: float, requested_at: float) -> bool:
    """The primary answered a heartbeat after the failover was requested."""
    return last_answer_at > requested_at


# -- clocks ----------------------------------------------------------------------------------------


def skew_reading(agent_now: Any, sent_wall: float, received_wall: float, rtt: float, max_clock_skew: float):
    """(off from the control plane's clock, offset, uncertainty, limit) of one answer's clock, or
    None without a clock in it."""
    if not isinstance(agent_now, (int, float)):
        return None
    offset = agent_now - (sent_wall + received_wall) / 2
    uncertainty = rtt / 2
    limit = max_clock_skew / 2
    return abs(offset) - uncertainty > limit, offset, uncertainty, limit


def skew_blame(primary: tuple | None, secondary: tuple | None) -> tuple[bool, bool, bool]:
    """Whose clock is off — (primary, secondary, control plane) — judged pairwise among the three
    (docs/protocol.md, "Skew is blamed pairwise"): a clock is blamed only when the other two agree
    with each other against it. With one appliance's reading only, nobody is blamed: two clocks
    that disagree cannot say which one is wrong."""
    if primary is None or secondary is None:
        return False, False, False
    p_off, p_offset, p_uncertainty, limit = primary
    s_off, s_offset, s_uncertainty, _ = secondary
    pair_off = abs(p_offset - s_offset) - (p_uncertainty + s_uncertainty) > limit
    return (
        p_off and pair_off and not s_off,
        s_off and pair_off and not p_off,
        p_off and s_off and not pair_off,
    )


# -- the failover's steps --------------------------------------------------------------------------


def witness_refusal(name: str, answered: bool, error: str, failing: list[str], secondary_skewed: bool) -> str:
    """Why the secondary `name` cannot take over ("" when it can): silent, a critical service
    failing, or its clock skewed."""
    if not answered:
        return f"the secondary {name} does not answer: {error}"
    if failing:
        return f"critical services fail on the secondary {name}: {', '.join(failing)}"
    if secondary_skewed:
        return f"the clock of the secondary {name} is skewed: no failover onto it"
    return ""


def secondary_still_hears(
    cause: str, step: str, last_answer_age_s: Any, threshold: int, interval: float
) -> float | None:
    """The second witness on missed heartbeats (docs/protocol.md, rule 7): the age under which the secondary's last
    answer from the primary means the primary is alive (the failover is abandoned), or None when the
    witness does not stop it."""
    if cause != "missed_heartbeats" or committed_to_promote(step):
        return None
    needed = (threshold - 1) * interval
    if last_answer_age_s is not None and last_answer_age_s < needed:
        return needed
    return None


def cause_gone(
    cause: str,
    step: str,
    *,
    maintenance: bool,
    epoch: int = 0,
    primary_back: bool = False,
    primary_skewed: bool = True,
    primary_answer: dict | None = None,
) -> str:
    """Why an automatic failover stops before a side effect ("" when its cause stands): the cluster
    went into maintenance, or the cause healed. Past the promotion nothing is abandoned. A primary
    that did not answer (`primary_answer` None) leaves the cause standing; `epoch` is the cluster's."""
    if cause not in AUTOMATIC or committed_to_promote(step):
        return ""
    if maintenance:
        return "the cluster is in maintenance: no automatic failover"
    if cause == "missed_heartbeats" and primary_back:
        return "the primary answers heartbeats again"
    if cause == "clock_skew" and not primary_skewed:
        return "the primary's clock is back in step"
    if cause in PROBED_CAUSES and primary_answer is not None:
        if cause == "critical_service" and not failing_critical_services(primary_answer):
            return "the primary's critical services pass again"
        if cause == "agents_disagree" and not disagreement(primary_answer, epoch):
            return "the primary holds its role at the cluster's epoch again"
        if cause == "not_serving" and primary_answer.get("lease_remaining_s"):
            return "the primary holds a lease again"
    return ""


def candidacy_deadline_s(longest_lease_s: float, max_grant_delay: float, max_clock_skew: float, claim_s: float):
    """How long a candidacy lasts unless promoted: past any lease wait and a few claim takeovers."""
    return longest_lease_s + max_grant_delay + max_clock_skew + 4 * claim_s


def secondary_last_grant(received_wall: float, last_grant_sent_age_s: Any) -> float:
    """When the secondary last granted, on the control plane's clock, from its candidacy answer
    (taken when the answer arrived, so never earlier than the grant)."""
    return received_wall - last_grant_sent_age_s if isinstance(last_grant_sent_age_s, (int, float)) else 0.0


def grant_bound(last_sent_at: float | None, fence_loaded_at: float | None) -> float:
    """The latest moment the control plane may have sent a grant: its last recorded grant, or when
    its Redis first held the fence if that is later (grants before then are unknown)."""
    return max(float(last_sent_at or 0), float(fence_loaded_at or 0))


def lease_deadline(
    control_plane_bound: float,
    secondary_last_grant_at: float,
    longest_lease_s: float,
    max_grant_delay: float,
    max_clock_skew: float,
) -> float:
    """When every lease the old primary may hold has ended (docs/protocol.md, rule 9): the last grant of either granter
    plus the longest lease either may have granted, the delay a grant may take and the skew."""
    return max(control_plane_bound, secondary_last_grant_at) + longest_lease_s + max_grant_delay + max_clock_skew


def wait_over(fence_epoch: int | None, grant_fence_epoch: int, still_mine: bool) -> str:
    """After the wait: "done", "again" (the fence vanished: wait from its reload) or "lost"."""
    if fence_epoch is not None and fence_epoch >= grant_fence_epoch and still_mine:
        return "done"
    if fence_epoch is None:
        return "again"
    return "lost"


def already_promoted(answer: dict, pending: int | None) -> bool:
    """A takeover past `promote` finds the secondary already primary at the pending epoch."""
    return answer.get("role") == "primary" and answer.get("epoch") == pending


def may_grant(epoch: int, grant_fence_epoch: int, primary_skewed: bool) -> bool:
    """The control plane grants the primary only at or above the fence and with its clock in step."""
    return epoch >= grant_fence_epoch and not primary_skewed
