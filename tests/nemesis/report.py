"""The campaign's report: what ran, the faults injected by kind, what the clusters went through, each
violation with the seed and its time, and availability per cluster — printed and kept as
`report.txt` next to the history, in the form docs/benchmarks.md quotes."""

from __future__ import annotations

import datetime
from collections import Counter
from typing import Any

from tests.nemesis.checkers import Violation
from tests.nemesis.history import History


def _utc(wall: float) -> str:
    return datetime.datetime.fromtimestamp(wall, datetime.UTC).strftime("%H:%M:%S")


def render(
    *,
    seed: int,
    minutes: float,
    history: History,
    violations: list[Violation],
    availability: dict[str, dict[str, Any]],
    events: dict[str, Counter],
    final: dict[str, str],
) -> str:
    lines = [
        f"nemesis: seed {seed}, {minutes:g} minutes of faults, {len(availability)} clusters",
        f"replay: make nemesis SEED={seed} MINUTES={minutes:g} CLUSTERS={len(availability)}",
        "",
    ]
    injected = Counter(r["fault"] for r in history.of("fault") if r["phase"] == "inject")
    lines.append(f"faults injected: {sum(injected.values())}")
    lines += [f"  {kind:<16} {count}" for kind, count in sorted(injected.items())]
    errors = Counter(f"{r['fault']} ({r['phase']}): {r['error'][:100]}" for r in history.of("fault_error"))
    if errors:
        lines.append("faults that could not be injected or healed:")
        lines += [f"  {count} × {what}" for what, count in errors.most_common()]
    refusals = Counter(
        f"{r['action']} {r.get('changes', '')}: {r.get('reasons')}".replace("  ", " ")
        for r in history.of("operator")
        if r["outcome"] == "refused"
    )
    done = Counter(r["action"] for r in history.of("operator") if r["outcome"] != "refused")
    lines.append(f"operator actions carried out: {dict(sorted(done.items()))}")
    if refusals:
        lines.append("operator actions refused:")
        lines += [f"  {count} × {what[:200]}" for what, count in refusals.most_common()]
    exits = Counter(r["process"] for r in history.of("unexpected_exit"))
    if exits:
        lines.append(f"processes that exited on their own (restarted): {dict(exits)}")
    lines += ["", "history per cluster:"]
    for name in sorted(availability):
        counted = ", ".join(f"{kind} {n}" for kind, n in sorted(events[name].items())) or "no events"
        lines.append(f"  {name}: {final[name]}; events: {counted}")
    lines += ["", f"violations: {len(violations)}"]
    for kind, count in sorted(Counter(v.kind for v in violations).items()):
        lines.append(f"  {kind}: {count}")
    for v in sorted(violations, key=lambda v: v.t):
        wall = history.started_wall + (v.t - history.started)
        lines.append(f"  [{v.kind}] {v.cluster} at {history.since(v.t)} ({_utc(wall)} UTC), seed {seed}: {v.message}")
    lines += ["", "availability (share of the campaign in which some appliance served; outages):"]
    for name, figures in sorted(availability.items()):
        outages = [length for _, length in figures["outages"]]
        longest = max(outages, default=0.0)
        lines.append(
            f"  {name}: {figures['share']:.2%}, {len(outages)} outages, longest {longest:.1f}s, "
            f"total {sum(outages):.1f}s"
        )
        for start, length in sorted(figures["outages"], key=lambda o: -o[1])[:3]:
            if length >= 1.0:
                lines.append(f"    {length:.1f}s from {history.since(start)}")
    dark = [(name, *outage) for name, f in availability.items() for outage in f["dark_while_healthy"]]
    if dark:
        lines += ["", "outages the database called healthy (beyond detection + lease + 10 s):"]
        for name, start, length, healthy in sorted(dark, key=lambda d: d[1]):
            lines.append(
                f"  {name}: {length:.1f}s from {history.since(start)}, said healthy {healthy:.1f}s of it, seed {seed}"
            )
    lines += ["", "PASS" if not violations else f"FAIL: {len(violations)} violations (seed {seed})"]
    return "\n".join(lines)
