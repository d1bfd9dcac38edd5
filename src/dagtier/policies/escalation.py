"""Escalation yield: is the next tier worth paying for on what reaches it?

A cascade escalates on a failed check. When even the top tier fails an input, the input is
hopeless, not hard (AutoMix): every tier paid on the way up was paid for nothing. Per task
key, each tier's *yield* on escalated inputs is kept under the task key ``KEY#escalated``:
did the answer it gave after a cheaper tier's answer failed pass its checks?

A node that accepts its last answer anyway (``on_exhausted: accept_unverified``) need not
pay for a tier whose yield is below its bar: it stops one tier lower (the *ceiling*) and
accepts that tier's answer unverified, as it would at the top. A node that must fail at its
max tier has to try it, so the ceiling never applies there.

The bar
    Escalating to the top tier must pass at least :attr:`Tuning.min_escalation_yield` (one
    half) of what reaches it: below that, most of what it is paid for on escalation is
    hopeless inputs. A cheaper tier need yield only in proportion to its mean cost relative
    to the top tier's (a tier at a tenth of the price may fix a tenth as often).

Two ways to compare a yield with its bar, one per policy
    * ``cascade`` (quality first) stops only at a tier *ruled out*: the upper bound of its
      yield (mean + :attr:`Tuning.z_ruled_out` sd, ~98% one-sided, the bound on which a
      tier is ruled out for the adaptive target) is below the bar.
    * ``adaptive`` (cost aware) draws the yield from its Beta posterior each run (Thompson
      sampling) and stops when the draw is below the bar. A tier near the bar is escalated
      to in proportion to the chance it clears it, so the policy mixes instead of flapping
      on a few unlucky answers, and uncertain evidence keeps being gathered.

Without enough evidence (:attr:`Tuning.min_yield_weight`, or for the stricter ruled-out test
:attr:`Tuning.min_ruled_out_yield_weight`) a tier is always escalated to (the plain
cascade). A share :attr:`Tuning.explore_ceiling` of capped runs escalates past
the ceiling anyway, so a tier that got better for the task is let back in.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .._types import TIERS, Tier
from .tuning import TUNING, Tuning

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


def _bar(tier: Tier, hi: Tier, stats: Mapping[Tier, TierStats], tuning: Tuning) -> float | None:
    """The yield ``tier`` must reach to be worth escalating to (None: no price yet)."""
    if tier == hi:
        return tuning.min_escalation_yield
    own, top = stats.get(tier), stats.get(hi)
    if own is None or top is None or top.mean_cost <= 0:
        return None
    return tuning.min_escalation_yield * min(1.0, own.mean_cost / top.mean_cost)


def ceiling(
    escalated: Mapping[Tier, TierStats],
    stats: Mapping[Tier, TierStats],
    start: Tier,
    hi: Tier,
    *,
    rng: random.Random | None = None,
    tuning: Tuning | None = None,
) -> Ceiling:
    """The highest tier worth escalating to from ``start`` (``hi`` when none is capped).

    Args:
        escalated: the task key's yields (``KEY#escalated``).
        stats: the task key's tier evidence (for the tiers' mean costs).
        rng: Thompson sampling with this generator (adaptive); None: cap only a tier whose
            yield is ruled out below its bar (cascade).
    """
    tuning = tuning or TUNING
    a0 = tuning.prior
    for tier in TIERS:
        if tier <= start or tier > hi:
            continue
        st = escalated.get(tier)
        need = tuning.min_yield_weight if rng is not None else tuning.min_ruled_out_yield_weight
        if st is None or st.weight < need:
            continue
        bar = _bar(tier, hi, stats, tuning)
        if bar is None:
            continue
        a, b = st.successes + a0, st.failures + a0
        mean = a / (a + b)
        if rng is not None:
            seen = rng.betavariate(a, b)
            how = f"drawn {seen:.2f}"
        else:
            seen = mean + tuning.z_ruled_out * math.sqrt(mean * (1 - mean) / (a + b + 1))
            how = f"upper bound {seen:.2f}"
        if seen < bar:
            below: Tier = tier - 1  # type: ignore[assignment]
            return Ceiling(
                below,
                f"stop at tier {below}: escalated answers pass at tier {tier} only "
                f"{mean:.2f} of the time (n={st.weight:.1f}, {how} < bar {bar:.2f} for its "
                f"price): the rest is paying for hopeless inputs",
            )
    return Ceiling(hi, "")


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
