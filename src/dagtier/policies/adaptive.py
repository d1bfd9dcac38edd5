"""``adaptive``: learn per task key which is the cheapest tier that meets the target.

Evidence
    For each (task key, tier) the store keeps decayed successes and failures. A success is
    an answer that passed its checks, or an outcome the application reports later with
    :func:`record_outcome`, which weighs :data:`OUTCOME_WEIGHT` times a check. Old evidence
    fades by half every ``half_life`` newer observations of the same (task key, tier), so
    a model that got worse is noticed.

Decision (:func:`choose`)
    Each tier's success rate is a Beta posterior (Jeffreys prior) over its evidence. The
    node starts on the cheapest tier whose *lower* bound reaches the target ("proven").
    Lower bounds are kept monotone across tiers: a higher tier is assumed at least as good
    as the one below it unless its own evidence (its upper bound) says otherwise. When no
    tier is proven yet, the node runs as a cascade from the cheapest tier not yet ruled
    out (upper bound below target, on enough evidence) — that is how evidence is gathered.
    When every tier is ruled out (the target is out of reach), it cascades from the bottom:
    with a judge, a cascade is the cheapest way to the best answer there is.

    Whatever the start, an answer that fails its checks escalates one tier at a time, as
    in a cascade, up to a learnt *ceiling* when the node accepts unverified answers: a
    tier is paid for only when, on this run's draws of its yield on escalated inputs and
    of what a fix is worth (``fix_worth``), a fix costs less than it is worth (see
    :mod:`dagtier.policies.escalation`; a key's yield starts from what the node learnt under
    its other keys, such as a router's input classes). The answer at the ceiling is judged
    while the ceiling tier's yield is being learnt (until it has
    :attr:`Tuning.min_ruled_out_yield_weight` of evidence), and a share
    :attr:`Tuning.judge_at_ceiling` after that. A small share of runs (:attr:`Tuning.explore`)
    starts one tier below a proven tier, so a cheaper tier that became good enough is
    demoted to again; the share ``canary`` of runs also runs the top tier as a quality
    canary (below).

What counts, and how much
    * AutoMix's lesson: when even the top tier fails an input, the input is hopeless, not
      hard; the cheaper tiers' failures on it count only :attr:`Tuning.hopeless_weight`.
    * The canary's answer is compared with the accepted one. When the canary passed its
      checks and the two answers are comparable (JSON nodes, or short answers such as
      labels) and differ, the accepted answer's pass is counted as a failure instead: the
      judge let a wrong answer through, the silent drop the canary exists to catch.
    * RouterBench's lesson: a judge wrong too often makes a cascade worthless. Reported
      outcomes, and the canary's answer where it is comparable, are compared with the
      judge's verdict and kept as the judge's agreement per tier under the task key
      ``KEY#judge`` (shown by ``dagtier stats``). A start tier whose judged verdicts are
      ruled out as agreeing less often than the next tier's answers pass is not trusted:
      its passes would be worse answers than the next tier gives, so the node starts one
      tier higher (all but a share :attr:`Tuning.explore` of runs, which keep measuring).

Every decision is logged with the estimates it compared (``ctx.decide``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .._exceptions import DagtierUsageError
from .._types import TIERS, Tier
from ..results import Attempt
from .base import AttemptFailed, NodeContext, Outcome
from .cascade import cascade_from
from .checks import callable_problem
from .escalation import (
    ESCALATION_SUFFIX,
    ceiling,
    explore_past,
    node_yields_key,
    record_escalations,
)
from .routers import floor_by, learn_reported, start_floor
from .tuning import TUNING, Rate, Tuning

if TYPE_CHECKING:
    from ..spec.models import AdaptivePolicy
    from ..store import RunStore, TierStats

OUTCOME_WEIGHT = 3.0
"""A reported real outcome counts as this many judge verdicts."""
JUDGE_SUFFIX = "#judge"
"""Task key suffix under which the judge's agreement with reported outcomes is kept."""
EVAL_SUFFIX = "#eval"
"""Statistics keys ``TASK#eval`` count the evidence an eval seeded into ``TASK``."""


