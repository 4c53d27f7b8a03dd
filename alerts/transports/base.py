"""The interface every notification channel implements (healthchecks' transport contract).

Transports are model-free: the caller (the delivery task) turns an event and a rule into a
`Notification` of plain values, calls `notify()`, and records the outcome or the error on the
delivery row. Retrying is the caller's job; a transport makes exactly one attempt.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

Outcome = Literal["sent", "delivered"]
SENT: Outcome = "sent"  # handed to the network, no proof of receipt (SNMP trap)
DELIVERED: Outcome = "delivered"  # the receiver acknowledged it (SNMP inform, SMTP accepted)


class TransportError(Exception):
    """One attempt failed.

    `permanent` is True when retrying the same notification cannot succeed (bad credentials or
    configuration, a recipient the server refuses): the caller stops retrying and shows the error.
    Otherwise (receiver down, timeout) the caller retries with backoff.
    The message is shown to administrators: it never contains secrets.
    """

    def __init__(self, message: str, permanent: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.permanent = permanent

    def __repr__(self) -> str:
        return f"TransportError({self.message!r}, permanent={self.permanent})"


@dataclass(frozen=True)
class Notification:
    """What one notification says about one event, for one rule (plain values, no models)."""

    event_id: int
    event_type: str  # an EventType value, "server_failed"
    severity: str  # a Severity value, "critical"
    cluster: str
    server: str  # "" for cluster-wide events
    message: str
    created_at: datetime
    url: str  # the event's page in the alerts browser
    rule_id: int | None  # the rule being served; None for a one-off send
    is_test: bool = False  # a "send test notification" from the rule form


class Transport(abc.ABC):
    """One notification channel.

    Contract: `notify()` makes one attempt and returns the outcome on success: "delivered" when
    the receiver acknowledged it, "sent" when the channel cannot tell (SNMP traps). On failure it
    raises TransportError (permanent=True for errors that retrying cannot fix). It raises nothing
    else for delivery problems, and never logs secrets.
    """

    @abc.abstractmethod
    def notify(self, notification: Notification) -> Outcome:
        raise NotImplementedError
