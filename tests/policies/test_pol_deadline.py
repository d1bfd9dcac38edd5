"""Deadlines: a node on the critical path whose policy would miss the run's deadline starts
at the tier that fits; a node off the path keeps its policy.

The end-to-end tests call models through the real openai SDK on the loopback fault server,
each model answering after a known delay (m1 0.1 s, m2 6 s, m3 0.5 s); the statistics are
seeded with those latencies, in a real SQLite file. Whether a run met its deadline is a
matter of time: the run that meets its 4 s takes about 0.7 s (a margin of 3 s for a loaded
machine), the one that misses its 0.3 s cannot take less than 0.6 s. The decision tests
read the same kind of statistics with an injected clock, so what they assert does not
depend on the machine's speed.
"""

from __future__ import annotations

import json
import math
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from _catalog import loopback_catalog, loopback_catalog_file, make_catalog
from providers._fault_server import FaultServer  # the provider tests' loopback server
from typer.testing import CliRunner

import dagtier
from dagtier import DagtierUsageError, SpecError
from dagtier.cli import app
from dagtier.events import PolicyDecision
from dagtier.policies.deadline import plan_deadline
from dagtier.providers import CompletionRequest, Gateway, Message
from dagtier.report.html import render_html
from dagtier.report.model import load_run_report, report_from_result
from dagtier.report.render import render_to_text
from dagtier.store import MemoryStore, StatsStore, open_store

pytestmark = pytest.mark.anyio

TIERS = {1: ["m1"], 2: ["m2"], 3: ["m3"]}
DELAYS = {"m1": 0.1, "m2": 6.0, "m3": 0.5}
"""Seconds each model takes to answer: the middle tier is the slow one, so a cascade from
tier 1 that fails twice costs 6.6 s while starting at tier 3 costs 0.5 s."""

FLOW = """\
name: dl
nodes:
  draft:
    prompt: write the draft
    policy: {kind: cascade}
    checks: [{type: regex, pattern: "m3"}]    # only the top tier's answer passes
  polish:
    prompt: "polish {{ draft }}"
    depends_on: [draft]
    policy: {kind: static, tier: 1}
  side:
    prompt: a side note
    policy: {kind: cascade}
    checks: [{type: regex, pattern: "^ok from"}]    # every tier's answer passes
"""


@pytest.fixture(scope="module")
def server() -> Iterator[FaultServer]:
    srv = FaultServer().start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def _sdk_imported(server: FaultServer) -> None:
    """Import the openai SDK and make one call: in a fresh process the first call takes
    about 2 s, which is not the deadline's business (and would eat the met run's margin)."""

    async def one_call() -> None:
        gateway = Gateway(_catalog(server))
        try:
            await gateway.call(1, CompletionRequest((Message("user", "hi"),)))
        finally:
            await gateway.aclose()

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TEST_OPENAI_KEY", "sk-test-deadline")
        anyio.run(one_call)


@pytest.fixture
def models(
    server: FaultServer, monkeypatch: pytest.MonkeyPatch, _sdk_imported: None
) -> FaultServer:
    server.reset()
    for model, seconds in DELAYS.items():
        server.delay(model, seconds)
    monkeypatch.setenv("TEST_OPENAI_KEY", "sk-test-deadline")
    return server


async def _seed(
    stats: StatsStore, key: str, tier: int, latency_s: float, passed: bool, n: int = 20
) -> None:
    for _ in range(n):
        await stats.record_observation(key, tier, success=passed, latency_s=latency_s)  # type: ignore[arg-type]


async def _seed_flow(stats: StatsStore) -> None:
    """The latencies the models really have; draft's cheap tiers always fail its check."""
    for tier, model in ((1, "m1"), (2, "m2"), (3, "m3")):
        await _seed(stats, "dl/draft", tier, DELAYS[model], passed=tier == 3)
        await _seed(stats, "dl/side", tier, DELAYS[model], passed=True)
    await _seed(stats, "dl/polish", 1, DELAYS["m1"], passed=True)


