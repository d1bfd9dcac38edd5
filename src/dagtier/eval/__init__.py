"""``dagtier eval``: which tier each node of a workflow needs, measured on your own cases.

Each case (``{"inputs": {...}, "expected": {...}}``) runs the workflow once as a reference;
then each selected node answers on each tier from the reference run's upstream outputs, so
every tier sees the same prompt. Answers are scored by the node's checks, the expected
output (exact, JSON subset or a ``python`` scorer) and optionally a blind judge. The result
per node and tier: quality with a 95% interval, mean cost, latency p50/p95, and the tier
each policy would pick; as a table, JSON, HTML, an outcomes file for ``dagtier replay``,
or statistics that warm-start adaptive.
"""

from __future__ import annotations

from ._cases import Case, load_cases
from ._report import (
    EvalReport,
    NodeEval,
    TierRow,
    build_eval_report,
    outcome_rows,
    print_eval,
    render_eval_html,
    render_eval_json,
    seed_stats,
    write_outcomes,
)
from ._runner import EvalResult, Unit, evaluate, judge_prompt, parse_scores, score_expected

__all__ = (
    "Case",
    "EvalReport",
    "EvalResult",
    "NodeEval",
    "TierRow",
    "Unit",
    "build_eval_report",
    "evaluate",
    "judge_prompt",
    "load_cases",
    "outcome_rows",
    "parse_scores",
    "print_eval",
    "render_eval_html",
    "render_eval_json",
    "score_expected",
    "seed_stats",
    "write_outcomes",
)
