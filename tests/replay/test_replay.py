"""Replay on generated outcome files whose right answers are known in advance."""

from __future__ import annotations

import gzip
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from dagtier import MemoryStore, SpecError
from dagtier.replay import (
    OutcomeRow,
    ReplayJudge,
    aiq,
    frontier,
    load_outcomes,
    pgr,
    replay,
    write_rows,
)

pytestmark = pytest.mark.anyio

MODELS = ("cheap", "mid", "top")
SRC = str(Path(__file__).resolve().parents[2] / "src")


def make_rows(n: int, seed: int, p_right: tuple[float, ...] = (0.5, 0.7, 0.9)) -> list[OutcomeRow]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        task = "math" if i % 3 == 0 else "prose"
        for m, p, base in zip(MODELS, p_right, (0.001, 0.01, 0.1), strict=True):
            q = 1.0 if rng.random() < p else 0.0
            rows.append(OutcomeRow(f"q{i}", task, m, q, base * (1 + rng.random()), False))
    return rows


def write_file(path: Path, rows: list[OutcomeRow]) -> Path:
    with path.open("wb") as fh:
        write_rows(rows, fh)
    return path


@pytest.fixture
def outcomes_file(tmp_path: Path) -> Path:
    return write_file(tmp_path / "out.csv.gz", make_rows(60, seed=1))


async def test_the_default_policies_follow_the_ladder(outcomes_file: Path) -> None:
    """Without policies, a 2-model ladder replays static on each of its rungs, cascade and
    adaptive (no static:3 it lacks); a 3-model ladder adds static:3."""
    data = load_outcomes(outcomes_file)
    two = await replay(data, MODELS[:2], seed=3, limit=10)
    assert [p.label for p in two.policies] == ["static:1", "static:2", "cascade", "adaptive"]
    three = await replay(data, MODELS, seed=3, limit=10)
    assert [p.label for p in three.policies] == [
        "static:1", "static:2", "static:3", "cascade", "adaptive"
    ]  # fmt: skip


async def test_static_policies_reproduce_each_tier_exactly(outcomes_file: Path) -> None:
    """A static policy's quality and cost are the recorded means of its tier's model."""
    data = load_outcomes(outcomes_file)
    report = await replay(data, MODELS, ["static:1", "static:2", "static:3"], seed=3)
    assert report.queries == 60 and report.skipped == 0
    for tier, st in enumerate(report.policies, start=1):
        model = MODELS[tier - 1]
        rows = [data.table[q][model] for q in data.table]
        assert st.mean_quality == pytest.approx(sum(r[0] for r in rows) / 60, rel=1e-12)
        assert st.mean_cost == pytest.approx(sum(r[1] for r in rows) / 60, rel=1e-12)
        assert st.judge_cost == 0 and st.escalated == 0 and st.failed == 0
        assert st.calls == {t: (60 if t == tier else 0) for t in (1, 2, 3)}
    assert report.policies[2].quality_pct == 1.0 and report.policies[2].cost_pct == 1.0
    assert report.policies[0].pgr == 0.0 and report.policies[2].pgr == 1.0


async def test_cascade_with_a_perfect_judge_stops_at_the_first_right_tier(
    outcomes_file: Path,
) -> None:
    """With an error-free judge, a cascade answers with the first right tier and pays every
    tier tried, one judge call per answer below the top tier, and a judge call on the top
    tier's answer only where it was judged (always while its yield is being learnt, then a
    sampled share: at the ceiling the verdict cannot change the action)."""
    data = load_outcomes(outcomes_file)
    report = await replay(
        data, MODELS, ["cascade"], false_accept=0, false_reject=0, judge_cost=0.0005
    )
    st = report.policies[0]
    quality = cost = 0.0
    calls = {1: 0, 2: 0, 3: 0}
    escalated = 0
    for q in data.table:
        row = data.table[q]
        for tier, m in enumerate(MODELS, start=1):
            calls[tier] += 1
            cost += row[m][1]
            if row[m][0] == 1.0 or tier == 3:
                quality += row[m][0]
                escalated += tier > 1
                break
    assert st.mean_quality == pytest.approx(quality / 60, rel=1e-12)
    assert st.calls == calls
    assert st.escalated == escalated
    # every answer but the last was escalated past; of those, the cheap ones are tier 1's
    assert st.wasted == calls[2] + calls[3] and st.wasted_cheap == calls[2]
    assert st.wasted_cheap_per_100 == pytest.approx(100 * calls[2] / 60)
    judged_top = round(st.judge_cost / 0.0005) - calls[1] - calls[2]
    assert st.judge_cost == pytest.approx(0.0005 * (calls[1] + calls[2] + judged_top), rel=1e-9)
    assert 0 <= judged_top <= calls[3]
    assert st.mean_cost == pytest.approx((cost + st.judge_cost) / 60, rel=1e-12)