async def _run(
    server: FaultServer, store: Any, deadline_s: float | None, **kw: Any
) -> dagtier.RunResult:
    catalog = loopback_catalog(server.base_url, TIERS)
    wf = dagtier.parse_workflow(FLOW)
    return await dagtier.run(wf, catalog=catalog, store=store, deadline_s=deadline_s, **kw)


async def test_the_critical_node_starts_at_the_tier_that_fits_and_the_run_meets_its_deadline(
    models: FaultServer, tmp_path: Path
) -> None:
    """With 4 s left and 6.5 s expected from a cascade, the critical node starts at tier 3
    (0.5 s); the node off the critical path keeps its cascade from tier 1; the decision,
    the result and the reports (live and from the SQLite store) say so, and the run met
    its deadline."""
    store = open_store(tmp_path / "runs.db")
    decisions: list[PolicyDecision] = []
    try:
        await _seed_flow(store)
        result = await _run(
            models,
            store,
            4.0,
            subscribers=[lambda e: decisions.append(e) if isinstance(e, PolicyDecision) else None],
        )
        stored = await load_run_report(store, result.run_id, catalog=_catalog(models))
    finally:
        await store.aclose()

    assert result.status == "succeeded"
    draft, side, polish = result["draft"], result["side"], result["polish"]
    assert [a.tier for a in draft.attempts] == [3]
    assert draft.deadline_tier == 3
    assert draft.decision is not None
    assert "deadline:" in draft.decision
    assert "cascade from tier 1 expects 6.4 s; starting at tier 3 (0.5 s)" in draft.decision
    assert [(d.node_id, d.tier) for d in decisions if d.reason.startswith("deadline:")] == [
        ("draft", 3)
    ]
    # off the critical path: its own cascade, from tier 1, and no word of the deadline
    assert [a.tier for a in side.attempts] == [1]
    assert side.deadline_tier is None and side.decision is None
    assert polish.deadline_tier is None and [a.tier for a in polish.attempts] == [1]
    # the server saw what the decisions say: the slow middle tier was never called
    assert models.requests_for("m2") == []
    assert [s.body["messages"][-1]["content"] for s in models.requests_for("m3")] == [
        "write the draft"
    ]

    assert result.deadline_s == 4.0
    assert result.deadline_met is True
    assert result.to_dict()["deadline_met"] is True
    live = report_from_result(
        result, catalog=_catalog(models), workflow=dagtier.parse_workflow(FLOW)
    )
    for report in (live, stored):
        assert report.deadline is not None
        assert report.deadline.met is True
        assert report.deadline.changed == {"draft": 3}
        assert report.node("draft").deadline_tier == 3
        assert json.loads(render_to_text(report, "json"))["deadline"]["met"] is True
        text = render_to_text(report, "table")
        assert "deadline 4 s: met (" in text
        assert "it started 1 node(s) higher: draft at T3" in text
        assert "deadline 4 s: met (" in render_html(report)


async def test_a_deadline_that_cannot_be_met_runs_everything_at_the_fastest_tier_and_is_missed(
    models: FaultServer,
) -> None:
    """With 0.3 s, no tier fits: the critical node starts at its fastest tier, nothing is
    cancelled, every node answers, and the run is reported as having missed its deadline."""
    store = MemoryStore()
    await _seed_flow(store)
    result = await _run(models, store, 0.3)

    assert result.status == "succeeded"
    assert all(r.ok for r in result.nodes.values())
    assert [a.tier for a in result["draft"].attempts] == [3]
    assert "no tier fits: starting at tier 3, the fastest (0.5 s)" in (
        result["draft"].decision or ""
    )
    assert [a.tier for a in result["side"].attempts] == [1]
    # the critical path alone takes longer than 0.3 s: missed, whatever the machine's speed
    assert result.elapsed_s > 0.3
    assert result.deadline_met is False
    deadline = report_from_result(result, catalog=_catalog(models)).deadline
    assert deadline is not None and deadline.met is False
    assert deadline.describe().startswith("deadline 0.3 s: missed by ")


