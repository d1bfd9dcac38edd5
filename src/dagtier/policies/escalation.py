"""Escalation yield: is the next tier worth paying for on what reaches it?

A cascade escalates on a failed check. When even the top tier fails an input, the input is
hopeless, not hard (AutoMix): every tier paid on the way up was paid for nothing. Per task
key, each tier's *yield* on escalated inputs is kept under the task key ``KEY#escalated``:
did the answer it gave after a cheaper tier's answer failed pass its checks?

A node that accepts its last answer anyway (``on_exhausted: accept_unverified``) need not
pay for a tier whose fixes cost more than they are worth: it stops one tier lower (the
*ceiling*) and accepts that tier's answer unverified, as it would at the top. A node that
must fail at its max tier has to try it, so the ceiling never applies there.

The price of a fix
    Escalating to tier t costs its mean cost (judge included) and fixes a share *yield* of
    what reaches it, so one fixed answer costs ``mean cost / yield``. It is compared with
    what a fixed answer is worth, the node's ``fix_worth``, in calls of the max tier: at 2
    (cascade's default) the max tier must fix half of what reaches it; a tier at a tenth of
    its price, a twentieth. The unit follows the ladder, so the default suits any models.

Two ways to compare, one per policy
    * ``cascade`` (quality first) stops only at a tier *ruled out*: even the upper bound of
      its yield (mean + :attr:`Tuning.z_ruled_out` sd, ~98% one-sided, the bound on which a
      tier is ruled out for the adaptive target) makes a fix cost more than it is worth.
    * ``adaptive`` (cost aware) decides each run on two draws: the yield from its Beta
      posterior (Thompson sampling: uncertain evidence keeps being gathered) and the worth
      of a fix, log-uniform over its ``fix_worth`` range (default 1 to 3 max-tier calls: the
      policy does not know what a right answer is worth to the user, and a spread belief
      makes it escalate in proportion to the chance that the fix pays). With one number
      instead of a range it would settle on all or nothing per task key; with a range it
      mixes, and its quality and cost move smoothly with the evidence instead of flipping
      on a few answers. A tier that fixes everything is always worth it; one whose fixes
      cost more than 3 max-tier calls, never.

What the node learnt elsewhere (``adaptive``)
    A node's runs may file their evidence under several task keys: a router's input
    classes, or a replay's categories. A tier's yield is largely the models' own (a top
    model that answers worse than the one below fixes little in any category), so each
    escalation is also kept for the node as a whole (``WORKFLOW/NODE#escalated@node``).
    A key's yield starts from the node's other keys' evidence, shrunk to at most
    :attr:`Tuning.pooled_yield_weight` (a hierarchical prior): a new class draws from what
    the node learnt instead of paying the top tier until it has failed there on its own,
    and after as many answers of its own its evidence outweighs the prior. A node with one
    key has no other evidence: the prior is nothing.

Without enough evidence (:attr:`Tuning.min_yield_weight`, counting the prior, or for the
stricter ruled-out test :attr:`Tuning.min_ruled_out_yield_weight`) a tier is always
escalated to (the plain cascade). A share :attr:`Tuning.explore_ceiling` of capped runs escalates past the ceiling
anyway, so a tier that got better for the task is let back in.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .._types import TIERS, FixWorth, Tier
from .tuning import TUNING, Rate, Tuning

if TYPE_CHECKING:
    from ..results import Attempt
    from ..store import StatsStore, TierStats

ESCALATION_SUFFIX = "#escalated"
"""Task key suffix under which each tier's yield on escalated inputs is kept."""
NODE_ESCALATION_SUFFIX = "#escalated@node"
"""Suffix of ``WORKFLOW/NODE`` under which a node's yields over all its task keys are kept."""
YIELD_HALF_LIFE_FACTOR = 4.0
"""Yields are small-sample rates near their bar: they fade this many times slower than the
tier evidence, so a ceiling does not flap on a short bad streak."""


@dataclass(frozen=True, slots=True)
class Ceiling:
    top: Tier
    """The highest tier worth escalating to."""
    reason: str
    """Why (empty when nothing caps the cascade)."""


def _relative_cost(tier: Tier, hi: Tier, stats: Mapping[Tier, TierStats]) -> float | None:
    """A call of ``tier`` in calls of ``hi`` (None: no price seen yet)."""
    if tier == hi:
        return 1.0
    own, top = stats.get(tier), stats.get(hi)
    if own is None or top is None or top.mean_cost <= 0:
        return None
    return min(1.0, own.mean_cost / top.mean_cost)


def node_yields_key(workflow: str, node_id: str) -> str:
    """Where a node's yields over every task key its runs used are kept (the prior of each)."""
    return f"{workflow}/{node_id}{NODE_ESCALATION_SUFFIX}"


def pooled_prior(
    own: TierStats | None, node: TierStats | None, tuning: Tuning | None = None
) -> tuple[float, float]:
    """The prior (successes, failures) of one key's yield at a tier: the node's evidence
    from its other keys (the node's minus the key's own; approximately, since the node's
    evidence fades with the node's observations and the key's with its own), scaled down
    to at most :attr:`Tuning.pooled_yield_weight`."""
    if node is None:
        return 0.0, 0.0
    cap = (tuning or TUNING).pooled_yield_weight
    s = max(0.0, node.successes - (own.successes if own is not None else 0.0))
    f = max(0.0, node.failures - (own.failures if own is not None else 0.0))
    if s + f > cap:
        s, f = s * cap / (s + f), f * cap / (s + f)
    return s, f


def draw_worth(worth: FixWorth, rng: random.Random) -> float:
    """One draw of a fix's worth: log-uniform over a range, the value itself otherwise."""
    if isinstance(worth, tuple):
        low, high = worth
        return float(low * (high / low) ** rng.random())
    return worth


