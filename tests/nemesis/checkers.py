"""Checkers on the recorded history: pure functions from what was recorded to violations.

- Never two primaries: per cluster, no serving interval of one appliance overlaps one of the other.
  Intervals come from the agents' serving logs (archives of wiped state directories included), each
  capped at the agent's recorded deaths (a killed process serves nothing), on CLOCK_MONOTONIC.
- Epochs: an epoch is served by one appliance only, and held as primary by one only; the database's
  epoch never goes back; an agent's never goes back unless its state was wiped; completed
  promotions (failover and switchover events) go up by exactly one each.
- Convergence and recovery, as the quiet tail observed them (`convergence.py`), and notifications
  that did not reach a target (`notifications.py`).
Availability is measured here too: the share of the window in which some appliance served, and the
outages through which the database went on saying "healthy".
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.nemesis.processes import Agent


@dataclass(frozen=True)
class Span:
    start: float
    end: float
    epoch: int
    agent: str


@dataclass(frozen=True)
class Violation:
    kind: str
    cluster: str
    t: float  # CLOCK_MONOTONIC
    message: str


def read_spans(path: Path, agent: str) -> list[Span]:
    """One serving log: intervals with their epochs, each capped by the stops written after it
    (the product's reader, agent/servinglog.py, merges the epochs away)."""
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return []
    spans: list[list[Any]] = []
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if "stop" in record:
            for span in spans:
                span[1] = min(span[1], float(record["stop"]))
        elif "start" in record and "end" in record:
            spans.append([float(record["start"]), float(record["end"]), int(record.get("epoch", 0))])
    return [Span(s, e, epoch, agent) for s, e, epoch in spans if e > s]


def agent_spans(agent: Agent, deaths: list[float]) -> list[Span]:
    """All the serving of one appliance: wiped state directories' logs first, then the current one;
    each interval cut at the first death inside it."""
    wiped = sorted(agent.base_dir.glob("state-wiped-*/serving.log"), key=lambda p: int(p.parent.name.rsplit("-", 1)[1]))
    spans = [span for path in [*wiped, agent.state_dir / "serving.log"] for span in read_spans(path, agent.name)]
    cut = []
    for span in spans:
        end = min([span.end, *(d for d in deaths if span.start < d < span.end)])
        cut.append(Span(span.start, end, span.epoch, span.agent))
    return cut


def overlaps(cluster: str, spans: list[Span]) -> list[Violation]:
    found = []
    ordered = sorted(spans, key=lambda s: s.start)
    for i, a in enumerate(ordered):
        for b in ordered[i + 1 :]:
            if b.start >= a.end:
                break
            if b.agent != a.agent:
                found.append(
                    Violation(
                        "overlap",
                        cluster,
                        b.start,
                        f"{a.agent} (epoch {a.epoch}) and {b.agent} (epoch {b.epoch}) both served for "
                        f"{min(a.end, b.end) - b.start:.3f}s",
                    )  # fmt: skip
                )
    return found


def epoch_reuse(cluster: str, spans: list[Span], agent_samples: list[dict]) -> list[Violation]:
    found = []
    served: dict[int, dict[str, float]] = defaultdict(dict)
    for span in spans:
        served[span.epoch].setdefault(span.agent, span.start)
    for epoch, by_agent in sorted(served.items()):
        if len(by_agent) > 1:
            found.append(
                Violation(
                    "epoch_reused", cluster, max(by_agent.values()), f"epoch {epoch} served by {sorted(by_agent)}"
                )
            )
    held: dict[int, dict[str, float]] = defaultdict(dict)
    for sample in agent_samples:
        if sample["role"] == "primary" and sample["epoch"] is not None:
            held[sample["epoch"]].setdefault(sample["agent"], sample["t"])
    for epoch, by_agent in sorted(held.items()):
        if len(by_agent) > 1 and len(served.get(epoch, {})) < 2:  # not already reported above
            found.append(
                Violation(
                    "epoch_reused",
                    cluster,
                    max(by_agent.values()),
                    f"epoch {epoch} held as primary by {sorted(by_agent)} (agents' state.json)",
                )  # fmt: skip
            )
    return found


def epochs_only_grow(cluster: str, db_samples: list[dict], agent_samples: list[dict], wipes: list[dict]):
    found = []
    last = None
    for sample in db_samples:
        if last is not None and sample["epoch"] < last:
            found.append(
                Violation("epoch_backwards", cluster, sample["t"], f"database epoch {last} -> {sample['epoch']}")
            )
        last = sample["epoch"]
    last_of: dict[str, int] = {}
    wiped_at = defaultdict(list)
    for wipe in wipes:
        wiped_at[wipe["agent"]].append(wipe["t"])
    previous_t: dict[str, float] = {}
    for sample in agent_samples:
        agent, epoch = sample["agent"], sample["epoch"]
        if epoch is None:
            continue
        wiped = any(previous_t.get(agent, 0) <= t <= sample["t"] for t in wiped_at[agent])
        if agent in last_of and epoch < last_of[agent] and not wiped:
            found.append(
                Violation("epoch_backwards", cluster, sample["t"], f"{agent}'s epoch {last_of[agent]} -> {epoch}")
            )
        last_of[agent], previous_t[agent] = epoch, sample["t"]
    return found


def promotions_step_by_one(cluster: str, completed: list[dict]) -> list[Violation]:
    """`completed`: the cluster's failover_completed and switchover_completed events, oldest first,
    each {"t", "epoch", "type"}."""
    found = []
    previous = 1
    for event in completed:
        if event["epoch"] != previous + 1:
            found.append(
                Violation(
                    "epoch_step",
                    cluster,
                    event["t"],
                    f"{event['type']} at epoch {event['epoch']}, the previous promotion's was {previous}",
                )  # fmt: skip
            )
        previous = event["epoch"]
    return found


def availability(spans: list[Span], start: float, end: float) -> dict[str, Any]:
    """Share of [start, end] in which some appliance served, and the outages (gaps) in it."""
    covered = 0.0
    outages = []
    cursor = start
    for span in sorted(spans, key=lambda s: s.start):
        s, e = max(span.start, start), min(span.end, end)
        if e <= cursor:
            continue
        if s > cursor:
            outages.append((cursor, s - cursor))
        covered += e - max(s, cursor)
        cursor = e
    if cursor < end:
        outages.append((cursor, end - cursor))
    total = end - start
    return {"share": covered / total if total > 0 else 0.0, "outages": outages}


def dark_while_healthy(outages: list[tuple[float, float]], db_samples: list[dict], bound: float):
    """Outages in which, once `bound` had passed, the database still said "healthy" for more than
    `bound` seconds in all: nobody served and the control plane did not see it (reported, not a
    violation). Each as (start, length, seconds said healthy)."""
    found = []
    for start, length in outages:
        end = start + length
        said_healthy = 0.0
        for i, sample in enumerate(db_samples):
            until = db_samples[i + 1]["t"] if i + 1 < len(db_samples) else end
            if sample["state"] == "healthy":
                said_healthy += max(0.0, min(until, end) - max(sample["t"], start + bound))
        if said_healthy > bound:
            found.append((start, length, said_healthy))
    return found


def tail_violations(records: list[dict]) -> list[Violation]:
    found = []
    for record in records:
        if record["kind"] == "convergence" and not record["converged"]:
            found.append(
                Violation(
                    "unconverged",
                    record["cluster"],
                    record["t"],
                    f"not converged {record['bound_s']:.0f}s after the faults healed: {record['observed']}",
                )  # fmt: skip
            )
        if record["kind"] == "undelivered":
            found.append(Violation("undelivered", record["cluster"], record["t"], " / ".join(record["missing"])))
        if record["kind"] == "recovery":
            for missing in record["missing"]:
                found.append(Violation("unrecovered", record["cluster"], record["t"], f"no recovery for {missing}"))
    return found
