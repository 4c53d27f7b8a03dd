"""What a slot's probes and its evaluation know of a cluster: plain values, not model instances
(building those for every row of every slot was the batch's largest cost after the probes
themselves). The probes and the evaluation decide on these values; a transition writes the rows by
id, guarded by the state it saw, and loads the instances it needs. No Django here: the protocol
model (tests/model/) builds them too."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ServerView:
    id: int
    name: str
    heartbeat_url: str
    intranet_url: str
    token: str
    state: str
    role: str


@dataclass(frozen=True)
class ClusterView:
    id: int
    name: str
    epoch: int
    grant_fence_epoch: int
    interval: float
    lease_s: float
    threshold: int
    recovery_threshold: int
    max_clock_skew: float
    max_grant_delay: float
    state: str
    maintenance: bool
    active: bool
    has_request: bool
    replication_current: bool
    primary: ServerView
    secondary: ServerView
