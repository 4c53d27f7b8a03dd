"""What a slot's answers read, once per slot and before anything is counted (DESIGN §4a rule 4):
each clock's offset and who is blamed for it (pairwise: `skew_blame`), the heartbeat link, whether
the primary holds a lease. The readings decide which streaks the count bumps in Redis; the
evaluation reads them again with the streaks' new values. Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

from ..agent_client import AgentAnswer
from ..failover_rules import holds_no_lease, skew_blame, skew_reading
from .probe import SlotProbe
from .views import ClusterView


class SkewReading(NamedTuple):
    blamed: bool  # this server's clock is the odd one out
    offset: float
    uncertainty: float
    limit: float


class LinkReading(NamedTuple):
    bad: bool
    cut_by_control_plane: bool  # the primary answered on its intranet URL only
    peer: dict  # what the secondary sees of the primary


class ControlPlaneClock(NamedTuple):
    blamed: bool  # both appliances agree with each other against the control plane
    primary_offset: float
    secondary_offset: float
    limit: float


@dataclass
class Readings:
    """One slot's readings, with the streaks they bump: (streak name, bad), in
    `state.STREAKS`' names."""

    skews: dict[int, SkewReading] = field(default_factory=dict)  # by server id
    link: LinkReading | None = None  # None: the primary is down, which is not a link fault
    control_plane: ControlPlaneClock | None = None  # None unless both appliances read a clock
    dark: bool | None = None  # the answering primary holds no lease; None when it did not answer
    streaks: list[tuple[str, bool]] = field(default_factory=list)


def clock_reading(view: ClusterView, answer: AgentAnswer) -> tuple[bool, float, float, float] | None:
    """(off from the control plane's clock, offset, uncertainty, limit) of one answer's clock, or
    None without a clock in it."""
    return skew_reading(answer.body.get("now"), answer.sent_wall, answer.received_wall, answer.rtt, view.max_clock_skew)


def link_reading(probe: SlotProbe) -> LinkReading | None:
    primary, secondary = probe.primary, probe.secondary
    if not primary.answered:
        return None
    peer = (secondary.answer.body.get("peer") or {}) if secondary.answer is not None else {}
    cut_by_control_plane = primary.heartbeat_link_failed
    cut_for_secondary = secondary.answered and peer.get("ok") is False
    return LinkReading(cut_by_control_plane or cut_for_secondary, cut_by_control_plane, peer)


def read_slot(probe: SlotProbe) -> Readings:
    """The clocks by server (blamed or not), the link, the control plane's own clock and the
    primary's lease, in the order their streaks are bumped."""
    view, readings = probe.cluster, Readings()
    sides = (
        ("primary", view.primary.id, probe.primary.answer),
        ("secondary", view.secondary.id, probe.secondary.answer),
    )
    raw = [clock_reading(view, answer) if answer is not None else None for _, _, answer in sides]
    blamed = skew_blame(*raw)
    for (side, server_id, _), reading, blame in zip(sides, raw, blamed, strict=False):
        if reading is not None:
            readings.skews[server_id] = SkewReading(blame, *reading[1:])
            readings.streaks.append((f"{side}_skew", blame))
    if raw[0] is not None and raw[1] is not None:
        readings.control_plane = ControlPlaneClock(blamed[2], raw[0][1], raw[1][1], raw[0][3])
        readings.streaks.append(("control_plane_skew", blamed[2]))
    readings.link = link_reading(probe)
    if readings.link is not None:
        readings.streaks.append(("link", readings.link.bad))
    if probe.primary.answer is not None:
        readings.dark = holds_no_lease(probe.primary.answer.body, view.epoch)
        readings.streaks.append(("dark", readings.dark))
    return readings