async def test_judge_cost_defaults_to_tier_one_mean_cost(outcomes_file: Path) -> None:
    """Without --judge-cost each judgement costs tier 1's mean recorded cost."""
    data = load_outcomes(outcomes_file)
    report = await replay(data, MODELS, ["static:1"])
    assert report.judge.cost == pytest.approx(report.tier_refs[0].mean_cost, rel=1e-12)


@pytest.mark.parametrize(("far", "frr"), [(0.1, 0.1), (0.3, 0.05)])
async def test_judge_error_rates_are_realised_through_the_cascade(
    tmp_path: Path, far: float, frr: float
) -> None:
    """Over many seeds, a cascade escalates a right tier-1 answer at the false-reject rate
    and a wrong one at 1 - the false-accept rate."""
    right = write_file(tmp_path / "right.csv.gz", make_rows(300, 2, p_right=(1.0, 1.0, 1.0)))
    wrong = write_file(tmp_path / "wrong.csv.gz", make_rows(300, 2, p_right=(0.0, 1.0, 1.0)))
    seeds = range(8)
    frr_seen = [
        (
            await replay(
                load_outcomes(right),
                MODELS,
                ["cascade"],
                false_accept=far,
                false_reject=frr,
                seed=s,
            )
        )
        .policies[0]
        .escalation_rate
        for s in seeds
    ]
    accept_seen = [
        1
        - (
            await replay(
                load_outcomes(wrong),
                MODELS,
                ["cascade"],
                false_accept=far,
                false_reject=frr,
                seed=s,
            )
        )
        .policies[0]
        .escalation_rate
        for s in seeds
    ]
    # 2,400 judgements each: the standard error is under 0.01
    assert sum(frr_seen) / len(frr_seen) == pytest.approx(frr, abs=0.03)
    assert sum(accept_seen) / len(accept_seen) == pytest.approx(far, abs=0.03)
    # different seeds draw different judges
    assert len(set(frr_seen)) > 1


def test_replay_judge_is_reproducible_and_unbiased_across_seeds() -> None:
    """The same seed gives the same verdicts; over 50 seeds the rates match the settings."""
    a, b = ReplayJudge(0.2, 0.1, seed=7), ReplayJudge(0.2, 0.1, seed=7)
    assert [a.judge(f"q{i}", "m", 1.0) for i in range(200)] == [
        b.judge(f"q{i}", "m", 1.0) for i in range(200)
    ]
    rejected = accepted = 0
    for seed in range(50):
        j = ReplayJudge(0.2, 0.1, seed=seed)
        rejected += sum(not j.judge(f"q{i}", "m", 1.0) for i in range(400))
        accepted += sum(j.judge(f"q{i}", "m", 0.0) for i in range(400))
    assert rejected / 20_000 == pytest.approx(0.1, abs=0.01)
    assert accepted / 20_000 == pytest.approx(0.2, abs=0.01)


async def test_queries_missing_a_tier_are_skipped_and_counted(tmp_path: Path) -> None:
    """A query without an outcome for one of the ladder's models is left out and reported."""
    rows = [r for r in make_rows(10, 3) if not (r.query_id == "q4" and r.model == "mid")]
    data = load_outcomes(write_file(tmp_path / "f.csv.gz", rows))
    report = await replay(data, MODELS, ["static:1"])
    assert (report.queries, report.skipped) == (9, 1)


async def test_unknown_model_and_policy_are_spec_errors_with_hints(outcomes_file: Path) -> None:
    """A mistyped model names close matches; a bad policy lists the valid forms."""
    data = load_outcomes(outcomes_file)
    with pytest.raises(SpecError) as err:
        await replay(data, ["cheap", "mdi", "top"], ["static:1"])
    assert [(i.path, i.code) for i in err.value.issues] == [("--tiers[1]", "unknown-model")]
    assert "mid" in (err.value.issues[0].hint or "")
    with pytest.raises(SpecError) as err:
        await replay(data, MODELS, ["static:4"])
    assert err.value.issues[0].code == "bad-policy"
    assert "cascade[:START]" in (err.value.issues[0].hint or "")


def test_a_malformed_row_names_its_line(tmp_path: Path) -> None:
    """A value that is not a number is reported with its line and column name."""
    path = tmp_path / "bad.csv.gz"
    with gzip.open(path, "wt") as fh:
        fh.write("query_id,task,model,quality,cost_usd\nq1,t,m,1,0.1\nq2,t,m,yes,0.1\n")
    with pytest.raises(SpecError) as err:
        load_outcomes(path)
    issue = err.value.issues[0]
    assert (issue.path, issue.line, issue.code) == ("quality", 3, "bad-outcomes-row")


