"""Server-rendered SVG charts: response time p50/p95 per hour, readable without JavaScript.

The chart is drawn in Python (coordinates only) and written by the template, so the page needs no
script and no image request; a table of the same numbers follows it for screen readers.
"""
from __future__ import annotations

from dataclasses import dataclass
from zoneinfo import ZoneInfo

from django.utils import timezone

WIDTH, HEIGHT = 640, 180
LEFT, RIGHT, TOP, BOTTOM = 64, 24, 10, 22


@dataclass
class Chart:
    width: int
    height: int
    left: int  # x of the plot's edges
    right: int
    p50: str  # SVG polyline points
    p95: str
    y_ticks: list[tuple[float, str]]  # (y, label)
    x_ticks: list[tuple[float, str]]
    rows: list[dict]  # the numbers, for the table
    empty: bool
    # A line needs two points: a series with a single measured hour is drawn as dots, never blank.
    p50_dots: list[tuple[float, float]] = ()  # type: ignore[assignment]
    p95_dots: list[tuple[float, float]] = ()  # type: ignore[assignment]


def _nice_ceiling(value: float) -> float:
    for step in (10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000, 100000):
        if value <= step:
            return float(step)
    return value


def _polyline(points: list[tuple[float, float | None]]) -> str:
    """Hours without data are skipped, so the line bridges them; the table below shows the gaps."""
    return " ".join(f"{x:.1f},{y:.1f}" for x, y in points if y is not None)


def _dots(points: list[tuple[float, float | None]]) -> list[tuple[float, float]]:
    measured = [(round(x, 1), round(y, 1)) for x, y in points if y is not None]
    return measured if len(measured) == 1 else []


def latency_chart(series: list[dict], *, zone: ZoneInfo, label_every: int = 4) -> Chart:
    values = [s["p95"] for s in series if s["p95"] is not None]
    top = _nice_ceiling(max(values)) if values else 100.0
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    step = plot_w / max(1, len(series) - 1)
    # One hour alone sits in the middle rather than on the left edge.
    first_x = LEFT + plot_w / 2 if len(series) == 1 else LEFT

    def y(ms: float | None) -> float | None:
        return None if ms is None else TOP + plot_h * (1 - min(ms, top) / top)

    xs = [first_x + i * step for i in range(len(series))]
    p50 = [(x, y(s["p50"])) for x, s in zip(xs, series)]
    p95 = [(x, y(s["p95"])) for x, s in zip(xs, series)]
    x_ticks = [(xs[i], timezone.localtime(s["start"], zone).strftime("%H:%M" if label_every < 24 else "%d/%m"))
               for i, s in enumerate(series) if i % label_every == 0]
    return Chart(
        width=WIDTH, height=HEIGHT, left=LEFT, right=WIDTH - RIGHT,
        p50=_polyline(p50),
        p95=_polyline(p95),
        y_ticks=[(y(top * f), f"{top * f:.0f} ms") for f in (0, 0.5, 1)],
        x_ticks=x_ticks,
        rows=series,
        empty=not values,
        p50_dots=_dots(p50),
        p95_dots=_dots(p95),
    )
