"""How long a plan should take, from history: each instance's last run, else the median
of its flow's last runs, else the median of all. No peer forecasts a run from the
durations it already has on disk; a plan does, in its headline (``4 to run, ≈ 41 s
with 2 jobs``) and in the live progress.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence
from typing import Any


def expected_durations(the_plan: Any) -> dict[str, float]:
    """Seconds each instance to run should take; none when no instance has a history."""
    last = the_plan.last_runs
    flows: dict[str, list[float]] = {}
    for decision in the_plan.decisions:
        run = last.get(decision.instance.key)
        if run is not None:
            flows.setdefault(decision.instance.flow, []).append(run.duration_s)
    if not flows:
        return {}
    medians = {flow: _median(times) for flow, times in flows.items()}
    overall = _median([t for times in flows.values() for t in times])
    found = {}
    for decision in the_plan.decisions:
        if decision.run:
            key, flow = decision.instance.key, decision.instance.flow
            run = last.get(key)
            found[key] = run.duration_s if run is not None else medians.get(flow, overall)
    return found


def _median(values: Sequence[float]) -> float:
    """The median (``statistics`` costs 20 ms to import, on a path that must be fast)."""
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def wall_time(the_plan: Any, jobs: int, durations: Mapping[str, float]) -> float | None:
    """Seconds until every instance to run is done with ``jobs`` at once, upstream
    first: each starts on the first free slot once its upstream ended."""
    to_run = [d for d in the_plan.decisions if d.run]
    if not to_run or not durations:
        return None
    slots = [0.0] * max(1, jobs)
    ends: dict[str, float] = {}
    for decision in to_run:
        inst = decision.instance
        ready = max((ends.get(dep, 0.0) for dep in inst.depends_on), default=0.0)
        free = heapq.heappop(slots)
        ends[inst.key] = max(free, ready) + durations.get(inst.key, 0.0)
        heapq.heappush(slots, ends[inst.key])
    return max(ends.values())


def shown(seconds: float) -> str:
    """``41 s``, ``3 min 20 s``, ``1 h 05 min``."""
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.0f} s" if seconds >= 10 else f"{seconds:.1f} s"
    if seconds < 3600:
        minutes, rest = divmod(round(seconds), 60)
        return f"{minutes} min {rest:02d} s"
    hours, rest = divmod(round(seconds) // 60, 60)
    return f"{hours} h {rest:02d} min"
