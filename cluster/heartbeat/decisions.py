"""What the evaluation of one slot decided (`evaluate.py`), as plain values: `apply.py` carries
them out in the order given, each write guarded by the state the batch saw. Kept apart from both so
that the rules can be read, and tested, without Redis, a database or Celery."""

from __future__ import annotations

from dataclasses import dataclass

from alerts.choices import EventType

from .views import ServerView


@dataclass(frozen=True)
class MirrorRole:
    """The server's row takes the role its agent reports."""

    server: ServerView
    role: str


@dataclass(frozen=True)
class Adopt:
    """The database adopts a newer epoch and seq an agent holds (`commands.adopt`)."""

    epoch: object  # as the agent's answer carries them
    seq: object


@dataclass(frozen=True)
class MarkUp:
    """Up again after R answers in a row, closing its `server_failed`."""

    server: ServerView
    answers: int
    message: str


@dataclass(frozen=True)
class MarkDown:
    """Down after N misses, with its `server_failed` event (its `last_answer_at` is read from Redis
    then)."""

    server: ServerView
    evidence: dict
    message: str


@dataclass(frozen=True)
class OpenIncident:
    """A failure event, unless that failure is open already."""

    server: ServerView
    failure: EventType
    message: str
    details: dict
    name: str = ""


@dataclass(frozen=True)
class CloseIncident:
    """The recovery event of an open failure."""

    server: ServerView
    failure: EventType
    message: str
    details: dict
    name: str = ""


@dataclass(frozen=True)
class MarkSkewed:
    """Into the skewed set: no grants to this server, no failover onto it. `restored`: put back from
    its open incident (a Redis restart lost the set, not the incident), and into the batch's copy
    of the set too."""

    server: ServerView
    restored: bool = False


@dataclass(frozen=True)
class ClockBack:
    """Out of the skewed set; the worker that took it out closes the `clock_skew_detected`."""

    close: CloseIncident


@dataclass(frozen=True)
class ReconcileSecondary:
    """The secondary is not secondary at the cluster's epoch: queue its reconcile (one at a time)."""


@dataclass(frozen=True)
class SetClusterState:
    """`healthy` or `degraded`, written only over one of those two."""

    state: str
    healthy: bool


@dataclass(frozen=True)
class FailureRef:
    """The failure a failover cause names: the event opened in this slot, or the one open before."""

    server: ServerView
    failure: EventType
    name: str = ""


@dataclass(frozen=True)
class RequestFailover:
    """The write-ahead failover request (§4a rule 5), written unless one stands, the epoch or the
    primary moved, the cluster went into maintenance, or a failover less than `damping_window_s`
    ago damps this cause; the failover task is queued when written or when a request stands."""

    cause: str
    evidence: dict
    failure: FailureRef | None = None
    damping_window_s: float = 0.0


Decision = (
    MirrorRole | Adopt | MarkUp | MarkDown | OpenIncident | CloseIncident | MarkSkewed | ClockBack
    | ReconcileSecondary | SetClusterState | RequestFailover
)  # fmt: skip


@dataclass(frozen=True)
class QueueFailover:
    """For the Celery task to queue: `run_failover` of this cluster."""

    cluster_id: int


@dataclass(frozen=True)
class QueueReconcile:
    """For the Celery task to queue: `reconcile_secondary` of this cluster."""

    cluster_id: int


Queued = QueueFailover | QueueReconcile