@dataclass(frozen=True, slots=True)
class Estimate:
    tier: Tier
    successes: float
    failures: float
    mean: float
    """Posterior mean, monotone across tiers."""
    lower: float
    """Conservative estimate (posterior lower bound), monotone across tiers."""
    upper: float
    own_mean: float
    """Posterior mean from this tier's own evidence only."""

    @property
    def weight(self) -> float:
        return self.successes + self.failures

    def describe(self) -> str:
        return f"t{self.tier} {self.lower:.2f}..{self.upper:.2f} (n={self.weight:.1f})"


@dataclass(frozen=True, slots=True)
class Choice:
    tier: Tier
    """Where the node starts."""
    proven: bool
    """The start tier's lower bound reaches the target."""
    reason: str
    estimates: tuple[Estimate, ...]


def estimates(
    stats: Mapping[Tier, TierStats], lo: Tier, hi: Tier, tuning: Tuning | None = None
) -> tuple[Estimate, ...]:
    """Per tier in [lo, hi]: posterior mean and bounds, lower bounds and means monotone."""
    tuning = tuning or TUNING
    out: list[Estimate] = []
    prev_lower = prev_mean = 0.0
    for tier in TIERS:
        if tier < lo or tier > hi:
            continue
        st = stats.get(tier)
        s = st.successes if st is not None else 0.0
        f = st.failures if st is not None else 0.0
        rate = Rate.of(s, f, tuning)
        mean = rate.mean
        own_lower = max(0.0, rate.upper(-tuning.z_proven))
        z = tuning.z_explored if s + f >= tuning.explored_weight else tuning.z_ruled_out
        upper = min(1.0, rate.upper(z))
        # a higher tier is at least as good as the one below, unless its own evidence says
        # otherwise: lift it, but never above what its own upper bound allows
        lower = max(own_lower, min(prev_lower, upper))
        lifted = max(mean, min(prev_mean, upper))
        out.append(Estimate(tier, s, f, lifted, lower, upper, mean))
        prev_lower, prev_mean = lower, lifted
    return tuple(out)


def choose(
    stats: Mapping[Tier, TierStats],
    lo: Tier,
    hi: Tier,
    target: float,
    tuning: Tuning | None = None,
) -> Choice:
    """The tier to start on, and why (the estimates compared, for the log)."""
    tuning = tuning or TUNING
    ests = estimates(stats, lo, hi, tuning)
    compared = ", ".join(e.describe() for e in ests)
    for e in ests:
        if e.lower >= target:
            return Choice(
                e.tier,
                True,
                f"tier {e.tier} is the cheapest proven to reach target {target:g} "
                f"(lower bound {e.lower:.3f}; estimates {compared})",
                ests,
            )
    for e in ests:
        if e.weight < tuning.min_ruled_out_weight or e.upper >= target:
            return Choice(
                e.tier,
                False,
                f"no tier proven to reach target {target:g} yet; tier {e.tier} is the cheapest "
                f"not ruled out: cascade from it to gather evidence (estimates {compared})",
                ests,
            )
    return Choice(
        lo,
        False,
        f"no tier can reach target {target:g} (estimates {compared}): "
        f"cascade from tier {lo} for the best answer at the least cost",
        ests,
    )


def distrust(
    trust: Mapping[Tier, TierStats],
    ests: tuple[Estimate, ...],
    tier: Tier,
    lo: Tier,
    tuning: Tuning | None = None,
) -> str | None:
    """Why the judge's passes at ``tier`` are not to be trusted (None: trusted, or too
    little known): even the upper bound of its agreement with the truth is below the rate
    at which the next tier's answers pass (``ests`` must reach ``tier + 1``)."""
    tuning = tuning or TUNING
    st = trust.get(tier)
    if st is None or st.weight < tuning.min_ruled_out_weight:
        return None
    agreement = Rate.of(st.successes, st.failures, tuning)
    mean, upper = agreement.mean, agreement.upper(tuning.z_ruled_out)
    bar = ests[tier + 1 - lo].mean
    if upper >= bar:
        return None
    return (
        f"the judge's verdicts at tier {tier} agree with the truth only {mean:.2f} of the "
        f"time (n={st.weight:.1f}, upper bound {upper:.2f}), below the {bar:.2f} at which "
        f"tier {tier + 1}'s answers pass: its passes are not trusted, tier {tier + 1} first"
    )


