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

Without enough evidence (:attr:`Tuning.min_yield_weight`, or for the stricter ruled-out test
:attr:`Tuning.min_ruled_out_yield_weight`) a tier is always escalated to (the plain
cascade). A share :attr:`Tuning.explore_ceiling` of capped runs escalates past the ceiling
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
) -> Ceiling:
    """The highest tier worth escalating to from ``start`` (``hi`` when none is capped).

    Args:
        escalated: the task key's yields (``KEY#escalated``).
        stats: the task key's tier evidence (for the tiers' mean costs).
        worth: what a fixed answer is worth, in calls of ``hi`` (the node's ``fix_worth``).
        rng: sample the yield and the worth with this generator (adaptive); None: cap only
            a tier whose yield is ruled out (cascade), at the top of ``worth``'s range.
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
        if st is None or st.weight < need:
            continue
        relative = _relative_cost(tier, hi, stats)
        if relative is None:
            continue
        rate = Rate.of(st.successes, st.failures, tuning)
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
            return Ceiling(
                below,
                f"stop at tier {below}: escalated answers pass at tier {tier} only "
                f"{mean:.2f} of the time (n={st.weight:.1f}, {how}): a fix would cost "
                f"{price:.2f} calls of tier {hi}, more than the {value:.2f} it is worth",
            )
    return Ceiling(hi, "")


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
    stats: StatsStore, task_key: str, attempts: Sequence[Attempt], half_life: float | None
) -> None:
    """Fold each escalation among ``attempts`` (answers of one node, in order) into the
    task key's yields: an answer that followed a failed one, and whether it passed."""
    for prev, a in itertools.pairwise(attempts):
        if prev.verdict == "fail" and a.verdict in ("pass", "fail"):
            await stats.record_observation(
                task_key + ESCALATION_SUFFIX,
                a.tier,
                success=a.verdict == "pass",
                half_life=None if half_life is None else half_life * YIELD_HALF_LIFE_FACTOR,
            )
