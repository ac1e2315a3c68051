"""The dashboard's charts as inline SVG, drawn on the server by pygal: nothing to download in
the browser, no CDN, no JavaScript needed to see them. pygal's interactive tooltips would
load scripts from its website, so `js=[]` turns them off; values are in the tables beside.
Input is aggregates from cronjobs.reporting.stats, never execution rows.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Callable

import pygal
from django.utils import timezone
from pygal.style import Style

from cronjobs.reporting import stats

OUTCOME_COLOURS = {
    "succeeded": "#2e7d32",
    "failed": "#c62828",
    "timed_out": "#8e24aa",
    "memory_exceeded": "#6d4c41",
    "abandoned": "#37474f",
    "cancelled": "#9e9e9e",
    "skipped": "#ef6c00",
    "running": "#1565c0",
}
PALETTE = (
    "#1565c0",
    "#2e7d32",
    "#c62828",
    "#ef6c00",
    "#6a1b9a",
    "#00838f",
    "#5d4037",
    "#9e9d24",
    "#ad1457",
    "#283593",
)


def _style(colours: tuple[str, ...] = PALETTE) -> Style:
    return Style(
        background="transparent",
        plot_background="transparent",
        foreground="#555",
        foreground_strong="#333",
        foreground_subtle="#ccc",
        opacity=".85",
        opacity_hover="1",
        font_family="-apple-system, 'Segoe UI', system-ui, Roboto, sans-serif",
        title_font_size=18,
        label_font_size=13,
        major_label_font_size=13,
        legend_font_size=14,
        colors=colours or ("#999",),
    )


def _config(**overrides) -> dict:
    return {
        "js": [],
        "disable_xml_declaration": True,
        "style": _style(),
        "height": 320,
        "width": 800,
        "legend_at_bottom": True,
        "legend_at_bottom_columns": 4,
        "truncate_legend": -1,
        # Never cut an axis label ("16 N…"): fewer, whole labels instead.
        "truncate_label": -1,
        "show_minor_x_labels": False,
        "x_label_rotation": 0,
        "no_data_text": "No runs in this period",
        "print_values": False,
        **overrides,
    }


def runs_per_hour(hours: list[stats.HourOutcomes]) -> str:
    """Stacked bars: attempts and skips started in each of the last 24 local hours."""
    present = [s for s in OUTCOME_COLOURS if any(getattr(h, s) for h in hours)]
    chart = pygal.StackedBar(
        **_config(
            title="Runs per hour, last 24 hours",
            x_title=f"local hour ({timezone.get_current_timezone_name()})",
            y_title="attempts and skips",
            x_labels_major_every=3,
            # Each outcome keeps its colour whichever outcomes are present.
            style=_style(tuple(OUTCOME_COLOURS[s] for s in present)),
        )
    )
    chart.x_labels = [h.hour.strftime("%H:00") for h in hours]
    for status in present:
        chart.add(status.replace("_", " "), [getattr(h, status) for h in hours])
    return lean(chart.render(is_unicode=True))


@dataclasses.dataclass(frozen=True)
class Metric:
    """A per-day figure charted for each task: what it is, its unit, how to read it."""

    title: str  # "Success rate per day"
    unit: str  # "%", "s", "MiB"
    value: Callable[[stats.DailyTrend], float | None]
    range: tuple[float, float] | None = None  # a fixed y axis (percentages), else pygal's


def small_multiples(
    metric: Metric,
    trends: list[stats.DailyTrend],
    names: dict[int, str],
    days: list[dt.date],
) -> list[tuple[str, str]]:
    """One small chart per task that has runs in `days` (name order), as (task, SVG): one
    task's trend can be read on its own, which eight overlaid lines did not allow."""
    by_task: dict[int, dict[dt.date, float | None]] = {}
    for trend in trends:
        if trend.date in days:
            by_task.setdefault(trend.task_id, {})[trend.date] = metric.value(trend)
    found = sorted(
        (names.get(task_id, str(task_id)), points)
        for task_id, points in by_task.items()
        if any(v is not None for v in points.values())
    )
    svgs = [task_trend(name, metric, days, points) for name, points in found]
    # The multiples look alike, so they share one style sheet, scoped to their grid: the first
    # carries it and the rest do not repeat 4 KB each (thirty-nine charts would otherwise
    # weigh half a megabyte every refresh).
    return [
        (name, scope_style(lean(svg), MULTIPLES) if index == 0 else lean(svg, keep_style=False))
        for index, ((name, _), svg) in enumerate(zip(found, svgs, strict=True))
    ]


MULTIPLES = ".fc-multiples-grid svg"  # the grid in templates/cronjobs/dashboard_content.html
_RULE = re.compile(r"([^{}]*)\{")


def scope_style(svg: str, scope: str) -> str:
    """Prefix every selector of the chart's (unprefixed, `no_prefix`) style sheet with
    `scope`: an SVG's <style> applies to the whole page, and pygal's bare `text`, `.title` or
    `path` rules must not restyle the admin around it."""

    def scoped(match: re.Match[str]) -> str:
        selectors = [part.strip() for part in match.group(1).split(",")]
        return ",".join(f"{scope} {part}".strip() for part in selectors) + "{"

    def sheet(match: re.Match[str]) -> str:
        return match.group(1) + _RULE.sub(scoped, match.group(2)) + match.group(3)

    return re.sub(r"(<style\b[^>]*>)(.*?)(</style>)", sheet, svg, flags=re.DOTALL)


_SCRIPT = re.compile(r"<script\b.*?</script>|<!--.*?-->", re.DOTALL)
_STYLE = re.compile(r"<style\b.*?</style>", re.DOTALL)


def lean(svg: str, keep_style: bool = True) -> str:
    """pygal embeds its whole configuration as a script for its tooltips (off here: `js=[]`)
    and credits in comments: neither draws anything."""
    svg = _SCRIPT.sub("", svg)
    return svg if keep_style else _STYLE.sub("", svg)


def _quarters(bounds: tuple[float, float]) -> list[float]:
    low, high = bounds
    return [low + (high - low) * k / 4 for k in range(5)]


def task_trend(
    name: str, metric: Metric, days: list[dt.date], points: dict[dt.date, float | None]
) -> str:
    """One task's line over `days`; a day without runs is a gap, not a zero. The title names
    the task, the y axis the unit, the x axis the window."""
    chart = pygal.Line(
        # Dots carry pygal's per-value tooltips, which need its scripts: without them they
        # only cost markup and rendering time.
        **_config(
            title=name,
            width=420,
            height=260,
            show_legend=False,
            allow_interruptions=True,
            show_dots=False,
            y_title=metric.unit,
            x_title=f"day, last {len(days)} days",
            x_labels_major_count=4,
            title_font_size=15,
            range=metric.range,
            no_prefix=True,  # one style sheet for every multiple (see small_multiples)
            y_labels=_quarters(metric.range) if metric.range else None,
            stroke_style={"width": 2.5},
            style=_style(),
        ),
        value_formatter=lambda v: f"{v:.1f} {metric.unit}",
    )
    chart.x_labels = [d.strftime("%d %b") for d in days]
    chart.add(name, [points.get(day) for day in days])
    return chart.render(is_unicode=True)