def _catalog(server: FaultServer) -> dagtier.Catalog:
    return loopback_catalog(server.base_url, TIERS)


# --- a batch's deadlines, through the CLI ----------------------------------------------------


def test_the_batch_report_counts_met_and_missed_deadlines_and_names_the_worst_miss(
    models: FaultServer, tmp_path: Path
) -> None:
    """dagtier batch --deadline 3 runs three items one at a time; the second item's top-tier
    answer comes 4 s late (at least 4.5 s in all), so it misses by more than 1.5 s while the
    others take about 0.7 s. dagtier report --batch, from the SQLite file, counts 2 met and
    1 missed and names the second item as the worst miss, in its table and its JSON."""
    db = tmp_path / "runs.db"

    async def seed() -> None:
        store = open_store(db)
        try:
            await _seed_flow(store)
        finally:
            await store.aclose()

    anyio.run(seed)
    flow = tmp_path / "dl.yaml"
    flow.write_text(FLOW, encoding="utf-8")
    catalog = loopback_catalog_file(tmp_path / "models.yaml", models.base_url, TIERS)
    items = tmp_path / "items.jsonl"
    items.write_text("{}\n{}\n{}\n", encoding="utf-8")
    models.slow_s = 4.0
    models.script("m3", ["ok", "slow", "ok"])  # one m3 call per item, in item order

    runner = CliRunner()
    ran = runner.invoke(
        app,
        ["batch", str(flow), "--inputs", str(items), "--store", str(db), "--models",
         str(catalog), "--deadline", "3", "--concurrency", "1", "-q"],
    )  # fmt: skip
    assert ran.exit_code == 0, ran.output
    worst = re.search(
        r"deadline   3s per item: 2 met, 1 missed; worst: item 1 \(line 2\) missed by "
        r"(\d+\.\d\d) s",
        ran.output,
    )
    assert worst is not None, ran.output
    found = re.search(r"dagtier report --batch (\S+)", ran.output)
    assert found is not None, ran.output
    batch_id = found.group(1)

    as_json = runner.invoke(
        app, ["report", "--batch", batch_id, "--store", str(db), "--format", "json"]
    )
    assert as_json.exit_code == 0, as_json.output
    deadlines = json.loads(as_json.stdout)["deadlines"]
    assert (deadlines["met"], deadlines["missed"], deadlines["not_ended"]) == (2, 1, 0)
    [late] = deadlines["late"]
    assert (late["index"], late["line"], late["run_id"]) == (1, 2, f"{batch_id}-1")
    assert late["met"] is False and late["deadline_s"] == 3.0
    assert late["late_s"] == pytest.approx(late["elapsed_s"] - 3.0)
    assert late["late_s"] > 1.5  # the slow answer alone takes 4.5 s
    assert deadlines["worst_late_s"] == late["late_s"]
    # the batch's own summary timed the same run as it ended
    assert float(worst.group(1)) == pytest.approx(late["late_s"], abs=0.05)
    assert late["changed"] == {"draft": 3}

    table = runner.invoke(app, ["report", "--batch", batch_id, "--store", str(db)])
    assert table.exit_code == 0, table.output
    missed_by = f"missed by {late['late_s']:.2f} s"
    assert f"deadlines 2 met, 1 missed; worst: item 1 (line 2) {missed_by}" in table.stdout
    assert (
        f"item 1 (line 2): deadline 3 s: {missed_by} ({late['elapsed_s']:.2f} s); "
        "it started 1 node(s) higher: draft at T3"
    ) in table.stdout


# --- the decision, on the statistics, with an injected clock --------------------------------