def trusted_start(
    trust: Mapping[Tier, TierStats], ests: tuple[Estimate, ...], start: Tier, lo: Tier, hi: Tier
) -> tuple[Tier, str]:
    """The first tier from ``start`` up whose judged passes are trusted (see
    :func:`distrust`; the top tier's verdicts route nothing), and why the ones below it
    were passed over ("" when none was)."""
    why: list[str] = []
    while start < hi:
        reason = distrust(trust, ests, start, lo)
        if reason is None:
            break
        why.append(reason)
        start = start + 1  # type: ignore[assignment]
    return start, "; ".join(why)


async def run_adaptive(ctx: NodeContext) -> Outcome:
    policy = ctx.workflow.node_policy(ctx.node_id)
    assert policy.kind == "adaptive"
    problem = callable_problem(ctx)
    if problem:
        return Outcome("failed", None, problem)
    lo, hi = policy.min_tier, policy.max_tier
    if ctx.stats is None:
        ctx.decide(lo, f"no statistics store: cascade from tier {lo}")
        return await cascade_from(ctx, lo, hi, policy.on_exhausted)
    stats = await ctx.stats.tier_stats(ctx.task_key)
    choice = choose(stats, lo, hi, policy.target)
    start, reason = choice.tier, choice.reason
    if choice.proven and start > lo:
        below = choice.estimates[start - 1 - lo]
        rate = TUNING.explore_plausible if below.upper >= policy.target else TUNING.explore
    else:
        rate = 0.0
    if rate and ctx.rng.random() < rate:
        start = start - 1  # type: ignore[assignment]
        reason += f"; exploring: tier {start} first this run, to see if it got good enough"
    if choice.tier <= start < hi:  # an exploring run goes below on purpose
        trust = await ctx.stats.tier_stats(ctx.task_key + JUDGE_SUFFIX)
        trusted, why = trusted_start(trust, choice.estimates, start, lo, hi)
        # a share of runs keeps measuring the judge where it is not trusted
        if trusted != start and ctx.rng.random() >= TUNING.explore:
            start, reason = trusted, f"{reason}; {why}"
    floor = start_floor(ctx, start, hi)
    if floor != start:
        start = floor
        reason += f"; {floor_by(ctx, start)} starts this input at tier {start}"
    top = hi
    yield_open = False
    if policy.on_exhausted == "accept_unverified" and start < hi:
        # a node that fails at its max tier must have tried it; one that accepts the last
        # answer anyway need not pay for a tier that rarely fixes what reaches it
        yields = await ctx.stats.tier_stats(ctx.task_key + ESCALATION_SUFFIX)
        node = await ctx.stats.tier_stats(node_yields_key(ctx.workflow.name, ctx.node_id))
        cap = ceiling(yields, stats, start, hi, worth=policy.fix_worth, rng=ctx.rng, node=node)
        cap = explore_past(cap, hi, ctx.rng)
        top = cap.top
        # the verdicts at the ceiling are its yield's evidence: all are judged until the
        # yield has enough (Thompson draws weigh the uncertainty left), then a share. Not
        # until the yield is settled: one near its bar never settles (the inverted ladder's
        # tier 2 fixes about what it costs), and every verdict there changes nothing
        seen = yields.get(top)
        yield_open = top > start and (
            seen is None or seen.weight < TUNING.min_ruled_out_yield_weight
        )
        if cap.reason:
            reason += "; " + cap.reason
    ctx.decide(start, reason)
    first = len(ctx.attempts)
    # drawn before the answer: a canary run judges even at the ceiling (its verdict is
    # compared with the canary's)
    canary_run = policy.canary > 0 and start < hi and ctx.rng.random() < policy.canary
    try:
        outcome = await cascade_from(
            ctx,
            start,
            top,
            policy.on_exhausted,
            record_evidence=False,
            half_life=policy.half_life,
            ceiling_of=hi if top < hi else None,
            # the ceiling's verdict is still evidence while its rate is being learnt
            judge_top=canary_run or yield_open or not _rate_settled(choice, top, lo, policy.target),
        )
    except AttemptFailed:
        await _record_evidence(ctx, policy, first, None, None)
        raise
    answer = outcome.attempt
    canary: Attempt | None = None
    if canary_run and outcome.status == "succeeded" and answer is not None and answer.tier < hi:
        canary = await _run_canary(ctx, answer, hi)
    await _record_evidence(ctx, policy, first, answer, canary)
    return outcome