def test_frontier_and_aiq_on_known_points() -> None:
    """The frontier drops dominated and concave-violating points; AIQ integrates it."""
    pts = [(0.0, 0.5), (1.0, 0.6), (2.0, 0.9), (4.0, 0.8)]
    assert frontier(pts) == [(0.0, 0.5), (2.0, 0.9)]
    # 0..2: linear 0.5 -> 0.9 (mean 0.7), 2..4: flat 0.9 => (0.7*2 + 0.9*2) / 4
    assert aiq(pts, 0.0, 4.0) == pytest.approx(0.8)
    assert pgr(0.75, 0.5, 1.0) == 0.5
    assert pgr(0.7, 0.8, 0.8) is None


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": SRC}
    return subprocess.run(
        [sys.executable, "-m", "dagtier", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_cli_replay_json(outcomes_file: Path) -> None:
    """`dagtier replay --json` prints every policy's figures and the references."""
    proc = _cli(
        "replay",
        str(outcomes_file),
        "--tiers",
        "cheap,mid,top",
        "--limit",
        "40",
        "--json",
        "--policy",
        "static:3,cascade",
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["queries"] == 40
    assert [p["policy"] for p in data["policies"]] == ["static:3", "cascade"]
    assert data["policies"][0]["cost_pct_of_top"] == pytest.approx(1.0)
    assert set(data["policies"][1]["call_share_by_tier"]) == {"1", "2", "3"}
    assert data["oracle"]["mean_quality"] >= data["tiers_alone"][2]["mean_quality"]


def test_cli_replay_table_and_errors(outcomes_file: Path) -> None:
    """The table names each policy; a wrong model name exits 2 with a hint, no traceback."""
    proc = _cli("replay", str(outcomes_file), "--tiers", "cheap,mid,top", "--policy", "cascade")
    assert proc.returncode == 0, proc.stderr
    assert "cascade" in proc.stdout and "oracle" in proc.stdout and "AIQ" in proc.stdout
    proc = _cli("replay", str(outcomes_file), "--tiers", "cheap,mdi,top")
    assert proc.returncode == 2
    assert "no model 'mdi'" in proc.stderr and "mid" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_cli_replay_canary_share(outcomes_file: Path) -> None:
    """--canary sets adaptive's top-tier canary: at 1.0 every answer below the top tier is
    also checked against it, so the top tier is called more; out of [0, 1] it is refused."""
    args = ("replay", str(outcomes_file), "--tiers", "cheap,mid,top", "--policy", "adaptive")
    shares = []
    for extra in ((), ("--canary", "1.0")):
        proc = _cli(*args, *extra, "--json")
        assert proc.returncode == 0, proc.stderr
        data = json.loads(proc.stdout)
        shares.append(data["policies"][0]["call_share_by_tier"]["3"])
    assert data["canary"] == 1.0
    assert shares[1] > shares[0] + 0.1
    proc = _cli(*args, "--canary", "1.5")
    assert proc.returncode == 2
    assert "--canary" in proc.stderr and "must lie in [0, 1]" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_cli_output_into_a_closed_pipe_is_not_an_internal_error(outcomes_file: Path) -> None:
    """`dagtier replay ... | true`: the reader is gone before the table is written. That is
    nobody's mistake: no 'internal error' message, no traceback."""
    cmd = f"'{sys.executable}' -m dagtier replay '{outcomes_file}' --tiers cheap,mid,top --json | true"
    proc = subprocess.run(
        ["bash", "-c", "set -o pipefail; " + cmd],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": SRC},
        timeout=120,
    )
    assert "internal" not in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode in (0, 1)


async def test_the_quality_canary_sees_right_answers_agree(tmp_path: Path) -> None:
    """Replayed right answers to one query read the same (as the one right choice does), so
    the adaptive policy's top-tier canary agrees with a right cheap answer and differs from
    a wrong one that the judge let through."""
    from dagtier import executor
    from dagtier.providers.gateway import Gateway
    from dagtier.providers.registry import ProviderRegistry
    from dagtier.replay import ReplayProvider, replay_catalog
    from dagtier.spec.models import Workflow

    rows = [
        OutcomeRow("both", "t", "cheap", 1.0, 0.001),
        OutcomeRow("both", "t", "top", 1.0, 0.1),
        OutcomeRow("slip", "t", "cheap", 0.0, 0.001),
        OutcomeRow("slip", "t", "top", 1.0, 0.1),
    ]
    data = load_outcomes(write_file(tmp_path / "o.csv.gz", rows))
    # the judge passes everything: the wrong cheap answer to 'slip' is let through
    provider = ReplayProvider(data, ReplayJudge(false_accept=1.0, false_reject=0.0))
    gateway = Gateway(replay_catalog(["cheap", "top"]), ProviderRegistry({"replay": provider}))
    policy = {"kind": "adaptive", "max_tier": 2, "canary": 1.0}
    wf = Workflow.model_validate(
        {
            "name": "canary",
            "inputs": {"q": "string"},
            "nodes": {
                "n": {"prompt": "{{ inputs.q }}", "policy": policy, "checks": [{"type": "judge"}]}
            },
        }
    )
    seen = {}
    for q in ("both", "slip"):
        result = await executor.run(wf, {"q": q}, gateway=gateway, store=MemoryStore())
        seen[q] = result.nodes["n"].decision or ""
    assert "answers agree" in seen["both"]
    assert "answers differ" in seen["slip"]
