"""Run reports: per-node attempts, totals and savings, in every format."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import struct
import tempfile
import zlib
from pathlib import Path

import anyio
import pytest

from dagtier import MemoryStore, NodeResult, Usage
from dagtier.report import build_report, compare_reports, report_from_result
from dagtier.report.html import render_html
from dagtier.report.render import render_csv, render_json, render_to_text
from dagtier.results import Attempt

from ._helpers import answer, catalog, run_review, workflow

pytestmark = pytest.mark.anyio


async def _report_via_store() -> tuple[object, object]:
    store = MemoryStore()
    result = await run_review(store=store)
    loaded = await store.load_run(result.run_id)
    assert loaded is not None
    record, nodes = loaded
    return result, build_report(record, nodes, catalog=catalog(), workflow=workflow())


async def test_report_lists_every_attempt_and_totals() -> None:
    """A report read back from a RunStore shows each node's policy, final tier and attempts."""
    result, rep = await _report_via_store()
    assert [(n.node_id, n.policy, n.tier, n.model, len(n.attempts), n.escalations)
            for n in rep.nodes] == [
        ("summarize", "static T1", 1, "cheap", 1, 0),
        ("tests", "static T2", 2, "mid", 1, 0),
        ("critique", "cascade T1→T3", 2, "mid", 2, 1),
        ("final", "static T3", 3, "top", 1, 0),
    ]  # fmt: skip
    assert rep.totals.cost == pytest.approx(result.cost)
    assert rep.totals.attempts == 5 and rep.totals.escalations == 1
    assert rep.totals.calls_by_tier == {1: 2, 2: 2, 3: 1}
    assert sum(rep.totals.cost_by_tier.values()) == pytest.approx(result.cost)
    assert rep.critical_path == ["summarize", "critique", "final"]


async def test_savings_reprice_the_final_answers() -> None:
    """Savings price each node's final answer tokens on tier 3 and on its static tier."""
    result, rep = await _report_via_store()
    top = catalog().models["top"]
    mid = catalog().models["mid"]
    finals = {nid: r.attempts[-1].usage for nid, r in result.nodes.items()}
    expected_top = sum(top.cost(u) for u in finals.values())
    assert rep.savings.top_tier_cost == pytest.approx(expected_top)
    assert rep.savings.vs_top_tier == pytest.approx(expected_top - result.cost)
    # static tiers: summarize T1, tests T2, critique (cascade up to T3) T3, final T3
    expected_static = (
        catalog().models["cheap"].cost(finals["summarize"])
        + mid.cost(finals["tests"])
        + top.cost(finals["critique"])
        + top.cost(finals["final"])
    )
    assert rep.savings.static_cost == pytest.approx(expected_static)
    text = render_to_text(rep, "table")
    assert "counterfactual estimates" in text
    assert f"vs. every node on tier 3 (top): ${expected_top:,.6f}" in text


async def test_cache_hits_are_counted_and_cost_nothing() -> None:
    """A cached node shows as a cache hit and adds nothing to costs or savings."""
    result = await run_review()
    result.nodes["tests"] = NodeResult("tests", "cached", output="x", cache_hit=True)
    rep = report_from_result(result, catalog=catalog(), workflow=workflow())
    row = rep.node("tests")
    assert (row.cache_hit, row.cost, row.top_tier_cost, row.static_cost) == (True, 0, 0, 0)
    assert rep.totals.cache_hits == 1


async def test_csv_has_one_row_per_attempt_and_json_round_trips() -> None:
    """CSV: one row per attempt; JSON: the whole report, parseable."""
    result, rep = await _report_via_store()
    rows = list(csv.DictReader(io.StringIO(render_csv(rep))))
    assert len(rows) == 5
    assert [(r["node"], r["tier"], r["verdict"]) for r in rows if r["node"] == "critique"] == [
        ("critique", "1", "fail"),
        ("critique", "2", "pass"),
    ]
    data = json.loads(render_json(rep))
    assert data["run_id"] == result.run_id
    assert data["totals"]["cost"] == pytest.approx(result.cost)
    assert data["savings"]["note"].startswith("counterfactual")