def ceiling(
    escalated: Mapping[Tier, TierStats],
    stats: Mapping[Tier, TierStats],
    start: Tier,
    hi: Tier,
    *,
    worth: FixWorth = 2.0,
    rng: random.Random | None = None,
    tuning: Tuning | None = None,
    node: Mapping[Tier, TierStats] | None = None,
) -> Ceiling:
    """The highest tier worth escalating to from ``start`` (``hi`` when none is capped).

    Args:
        escalated: the task key's yields (``KEY#escalated``).
        stats: the task key's tier evidence (for the tiers' mean costs).
        worth: what a fixed answer is worth, in calls of ``hi`` (the node's ``fix_worth``).
        rng: sample the yield and the worth with this generator (adaptive); None: cap only
            a tier whose yield is ruled out (cascade), at the top of ``worth``'s range.
        node: the node's yields over all its task keys (:func:`node_yields_key`): with
            ``rng``, the prior of this key's (:func:`pooled_prior`).
    """
    tuning = tuning or TUNING
    need = tuning.min_yield_weight if rng is not None else tuning.min_ruled_out_yield_weight
    if rng is not None:
        value = draw_worth(worth, rng)
    else:
        value = worth[1] if isinstance(worth, tuple) else worth
    for tier in TIERS:
        if tier <= start or tier > hi:
            continue
        st = escalated.get(tier)
        s = st.successes if st is not None else 0.0
        f = st.failures if st is not None else 0.0
        ps, pf = (
            pooled_prior(st, node.get(tier), tuning) if node and rng is not None else (0.0, 0.0)
        )
        if s + f + ps + pf < need:
            continue
        relative = _relative_cost(tier, hi, stats)
        if relative is None:
            continue
        rate = Rate.of(s + ps, f + pf, tuning)
        mean = rate.mean
        if rng is not None:
            seen = rng.betavariate(rate.a, rate.b)
            how = f"drawn {seen:.2f}"
        else:
            seen = rate.upper(tuning.z_ruled_out)
            how = f"upper bound {seen:.2f}"
        if seen * value < relative:
            below: Tier = tier - 1  # type: ignore[assignment]
            price = relative / seen if seen > 0 else math.inf
            prior = f" + {ps + pf:.1f} from the node's other keys" if ps + pf else ""
            return Ceiling(
                below,
                f"stop at tier {below}: escalated answers pass at tier {tier} only "
                f"{mean:.2f} of the time (n={s + f:.1f}{prior}, {how}): a fix would cost "
                f"{price:.2f} calls of tier {hi}, more than the {value:.2f} it is worth",
            )
    return Ceiling(hi, "")


async def ceiling_evidence(
    stats: StatsStore, *task_keys: str, tuning: Tuning | None = None
) -> tuple[Mapping[Tier, TierStats], Mapping[Tier, TierStats]] | None:
    """The yields and tier evidence of the first of ``task_keys`` that has some (a router's
    class, then the node's key it came from), for :func:`ceiling` with ``rng=None`` (a
    cascade's): None while no tier's yield under any of them has the weight to be ruled out
    (the prices are read only then)."""
    tuning = tuning or TUNING
    for key in task_keys:
        yields = await stats.tier_stats(key + ESCALATION_SUFFIX)
        if any(st.weight >= tuning.min_ruled_out_yield_weight for st in yields.values()):
            return yields, await stats.tier_stats(key)
    return None


def settled(
    escalated: Mapping[Tier, TierStats],
    stats: Mapping[Tier, TierStats],
    tier: Tier,
    hi: Tier,
    worth: FixWorth,
    tuning: Tuning | None = None,
) -> bool:
    """Whether more verdicts on ``tier``'s escalated answers can no longer change whether
    it is escalated to: on enough evidence, even its yield's lower bound pays for a fix at
    the least a fix is worth, or even its upper bound does not at the most. Until then the
    judge at that tier is evidence, not waste."""
    tuning = tuning or TUNING
    st = escalated.get(tier)
    relative = _relative_cost(tier, hi, stats)
    if st is None or st.weight < tuning.min_ruled_out_yield_weight or relative is None:
        return False
    low, high = worth if isinstance(worth, tuple) else (worth, worth)
    rate = Rate.of(st.successes, st.failures, tuning)
    z = tuning.z_ruled_out
    return (rate.mean - z * rate.sd) * low >= relative or rate.upper(z) * high < relative


def explore_past(
    cap: Ceiling, hi: Tier, rng: random.Random, tuning: Tuning | None = None
) -> Ceiling:
    """Lift a ceiling for this run with probability :attr:`Tuning.explore_ceiling`."""
    tuning = tuning or TUNING
    if cap.top < hi and rng.random() < tuning.explore_ceiling:
        return Ceiling(hi, f"{cap.reason}; exploring: may escalate to tier {hi} this run")
    return cap


async def record_escalations(
    stats: StatsStore,
    task_key: str,
    attempts: Sequence[Attempt],
    half_life: float | None,
    node_key: str | None = None,
) -> None:
    """Fold each escalation among ``attempts`` (answers of one node, in order) into the
    task key's yields, and into the node's (``node_key``, from :func:`node_yields_key`)
    when given: an answer that followed a failed one, and whether it passed."""
    keys = [task_key + ESCALATION_SUFFIX] + ([node_key] if node_key is not None else [])
    for prev, a in itertools.pairwise(attempts):
        if prev.verdict == "fail" and a.verdict in ("pass", "fail"):
            for key in keys:
                await stats.record_observation(
                    key,
                    a.tier,
                    success=a.verdict == "pass",
                    half_life=None if half_life is None else half_life * YIELD_HALF_LIFE_FACTOR,
                )