def _rate_settled(choice: Choice, tier: Tier, lo: Tier, target: float) -> bool:
    """Whether ``tier``'s verdicts can no longer move where adaptive starts: its rate is
    proven to reach the target, or ruled out on enough evidence."""
    e = choice.estimates[tier - lo]
    ruled_out = e.weight >= TUNING.min_ruled_out_weight and e.upper < target
    return e.lower >= target or ruled_out


async def _run_canary(ctx: NodeContext, answer: Attempt, top: Tier) -> Attempt | None:
    try:
        canary = await ctx.attempt(top, purpose="canary", record_evidence=False)
    except AttemptFailed as exc:
        # the answer stands; a canary that cannot reach the top tier is only logged
        ctx.log.warning("canary could not run", node=ctx.node_id, error=str(exc.cause))
        return None
    same = _agree(ctx, answer, canary)
    agreement = {True: "answers agree", False: "answers differ", None: "answers not comparable"}
    ctx.decide(
        top,
        f"quality canary: tier {top} also ran ({canary.verdict}) beside tier {answer.tier} "
        f"({answer.verdict}): {agreement[same]}",
    )
    return canary


def _agree(ctx: NodeContext, a: Attempt, b: Attempt) -> bool | None:
    if ctx.node.output.format == "json":
        if a.index not in ctx.parsed or b.index not in ctx.parsed:
            return None
        return bool(ctx.parsed[a.index] == ctx.parsed[b.index])
    x, y = a.output or "", b.output or ""
    limit = TUNING.comparable_chars
    if len(x) > limit or len(y) > limit:
        return None
    return _norm(x) == _norm(y)


def _norm(text: str) -> str:
    return " ".join(text.casefold().split()).strip(" .!\"'`*")


async def _record_evidence(
    ctx: NodeContext,
    policy: AdaptivePolicy,
    first: int,
    answer: Attempt | None,
    canary: Attempt | None,
) -> None:
    """Fold this node's checked attempts into the store, weighted as the module says."""
    stats = ctx.stats
    assert stats is not None
    unjudged = ctx.unjudged or ()
    tried = [
        a
        for a in ctx.attempts[first:]
        if a.purpose == "answer"
        and a.verdict in ("pass", "fail", "unchecked")
        and a.index not in unjudged
    ]
    top = policy.max_tier
    hopeless = any(a.tier == top and a.verdict == "fail" for a in tried)
    agree = None
    if canary is not None and answer is not None and canary.verdict != "fail":
        agree = _agree(ctx, answer, canary)
        judged = _judge_passed(answer)
        if agree is not None and judged is not None:
            # the canary's answer stands in for the truth: was the judge right?
            await stats.record_observation(
                ctx.task_key + JUDGE_SUFFIX,
                answer.tier,
                success=judged == agree,
                half_life=policy.half_life,
            )
    caught = agree is False
    node_key = node_yields_key(ctx.workflow.name, ctx.node_id)
    await record_escalations(stats, ctx.task_key, tried, policy.half_life, node_key)
    for a in tried:
        success = a.verdict != "fail"
        weight = 1.0
        if a is answer and caught:
            success = False
        elif not success and hopeless and a.tier < top:
            weight = TUNING.hopeless_weight
        await stats.record_observation(
            ctx.task_key,
            a.tier,
            success=success,
            weight=weight,
            cost=a.total_cost,
            latency_s=a.latency_s,
            half_life=policy.half_life,
        )
    if canary is not None and canary.verdict in ("pass", "fail", "unchecked"):
        await stats.record_observation(
            ctx.task_key,
            canary.tier,
            success=canary.verdict != "fail",
            cost=canary.total_cost,
            latency_s=canary.latency_s,
            half_life=policy.half_life,
        )


