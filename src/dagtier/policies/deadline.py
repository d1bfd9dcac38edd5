"""Deadlines: a run given ``deadline_s`` starts a late node on the critical path higher up.

At the start of a run, each model node's expected duration under its own policy is worked
out from the statistics: each tier's mean latency for the node's task key (what the
store's :class:`~dagtier.store.TierStats` keep: an answer's call and its checks, the
judge's call included) and its chance of
passing the node's checks, taken through the policy's escalation in expectation (a
cascade from tier ``s`` expects ``sum_t latency_t * P(all tiers before t failed)``, the
same formula :mod:`.forecast` uses for cost). The run's critical path is the longest chain
of those durations (:func:`dagtier.graph.critical_path`); it is found again each time a
node starts higher to fit, since its branch then expects less and another may now be the
longest.

When a node on that path starts, the time left until the deadline is compared with what
its policy expects plus what the rest of the path expects after it. If that misses, the
node starts at the cheapest tier whose expected duration, plus the rest of the path, fits
(a cascade still escalates one tier at a time from there); if no tier fits, at the tier
expected to be fastest. The choice is a floor for the node's policy, like a router's start
tier, and is logged as the node's decision. Nodes off the critical path, static nodes and
code nodes keep their policy.

What is not known is not guessed: a tier with no latency statistics for the node's task
key has no expected duration (the catalog records no latencies to fall back on), so a
node whose own policy's expectation is unknown keeps its policy and says so; unknown
durations count 0 s in the critical path.

The deadline never cancels anything: a run past its deadline keeps running (each critical
node then starts at its fastest tier) and ends as it would, reported as having missed its
deadline. The per-run state lives in a :class:`RunDeadline` made for each run.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple, cast

from .._exceptions import DagtierUsageError
from .._types import Tier
from ..graph import critical_path
from .adaptive import choose, estimates
from .forecast import cascade_cost

if TYPE_CHECKING:
    import networkx as nx

    from ..plan import NodePlan, Plan
    from ..store import StatsStore, TierStats
    from .base import NodeContext

__all__ = ["NodeTiming", "RunDeadline", "apply_deadline", "check_deadline", "plan_deadline"]


def check_deadline(deadline_s: float | None, what: str = "deadline_s") -> float | None:
    """``deadline_s`` if it is a number of seconds above 0.

    Raises:
        DagtierUsageError: 0 or less, nan, infinite, or not a number.
    """
    if deadline_s is None:
        return None
    if (
        isinstance(deadline_s, bool)
        or not isinstance(deadline_s, (int, float))
        or not math.isfinite(deadline_s)
        or deadline_s <= 0
    ):
        raise DagtierUsageError(
            f"{what} must be a number of seconds above 0, got {deadline_s!r} "
            "(leave it out for no deadline)"
        )
    return float(deadline_s)


@dataclass(frozen=True, slots=True)
class NodeTiming:
    """What a model node is expected to take, per start tier, from its statistics."""

    kind: str
    """``cascade`` or ``adaptive``."""
    start: Tier
    """Where its policy starts (adaptive: where its evidence says)."""
    top: Tier
    latency_s: Mapping[Tier, float]
    """Mean latency of one answer per tier with statistics (tiers without are unknown)."""
    pass_rate: Mapping[Tier, float]
    canary: float = 0.0
    """Adaptive's share of runs that also run the top tier after a lower tier's answer."""

    def expected_s(self, start: int) -> float | None:
        """Expected seconds when starting at ``start`` and escalating one tier at a time on
        failed checks (None: a tier it may reach has no latency statistics)."""
        if any(t not in self.latency_s for t in range(start, self.top + 1)):
            return None
        expected = cascade_cost(self.latency_s, self.pass_rate, start, self.top)  # type: ignore[arg-type]
        if self.canary and start < self.top:
            expected += self.canary * self.latency_s[self.top]
        return expected

    def unknown(self, start: int) -> list[int]:
        return [t for t in range(start, self.top + 1) if t not in self.latency_s]


def node_timing(np: NodePlan, stats: Mapping[Tier, TierStats]) -> NodeTiming | None:
    """A cascade or adaptive node's timing (None for static nodes: they keep their tier)."""
    policy = np.policy
    if policy.kind == "static":
        return None
    lo, top = policy.start_tier, policy.top_tier
    latency = {t: st.mean_latency_s for t, st in stats.items() if st.observations > 0}
    if np.checks.bare:
        # only the implicit non-empty check: an answer is all but certain to pass
        passes: dict[Tier, float] = {t: 1.0 for t in latency}
    else:
        passes = {e.tier: e.mean for e in estimates(stats, lo, top)}
    canary = 0.0
    start = lo
    if policy.kind == "adaptive":
        start = choose(stats, lo, top, policy.target).tier
        canary = policy.canary
    return NodeTiming(policy.kind, start, top, latency, passes, canary)


class DeadlineStart(NamedTuple):
    """What the deadline says of a node on the critical path."""

    tier: Tier
    """Where it starts."""
    reason: str
    raised: bool
    """Above where its policy starts (False: it keeps its policy, for ``reason``)."""