def _chain_yaml(*nodes: str) -> str:
    """A workflow ``chain`` of cascade nodes with a check; ``"b<a"`` is node b after a."""
    body = ""
    for spec in nodes:
        nid, _, dep = spec.partition("<")
        prompt = f'"{nid} {{{{ {dep} }}}}"\n    depends_on: [{dep}]' if dep else nid
        body += (
            f"  {nid}:\n    prompt: {prompt}\n    policy: {{kind: cascade}}\n"
            "    checks: [{type: regex, pattern: x}]\n"
        )
    return "name: chain\nnodes:\n" + body


CHAIN = _chain_yaml("a", "b<a", "aside")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def _chain_deadline(deadline_s: float, stats: MemoryStore, clock: Clock, **kw: Any) -> Any:
    plan = dagtier.compile_workflow(dagtier.parse_workflow(CHAIN), make_catalog({1: ["x"]}))
    return await plan_deadline(plan, stats, deadline_s, clock=clock, **kw)


async def _seed_ladder(stats: StatsStore, key: str, tier1_s: float = 1.0) -> None:
    """Tier 1 (``tier1_s``) always fails; tier 2 (2 s) always passes; tier 3 takes 4 s."""
    await _seed(stats, key, 1, tier1_s, passed=False)
    await _seed(stats, key, 2, 2.0, passed=True)
    await _seed(stats, key, 3, 4.0, passed=True)


async def _chain_stats() -> MemoryStore:
    """a and b on :func:`_seed_ladder`'s tiers. ``aside``'s tier 1 fails too, but it is
    short (0.1 s a tier)."""
    stats = MemoryStore()
    for key in ("chain/a", "chain/b"):
        await _seed_ladder(stats, key)
    for tier in (1, 2, 3):
        await _seed(stats, "chain/aside", tier, 0.1, passed=tier == 3)
    return stats


async def test_the_critical_path_and_what_follows_each_node_come_from_the_statistics() -> None:
    """a → b is the critical path (each about 3 s as a cascade); ``aside`` (0.3 s) is not."""
    d = await _chain_deadline(60, await _chain_stats(), Clock())
    assert list(d.critical) == ["a", "b"]
    assert d.critical["b"] == 0.0
    assert d.critical["a"] == pytest.approx(d.timings["b"].expected_s(1))
    assert d.timings["a"].expected_s(1) == pytest.approx(3.0, abs=0.1)
    assert d.critical_s == pytest.approx(6.0, abs=0.2)


async def test_the_cheapest_tier_that_fits_is_chosen_not_the_top() -> None:
    """5.5 s left, 3 s after ``a``: its cascade from tier 1 (3 s) misses; tier 2 (2.1 s:
    it rarely escalates) fits, and is cheaper than tier 3 (4 s, which would not fit)."""
    clock = Clock()
    d = await _chain_deadline(5.5, await _chain_stats(), clock)
    tier, why, raised = d.start_for("a", 1, "chain/a")
    assert (tier, raised) == (2, True)
    assert why.startswith("deadline: 5.5 s left, 3.0 s of critical path after this node")
    assert why.endswith("cascade from tier 1 expects 3.0 s; starting at tier 2 (2.1 s)")


async def test_a_node_whose_policy_fits_or_that_is_off_the_path_keeps_its_policy() -> None:
    """With time to spare nothing is said; off the critical path nothing is said even when
    no time is left at all."""
    clock = Clock()
    d = await _chain_deadline(30.0, await _chain_stats(), clock)
    assert d.start_for("a", 1, "chain/a") is None
    clock.now += 1000  # long past the deadline
    assert d.start_for("aside", 1, "chain/aside") is None


async def test_past_the_deadline_a_critical_node_starts_at_its_fastest_tier() -> None:
    """Once the time is up no tier fits: the node starts at the tier expected to be
    fastest (tier 2 here, 2.1 s, faster than the 3 s cascade and the 4 s top tier)."""
    clock = Clock()
    d = await _chain_deadline(5.0, await _chain_stats(), clock)
    clock.now += 6
    tier, why, raised = d.start_for("b", 1, "chain/b")
    assert (tier, raised) == (2, True)
    assert why.startswith("deadline: -1.0 s left")
    assert "no tier fits: starting at tier 2, the fastest (2.1 s)" in why


