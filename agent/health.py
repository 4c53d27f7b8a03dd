"""The answers load balancers and the appliance's application read: may users be sent here now?

`/v1/primary` (the primary that may serve), `/v1/replica` (a healthy secondary) and `/v1/health`
(the agent runs). Each reason is computed afresh from the core and the latest check results; a
refusal says why in words, so a 503 from a secondary does not look like a dead agent.
"""

from __future__ import annotations

from collections.abc import Sequence

from agent.core import AgentCore

# A secondary hears its peer when it had an answer within this many heartbeat intervals: one slot,
# plus the request's own time (at most 0.8 of an interval).
PEER_ANSWER_SLOTS = 2


def _failing(failing: Sequence[str]) -> str | None:
    if not failing:
        return None
    return f"critical service{'s' if len(failing) > 1 else ''} failing: {', '.join(failing)}"


def primary_refusal(core: AgentCore, failing: Sequence[str], mono_now: float) -> str | None:
    """Why this agent must not serve as primary now; None when it serves (DESIGN §4.1)."""
    if core.role != "primary":
        return f"role is {core.role}, not primary"
    if reason := _failing(failing):
        return reason
    if core.holds_lease(mono_now):
        return None
    if core.lease_epoch == core.epoch and core.lease_until > 0:
        return f"lease ran out {mono_now - core.lease_until:.1f}s ago (no grant since)"
    return f"no lease granted at epoch {core.epoch} yet"


def replica_refusal(core: AgentCore, failing: Sequence[str], mono_now: float) -> str | None:
    """Why this agent is not a healthy secondary now; None when it is."""
    if core.role != "secondary":
        return f"role is {core.role}, not secondary"
    if reason := _failing(failing):
        return reason
    if core.last_answer is None or core.peer_ok is None:
        return "has not heard its peer yet"
    age = mono_now - core.last_answer
    if core.peer_ok is False or age > PEER_ANSWER_SLOTS * core.settings.interval_s:
        return f"does not hear its peer (last answer {age:.1f}s ago)"
    return None
