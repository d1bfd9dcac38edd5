"""Routing metrics: plain numbers from plain lists, no I/O.

- PGR (RouteLLM): quality gained over tier 1 as a share of the top tier's gain.
- AIQ (RouterBench): the area under the non-decreasing convex hull of (cost, quality)
  points, divided by the cost range, so it reads as an average quality over that range.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence


def pgr(quality: float, q_bottom: float, q_top: float) -> float | None:
    """Performance gap recovered; None when the top tier is no better than the bottom one."""
    gap = q_top - q_bottom
    if gap <= 0:
        return None
    return (quality - q_bottom) / gap


def frontier(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """The vertices of the non-decreasing upper convex hull of (cost, quality) points.

    Any point on it is reachable by randomly mixing two routers; beyond the best quality
    the frontier stays flat (spending more never has to lower quality).
    """
    pts = sorted(set(points))
    hull: list[tuple[float, float]] = []
    for p in pts:
        # keep the chain concave: drop the last vertex while it lies on or below p's chord
        while len(hull) >= 2:
            (x1, y1), (x2, y2) = hull[-2], hull[-1]
            if (x2 - x1) * (p[1] - y1) - (y2 - y1) * (p[0] - x1) >= 0:
                hull.pop()
            else:
                break
        hull.append(p)
    # A concave chain rises then falls: cut it at its highest vertex.
    best = max(range(len(hull)), key=lambda i: (hull[i][1], -hull[i][0])) if hull else -1
    return hull[: best + 1]


def aiq(points: Sequence[tuple[float, float]], lo: float, hi: float) -> float | None:
    """Mean quality of the frontier over costs [lo, hi]; None without points or range.

    Below the cheapest point the frontier is undefined and counts as quality 0 (a router
    that cannot run that cheaply gets nothing there); past its last vertex it is flat.
    """
    hull = frontier(points)
    if not hull or hi <= lo:
        return None

    def at(c: float) -> float:
        if c < hull[0][0]:
            return 0.0
        for (x1, y1), (x2, y2) in itertools.pairwise(hull):
            if c <= x2:
                return y1 + (y2 - y1) * (c - x1) / (x2 - x1) if x2 > x1 else y2
        return hull[-1][1]

    # integrate the piecewise-linear function exactly over its breakpoints within [lo, hi]
    xs = sorted({lo, hi, *(x for x, _ in hull if lo < x < hi)})
    area = 0.0
    for a, b in itertools.pairwise(xs):
        if b <= hull[0][0]:
            continue
        a = max(a, hull[0][0])
        area += (at(a) + at(b)) / 2 * (b - a)
    return area / (hi - lo)