async def test_a_node_without_latency_statistics_keeps_its_policy_and_says_why() -> None:
    """No statistics for a tier its cascade may reach: its expected time is unknown (the
    catalog records no latencies), so it keeps its policy; the unknown node counts 0 s."""
    stats = MemoryStore()
    await _seed(stats, "chain/a", 1, 1.0, passed=False)
    await _seed(stats, "chain/b", 1, 1.0, passed=True)
    d = await _chain_deadline(0.5, stats, Clock())
    assert d.critical_s == 0.0
    said = d.start_for(next(iter(d.critical)), 1, "chain/a")
    assert said is not None
    tier, why, raised = said
    assert (tier, raised) == (1, False)
    assert "no latency statistics for tier 2, 3 of 'chain/a'" in why
    assert why.endswith("keeps its policy")


async def test_a_resumed_run_counts_its_finished_nodes_as_taking_no_time() -> None:
    """``a`` finished in an earlier session: the rest of the path after it is ``b`` alone,
    and ``a`` is no longer decided."""
    d = await _chain_deadline(60, await _chain_stats(), Clock(), done={"a"})
    assert "a" not in d.timings
    assert d.critical_s == pytest.approx(3.0, abs=0.1)


# --- bad input ------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [0, -1.5, math.nan, math.inf])
async def test_a_deadline_that_is_not_a_positive_number_of_seconds_is_refused(bad: float) -> None:
    """run(deadline_s=0, negative, nan or inf) fails before anything runs, naming the
    argument and the value."""
    wf = dagtier.parse_workflow(CHAIN)
    with pytest.raises(DagtierUsageError, match=r"deadline_s must be a number of seconds above 0"):
        await dagtier.run(wf, catalog=make_catalog({1: ["x"]}), deadline_s=bad)


@pytest.mark.parametrize(
    ("value", "code"),
    [("0", "value-too-small"), ("-3", "value-too-small"), (".nan", "finite-number")],
)
def test_a_bad_deadline_in_yaml_names_file_line_and_field(
    tmp_path: Path, value: str, code: str
) -> None:
    """``deadline_s: 0`` (or negative, or nan) is a spec error at its line, with a hint."""
    path = tmp_path / "wf.yaml"
    path.write_text(f"name: x\ndeadline_s: {value}\nnodes:\n  a: {{prompt: hi}}\n")
    with pytest.raises(SpecError) as info:
        dagtier.load_workflow(path)
    (issue,) = info.value.issues
    assert (issue.path, issue.line, issue.code) == ("deadline_s", 2, code)
    assert "must be a number of seconds above 0" in issue.message
    assert issue.hint is not None and "deadline_s: 30" in issue.hint
    assert str(path) in str(info.value)


def test_a_workflow_deadline_is_read_from_yaml() -> None:
    """``deadline_s: 12.5`` at the top of a workflow is the default of its runs."""
    wf = dagtier.parse_workflow("name: x\ndeadline_s: 12.5\nnodes:\n  a: {prompt: hi}\n")
    assert wf.deadline_s == 12.5