# --- outcomes reported by the application ---------------------------------------------------


async def record_outcome(
    run_id: str,
    node_id: str,
    success: bool,
    *,
    store: Any,
    weight: float = OUTCOME_WEIGHT,
    half_life: float | None = 50.0,
) -> None:
    """Report how a node's answer really fared (a user accepted it, a test passed, a
    ticket was reopened). It counts ``weight`` times a quality check in the adaptive
    policy's evidence for the node's task key and the tier that answered.

    When the answer had passed an LLM judge, whether the judge agreed with this outcome is
    kept too (task key ``KEY#judge``), so a judge that is often wrong shows in
    ``dagtier stats``. When a router routed the node's input in this process, it learns the
    outcome too (a classifier router's model lives in memory, with its plan).

    Args:
        run_id: the run, as in ``RunResult.run_id``.
        node_id: the node whose answer the outcome is about.
        success: whether the answer turned out right.
        store: the store the run was recorded in; must implement both ``RunStore`` (to
            find the node's task key and tier) and ``StatsStore``.
        weight: how many checks the outcome is worth (default :data:`OUTCOME_WEIGHT`).
        half_life: the evidence half-life (use the node's ``policy.half_life``).

    Raises:
        DagtierUsageError: the store is not both kinds of store, or the run or node is
            unknown, or the node has no answer to judge.
    """
    from ..store import RunStore, StatsStore

    if not isinstance(store, RunStore) or not isinstance(store, StatsStore):
        raise DagtierUsageError(
            f"record_outcome() needs the store the run was recorded in (a RunStore and a "
            f"StatsStore, e.g. dagtier.MemoryStore or the SQLite store), got {type(store).__name__}"
        )
    if not weight > 0:
        raise DagtierUsageError(f"record_outcome(weight=...) must be > 0, got {weight!r}")
    loaded = await _load(store, run_id)
    _, nodes = loaded
    result = nodes.get(node_id)
    if result is None:
        raise DagtierUsageError(
            f"run '{run_id}' has no finished node '{node_id}'; its nodes: "
            + (", ".join(sorted(nodes)) or "(none)")
        )
    if result.tier is None or result.task_key is None:
        raise DagtierUsageError(
            f"node '{node_id}' of run '{run_id}' ended {result.status} without an answer; "
            "there is no answer whose outcome could be recorded"
        )
    tier: Tier = result.tier
    await store.record_observation(
        result.task_key, tier, success=success, weight=weight, half_life=half_life
    )
    answered = [a for a in result.attempts if a.purpose == "answer" and a.tier == tier]
    cost = answered[-1].cost if answered else None
    await learn_reported(run_id, node_id, tier, success, cost)
    judged = _judge_verdict(result.attempts, tier, result.text)
    if judged is not None:
        await store.record_observation(
            result.task_key + JUDGE_SUFFIX, tier, success=judged == success, half_life=half_life
        )


async def _load(store: RunStore, run_id: str) -> tuple[Any, dict[str, Any]]:
    loaded = await store.load_run(run_id)
    if loaded is None:
        recent = [r.run_id for r in await store.list_runs(5)]
        raise DagtierUsageError(
            f"no run '{run_id}' in the store"
            + (f"; recent runs: {', '.join(recent)}" if recent else " (the store has no runs)")
        )
    return loaded


def _judge_verdict(attempts: list[Attempt], tier: int, text: str | None) -> bool | None:
    """What the judge said about the accepted answer (None: no judge looked at it)."""
    for a in reversed(attempts):
        if a.purpose == "answer" and a.tier == tier and a.output == text:
            return _judge_passed(a)
    return None


def _judge_passed(attempt: Attempt) -> bool | None:
    """The judge's verdict on ``attempt`` (None: no judge looked at it)."""
    for c in attempt.checks:
        if c.check == "judge":
            return c.passed
    return None