async def test_compare_shows_tier_and_cost_changes() -> None:
    """Comparing two runs lists each node's tier change and cost delta."""
    a = await run_review()

    def better(model: object, request: object) -> str:
        return (
            "GOOD at once"
            if request.messages[0].content.startswith("Critique")
            else answer(model, request)
        )  # type: ignore[attr-defined]

    b = await run_review(fn=better)
    cmp = compare_reports(
        report_from_result(a, catalog=catalog(), workflow=workflow()),
        report_from_result(b, catalog=catalog(), workflow=workflow()),
    )
    crit = next(n for n in cmp.nodes if n.node_id == "critique")
    assert crit.tier_change == "T2→T1"
    assert crit.cost_delta == pytest.approx(b["critique"].cost - a["critique"].cost)
    assert cmp.cost_delta == pytest.approx(b.cost - a.cost)


async def test_errors_in_reports_are_redacted(monkeypatch: pytest.MonkeyPatch) -> None:
    """A provider error quoting a key is shown without it in every format."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-fake-report-0123456789")
    result = await run_review()
    node = result.nodes["final"]
    node.error = "401: invalid key sk-fake-report-0123456789"
    node.attempts.append(
        Attempt(1, 3, "top", "python", Usage(), verdict="error", reason=node.error)
    )
    rep = report_from_result(result, catalog=catalog(), workflow=workflow())
    for fmt in ("table", "json", "csv", "html"):
        assert "sk-fake" not in render_to_text(rep, fmt), fmt  # type: ignore[arg-type]


async def test_html_is_self_contained() -> None:
    """The HTML report loads nothing from anywhere: no scripts, links, images or URLs."""
    _, rep = await _report_via_store()
    html = render_html(rep)
    for needle in ("<script", "<link", "<img", "src=", "url(", "@import", "https:"):
        assert needle not in html
    # the only URL is the SVG namespace, an identifier that is never fetched
    assert html.count("http://") == html.count('xmlns="http://www.w3.org/2000/svg"') == 2
    assert "critical path" in html and "Cost per node, by tier" in html


def _png_pixels(data: bytes) -> tuple[int, int, int, list[bytes]]:
    """Decode an 8-bit RGB/RGBA PNG (what Chromium writes) into rows of raw pixels."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width = 8, b"", 0
    height = depth = ctype = 0
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, ctype = struct.unpack(">IIBB", body[:10])
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    assert depth == 8 and ctype in (2, 6)
    bpp = 3 if ctype == 2 else 4
    raw = zlib.decompress(idat)
    stride = width * bpp
    rows: list[bytes] = []
    prev = bytearray(stride)
    for y in range(height):
        f = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if f == 1:
                line[i] = (line[i] + a) & 255
            elif f == 2:
                line[i] = (line[i] + b) & 255
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                line[i] = (line[i] + pred) & 255
        rows.append(bytes(line))
        prev = line
    return width, height, bpp, rows


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(
    CHROMIUM is None,
    reason="Chromium is not installed (Debian: apt-get install chromium); "
    "the HTML report's rendering check needs a headless browser",
)
async def test_html_renders_in_headless_chromium(tmp_path: Path) -> None:
    """Headless Chromium renders the report into a screenshot with the tier colours in it."""
    _, rep = await _report_via_store()
    page = tmp_path / "report.html"
    page.write_text(render_html(rep), encoding="utf-8")
    shot = tmp_path / "shot.png"
    with tempfile.TemporaryDirectory() as profile:
        proc = await anyio.run_process(
            [
                str(CHROMIUM),
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                f"--user-data-dir={profile}",
                f"--screenshot={shot}",
                "--window-size=900,700",
                page.as_uri(),
            ],
            check=False,
            env={**os.environ, "HOME": profile},
        )
    assert shot.exists(), proc.stderr.decode(errors="replace")[-2000:]
    width, height, bpp, rows = _png_pixels(shot.read_bytes())
    assert (width, height) == (900, 700)
    colours = {row[i : i + 3] for row in rows[::4] for i in range(0, len(row), bpp * 4)}
    assert len(colours) > 10  # not blank
    tier_colours = {bytes.fromhex(c) for c in ("2e9d5b", "e0a100", "c43c5c")}
    assert tier_colours <= colours  # the stacked cost bars were drawn
