"""Replay with the queries' texts: routers train on the head of the stream and are judged
on the rest, on generated outcomes whose failures the text predicts (or does not)."""

from __future__ import annotations

import csv
import gzip
import json
import random
from pathlib import Path

import pytest
from test_replay import _cli

from dagtier import SpecError
from dagtier.replay import OutcomeRow, load_outcomes, load_queries, replay, write_rows

pytestmark = pytest.mark.anyio

MODELS = ("cheap", "top")
HARD = ["prove the theorem on", "evaluate the contour integral of", "derive the bound for"]
EASY = ["name the capital of", "spell the word", "what colour is"]


def make(tmp_path: Path, n: int = 600, seed: int = 0) -> tuple[Path, Path]:
    """Cheap answers hard questions wrong (90%) and easy ones right (90%); top is right."""
    rng = random.Random(seed)
    rows, texts = [], []
    for i in range(n):
        hard = rng.random() < 0.4
        stem = rng.choice(HARD if hard else EASY)
        texts.append((f"q{i}", f"{stem} item {rng.randrange(10_000)}"))
        cheap_right = rng.random() < (0.1 if hard else 0.9)
        rows.append(OutcomeRow(f"q{i}", "t", "cheap", float(cheap_right), 0.001, False))
        rows.append(OutcomeRow(f"q{i}", "t", "top", 1.0, 0.01, False))
    out = tmp_path / "o.csv.gz"
    with out.open("wb") as fh:
        write_rows(rows, fh)
    qfile = tmp_path / "o.queries.csv.gz"
    with gzip.open(qfile, "wt", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["query_id", "text"])
        w.writerows(texts)
    return out, qfile


async def test_route_only_learns_from_reported_outcomes_and_is_judged_on_the_rest(
    tmp_path: Path,
) -> None:
    """Trained on the first half (every outcome reported), route-only picks there the
    threshold that keeps 95% of the top tier's quality and sends the questions tier 1 gets
    wrong to the top tier: near its quality at a fraction of its cost; the first half is in
    no figure."""
    out, qfile = make(tmp_path)
    data = load_outcomes(out)
    texts = load_queries(qfile, data, data.complete_queries(MODELS))
    report = await replay(
        data, MODELS, ["static:1", "static:2", "router-only"], texts=texts, seed=1
    )
    assert report.trained == 300 and report.queries == 300
    cheap, _, routed = report.policies
    assert routed.router is not None and routed.router["state"].startswith("routing")
    assert routed.router["outcomes"] >= 300 and 0 < routed.router["threshold"] < 1
    assert routed.quality_pct is not None and routed.cost_pct is not None
    assert routed.quality_pct >= 0.9 > (cheap.quality_pct or 0)
    assert routed.cost_pct <= 0.6
    assert 0.25 <= routed.routed / routed.queries <= 0.6


async def test_router_cascade_wastes_fewer_cheap_attempts(tmp_path: Path) -> None:
    """With a judge, the classifier learns from verdicts which inputs tier 1 fails and
    starts them at tier 2: fewer wasted cheap attempts at no loss of quality."""
    out, qfile = make(tmp_path, n=800)
    data = load_outcomes(out)
    texts = load_queries(qfile, data, data.complete_queries(MODELS))
    report = await replay(
        data, MODELS, ["cascade", "router+cascade:0.5"], texts=texts, seed=2, judge_cost=0.001
    )
    plain, routed = report.policies
    assert routed.wasted_per_100 < 0.5 * plain.wasted_per_100
    assert routed.mean_quality >= plain.mean_quality - 0.01
    assert routed.mean_cost < plain.mean_cost


async def test_router_policies_need_texts(tmp_path: Path) -> None:
    out, _ = make(tmp_path, n=20)
    with pytest.raises(SpecError, match="router policies read each query's text"):
        await replay(load_outcomes(out), MODELS, ["router+cascade"])


def test_cli_queries_that_do_not_match_the_outcomes_are_a_clear_error(tmp_path: Path) -> None:
    """Ids missing from --queries: exit 2, how many of how many, a few named, no traceback."""
    out, _ = make(tmp_path, n=30)
    other = tmp_path / "other.csv"
    other.write_text("query_id,text\nq0,a\nq1,b\nzz,c\n")
    proc = _cli(
        "replay",
        str(out),
        "--tiers",
        "cheap,top",
        "--queries",
        str(other),
        "--policy",
        "router-only",
    )
    assert proc.returncode == 2, proc.stderr
    assert "28 of the 30 queries" in proc.stderr and "queries-mismatch" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_cli_replay_reports_wasted_attempts_and_router_state(tmp_path: Path) -> None:
    out, qfile = make(tmp_path, n=300)
    proc = _cli(
        "replay",
        str(out),
        "--tiers",
        "cheap,top",
        "--queries",
        str(qfile),
        "--policy",
        "cascade,router+cascade:0.5",
        "--json",
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["trained_on"] == 150
    plain, routed = data["policies"]
    assert plain["wasted_per_100"] > 0 and plain["router"] is None
    assert routed["router"]["kind"] == "classifier"


def test_router_settings_reach_the_router_and_bad_ones_are_located() -> None:
    """``router+cascade skip_worth=W``: the router's setting, beside the policy's own;
    a bad value, or the setting on a policy without a router, names what to write."""
    from dagtier.replay import parse_policy

    spec = parse_policy("router+cascade skip_worth=0.02 fix_worth=3", 3)
    assert spec.router and spec.skip_worth == 0.02 and spec.policy["fix_worth"] == 3
    assert spec.label == "router+cascade skip_worth=0.02 fix_worth=3"
    with pytest.raises(SpecError) as err:
        parse_policy("router+cascade skip_worth=-1", 3)
    assert "skip_worth must be a number >= 0, got '-1'" in str(err.value)
    with pytest.raises(SpecError) as err:
        parse_policy("cascade skip_worth=0.02", 3)
    assert err.value.issues[0].path == "cascade skip_worth=0.02: skip_worth"