async def test_an_adaptive_node_is_judged_from_where_its_evidence_starts_it() -> None:
    """Adaptive has proven tier 2 (tier 1 fails): its expected time is from tier 2, not
    tier 1. With too little time for tier 2 (4 s) it starts at tier 3 (1 s); with enough,
    nothing is said; a node already starting at its fastest tier keeps its policy."""
    flow = "name: ad\nnodes:\n  a: {prompt: a, policy: {kind: adaptive, canary: 0}, checks: [{type: regex, pattern: x}]}\n"
    plan = dagtier.compile_workflow(dagtier.parse_workflow(flow), make_catalog({1: ["x"]}))
    stats = MemoryStore()
    await _seed(stats, "ad/a", 1, 0.5, passed=False, n=40)
    await _seed(stats, "ad/a", 2, 4.0, passed=True, n=40)
    await _seed(stats, "ad/a", 3, 1.0, passed=True, n=40)
    clock = Clock()
    tight = await plan_deadline(plan, stats, 2.0, clock=clock)
    assert tight.timings["a"].start == 2
    said = tight.start_for("a", 1, "ad/a")
    assert said is not None and (said.tier, said.raised) == (3, True)
    assert "adaptive from tier 2 expects 4.0 s; starting at tier 3 (1.0 s)" in said.reason
    roomy = await plan_deadline(plan, stats, 10.0, clock=clock)
    assert roomy.start_for("a", 1, "ad/a") is None
    await _seed(stats, "ad/a", 2, 4.0, passed=False, n=200)  # tier 2 no longer proven...
    await _seed(stats, "ad/a", 3, 1.0, passed=True, n=200)  # ...tier 3 is
    late = await plan_deadline(plan, stats, 0.5, clock=clock)
    assert late.timings["a"].start == 3
    said = late.start_for("a", 1, "ad/a")
    assert said is not None and (said.tier, said.raised) == (3, False)
    assert said.reason.endswith("no tier fits and it is the fastest: keeps its policy")


async def test_a_tiers_recorded_latency_counts_its_checks_time(models: FaultServer) -> None:
    """A deadline waits for an attempt's checks (a command, the judge's call) as well as
    its call: the tier's statistics record both. Tier 3 answers in 0.5 s; its check, a real
    subprocess, takes 0.4 s more."""
    wf = dagtier.parse_workflow(
        "name: lat\nnodes:\n  n:\n    prompt: hi\n    policy: {kind: cascade, start: 3}\n"
        "    checks:\n      - type: command\n"
        f"        command: [{json.dumps(sys.executable)}, -c, 'import time; time.sleep(0.4)']\n"
    )
    store = MemoryStore()
    res = await dagtier.run(wf, catalog=loopback_catalog(models.base_url, TIERS), store=store)
    [att] = res.nodes["n"].attempts
    assert att.verdict == "pass" and att.latency_s >= DELAYS["m3"]
    tier3 = (await store.tier_stats("lat/n"))[3]
    assert tier3.mean_latency_s >= att.latency_s + 0.4


TWO_CHAINS = _chain_yaml("a", "b<a", "c", "d<c")


async def test_a_branch_that_becomes_the_longest_after_a_decision_is_looked_after() -> None:
    """a → b expects 6 s and c → d 5.6 s: a → b is the critical path. Once ``a`` starts at
    tier 2 to fit (2.1 s), a → b expects 5.1 s and c → d is the longest: ``d``, late, then
    starts higher too, where it would have been left to its policy as off the path."""
    stats = await _chain_stats()
    for key in ("chain/c", "chain/d"):
        await _seed_ladder(stats, key, tier1_s=0.8)
    plan = dagtier.compile_workflow(dagtier.parse_workflow(TWO_CHAINS), make_catalog({1: ["x"]}))
    clock = Clock()
    d = await plan_deadline(plan, stats, 5.5, clock=clock)
    assert list(d.critical) == ["a", "b"]
    assert d.start_for("d", 1, "chain/d") is None  # off the path: its policy
    tier, _, raised = d.start_for("a", 1, "chain/a")
    assert (tier, raised) == (2, True)
    d.started_at("a", 2)
    assert list(d.critical) == ["c", "d"]
    assert d.critical_s == pytest.approx(6.0, abs=0.2)  # what was expected under the policies
    clock.now += 3.0  # c took its 2.8 s and a little more: 2.5 s left
    tier, why, raised = d.start_for("d", 1, "chain/d")
    assert (tier, raised) == (2, True)
    assert why.startswith("deadline: 2.5 s left, 0.0 s of critical path after this node")
