"""The adaptive policy's constants, and the escalation yield's (shared with ``cascade``)."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Tuning:
    """The adaptive policy's constants. Tuned on synthetic tasks (tests/policies) so that it
    settles within 50 runs and re-promotes within 20 after a drop, across seeds."""

    prior: float = 0.5
    """Jeffreys prior Beta(0.5, 0.5): little pull towards 1/2 on a few observations."""
    z_proven: float = 1.28
    """A tier is proven when mean - z * sd of its posterior reaches the target (~90% one-sided)."""
    z_ruled_out: float = 2.0
    """A tier is ruled out when mean + z * sd stays below the target (~98% one-sided) ..."""
    min_ruled_out_weight: float = 4.0
    """... on at least this much evidence: one early failure must not bury a tier."""
    explored_weight: float = 12.0
    z_explored: float = 1.0
    """A tier with at least ``explored_weight`` of evidence is ruled out on a tighter upper
    bound (mean + z_explored * sd): early noise is forgiven, but a proven tier that
    degrades is left after about ten failures, not dozens."""
    explore: float = 0.05
    """Share of runs on a proven tier that first try the tier below it ..."""
    explore_plausible: float = 0.25
    """... or this share, once the tier below is plausible again (its upper bound reaches
    the target): a cheaper tier that recovered is demoted to in a few hundred runs, not
    thousands, while the start stays on the proven tier most of the time."""
    hopeless_weight: float = 0.25
    """Weight of a cheaper tier's failure on an input that even the top tier failed."""
    comparable_chars: int = 100
    """Text answers up to this long are compared with the canary's (labels, numbers)."""
    min_yield_weight: float = 8.0
    """No ceiling before a tier has this much escalation evidence (the plain cascade)."""
    min_ruled_out_yield_weight: float = 24.0
    """``cascade`` stops below a tier only once its yield is ruled out (mean + z_ruled_out *
    sd makes a fix cost more than it is worth), on at least this much evidence: with less, a
    few unlucky early answers (1 pass in 9 where half pass) would rule out a tier that
    pays, and a capped tier gathers evidence only by exploring. ``adaptive`` samples the
    yield instead (Thompson), which weighs its own uncertainty."""
    pooled_yield_weight: float = 8.0
    """``adaptive``: a task key's yield at a tier starts from at most this much of its
    node's evidence from other keys (input classes, categories): as much as a key needs of
    its own before a ceiling applies (``min_yield_weight``), so a new key starts from what
    the node learnt and its own answers outweigh that after as many."""
    judge_at_ceiling: float = 0.2
    """Share of answers at the escalation ceiling (where the judge cannot change the
    action) that are judged anyway, so the ceiling tier's rate and yield stay measured."""
    explore_ceiling: float = 0.02
    """Share of capped runs that escalate past the ceiling anyway, so that a tier that got
    better for this task is let back in even when its evidence looked conclusive."""


TUNING = Tuning()


@dataclass(frozen=True, slots=True)
class Rate:
    """A rate's Beta posterior over decayed evidence: Beta(successes + prior, failures +
    prior). The tier estimates, the escalation yields and the judge's agreement all use it."""

    a: float
    b: float

    @classmethod
    def of(cls, successes: float, failures: float, tuning: Tuning | None = None) -> Rate:
        prior = (tuning or TUNING).prior
        return cls(successes + prior, failures + prior)

    @property
    def mean(self) -> float:
        return self.a / (self.a + self.b)

    @property
    def sd(self) -> float:
        mean = self.mean
        return math.sqrt(mean * (1 - mean) / (self.a + self.b + 1))

    def upper(self, z: float) -> float:
        """mean + z sd (not clipped to 1)."""
        return self.mean + z * self.sd
