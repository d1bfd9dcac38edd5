"""What each policy forecasts it costs on a node (what ``dagtier estimate`` prints), and
which policy a node stands for in the estimate's cascading and adaptive scenarios."""

from __future__ import annotations

import pytest

from dagtier.policies.forecast import forecast
from dagtier.spec.models import AdaptivePolicy, CascadePolicy, StaticPolicy

CALL = {1: 1.0, 2: 10.0, 3: 100.0}
HALF = {1: 0.5, 2: 0.5, 3: 1.0}
NONE = {1: 0, 2: 0, 3: 0}


def test_static_costs_one_call_on_its_tier() -> None:
    assert forecast(StaticPolicy(kind="static", tier=2), CALL, HALF, NONE) == 10.0


def test_a_cascade_pays_each_tier_weighted_by_the_chance_of_reaching_it() -> None:
    full = forecast(CascadePolicy(kind="cascade"), CALL, HALF, NONE)
    assert full == pytest.approx(1.0 + 0.5 * 10.0 + 0.25 * 100.0)
    short = forecast(CascadePolicy(kind="cascade", start=2, max=2), CALL, HALF, NONE)
    assert short == 10.0


def test_adaptive_without_evidence_cascades_from_its_lowest_tier_plus_the_canary() -> None:
    p = AdaptivePolicy(kind="adaptive", canary=0.1)
    assert forecast(p, CALL, HALF, NONE) == pytest.approx(31.0 + 0.1 * 100.0)


def test_the_canary_runs_the_policys_own_top_tier_not_tier_3() -> None:
    p = AdaptivePolicy(kind="adaptive", max_tier=2, canary=0.1)
    assert forecast(p, CALL, HALF, NONE) == pytest.approx(1.0 + 0.5 * 10.0 + 0.1 * 10.0)


def test_adaptive_with_evidence_starts_at_the_first_tier_meeting_its_target() -> None:
    p = AdaptivePolicy(kind="adaptive", target=0.9, canary=0.0)
    rates = {1: 0.5, 2: 0.95, 3: 0.99}
    seen = {1: 40, 2: 40, 3: 40}
    assert forecast(p, CALL, rates, seen) == pytest.approx(10.0 + 0.05 * 100.0)


def test_a_node_stands_for_its_own_policy_in_a_scenario_of_its_kind_else_the_default() -> None:
    cascade = CascadePolicy(kind="cascade", start=2)
    adaptive = AdaptivePolicy(kind="adaptive", target=0.8)
    static = StaticPolicy(kind="static", tier=1)
    assert cascade.as_cascade() is cascade and adaptive.as_adaptive() is adaptive
    assert static.as_cascade() == adaptive.as_cascade() == CascadePolicy(kind="cascade")
    assert static.as_adaptive() == cascade.as_adaptive() == AdaptivePolicy(kind="adaptive")