class RunDeadline:
    """One run's deadline: the clock, the critical path and the nodes' timings.

    Made per run by :func:`plan_deadline`; the executor asks :func:`apply_deadline` as each
    node on the critical path starts. Never shared between runs.
    """

    __slots__ = (
        "_clock",
        "_durations",
        "_graph",
        "critical",
        "critical_s",
        "deadline_s",
        "ends_at",
        "timings",
    )

    def __init__(
        self,
        deadline_s: float,
        timings: Mapping[str, NodeTiming],
        graph: nx.DiGraph,
        durations: Mapping[str, float],
        *,
        clock: Callable[[], float] = time.monotonic,
        started: float | None = None,
    ) -> None:
        self.deadline_s = deadline_s
        self.timings = timings
        self._graph = graph
        self._durations = dict(durations)
        self.critical: dict[str, float] = {}
        """Node ids on the critical path -> the seconds the path expects after each."""
        self.critical_s = self._find_critical()
        """What the whole critical path expects, under every node's own policy."""
        self._clock = clock
        self.ends_at = (clock() if started is None else started) + deadline_s

    def _find_critical(self) -> float:
        """Find the critical path by the nodes' expected durations; its length."""
        path, total = critical_path(self._graph, self._durations)
        self.critical = {}
        remaining = total
        for nid in path:
            remaining -= self._durations[nid]
            self.critical[nid] = max(remaining, 0.0)
        return total

    def started_at(self, node_id: str, tier: Tier) -> None:
        """A node was started at ``tier`` to fit: its branch now expects less, and another
        may have become the critical one, whose nodes the deadline then looks after."""
        timing = self.timings.get(node_id)
        expected = timing.expected_s(tier) if timing is not None else None
        if expected is not None and expected < self._durations[node_id]:
            self._durations[node_id] = expected
            self._find_critical()

    def left_s(self) -> float:
        return self.ends_at - self._clock()

    def start_for(self, node_id: str, start: Tier, task_key: str) -> DeadlineStart | None:
        """Where a node must start to fit the deadline, and why: a tier above its policy's
        start, or that start with the reason it keeps its policy (unknown latencies, or
        already the fastest). None when there is nothing to say: the node is off the
        critical path, not a cascade or adaptive node, or its policy fits.

        ``start``: where its policy starts (raised by a router's start tier, if any).
        """
        after = self.critical.get(node_id)
        timing = self.timings.get(node_id)
        if after is None or timing is None:
            return None
        left = self.left_s()
        start = max(start, timing.start)
        own = timing.expected_s(start)
        head = f"deadline: {left:.1f} s left, {after:.1f} s of critical path after this node"
        if own is None:
            missing = ", ".join(str(t) for t in timing.unknown(start))
            return DeadlineStart(
                start,
                f"{head}; no latency statistics for tier {missing} of '{task_key}' "
                "(the catalog records none): keeps its policy",
                raised=False,
            )
        if own + after <= left:
            return None  # fits: nothing to say on every node of every run
        policy = f"{timing.kind} from tier {start} expects {own:.1f} s"
        options = [
            (t, e)
            for t in range(start + 1, timing.top + 1)
            if (e := timing.expected_s(t)) is not None
        ]
        fits = next(((t, e) for t, e in options if e + after <= left), None)
        if fits is not None:
            tier, expected = fits
            why = f"starting at tier {tier} ({expected:.1f} s)"
            return DeadlineStart(cast(Tier, tier), f"{head}; {policy}; {why}", raised=True)
        tier, expected = min([(start, own), *options], key=lambda te: te[1])
        if tier == start:
            why = "no tier fits and it is the fastest: keeps its policy"
            return DeadlineStart(start, f"{head}; {policy}; {why}", raised=False)
        why = f"no tier fits: starting at tier {tier}, the fastest ({expected:.1f} s)"
        return DeadlineStart(cast(Tier, tier), f"{head}; {policy}; {why}", raised=True)


def apply_deadline(deadline: RunDeadline, ctx: NodeContext, start: Tier) -> None:
    """Decide a node's start against the run's deadline (:meth:`RunDeadline.start_for`):
    log the decision, and set the floor its policy starts from."""
    said = deadline.start_for(ctx.node_id, start, ctx.task_key)
    if said is not None:
        ctx.decide(said.tier, said.reason)
        if said.raised:
            ctx.deadline_start = said.tier
            deadline.started_at(ctx.node_id, said.tier)


async def plan_deadline(
    plan: Plan,
    stats: StatsStore | None,
    deadline_s: float,
    *,
    done: Collection[str] = (),
    clock: Callable[[], float] = time.monotonic,
    started: float | None = None,
) -> RunDeadline:
    """The run's deadline state: each model node's timing from ``stats`` (one read per
    task key), and the critical path by expected duration (nodes in ``done``, finished in
    an earlier session of a resumed run, take no time).

    Args:
        plan: the run's plan.
        stats: where the latencies are (None: none are known; every node keeps its policy).
        deadline_s: seconds from ``started`` (default: now) that the run should end by.
        done: nodes already finished.
        clock: the monotonic clock (injected by tests).
        started: when the run started, on ``clock``.
    """
    timings: dict[str, NodeTiming] = {}
    durations: dict[str, float] = dict.fromkeys(plan.order, 0.0)
    read: dict[str, Mapping[Tier, TierStats]] = {}
    for nid in plan.order:
        np = plan.nodes[nid]
        if nid in done or np.kind not in ("prompt", "agent"):
            continue  # finished, or code: no tier to choose, no latency recorded
        if np.task_key not in read:
            read[np.task_key] = await stats.tier_stats(np.task_key) if stats is not None else {}
        by_tier = read[np.task_key]
        timing = node_timing(np, by_tier)
        if timing is not None:
            timings[nid] = timing
            durations[nid] = timing.expected_s(timing.start) or 0.0
        else:
            st = by_tier.get(np.policy.start_tier)
            durations[nid] = st.mean_latency_s if st is not None else 0.0
    return RunDeadline(deadline_s, timings, plan.graph, durations, clock=clock, started=started)
