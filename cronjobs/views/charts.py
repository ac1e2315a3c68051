"""The dashboard's charts as inline SVG, drawn on the server by pygal: nothing to download in
the browser, no CDN, no JavaScript needed to see them. pygal's interactive tooltips would
load scripts from its website, so `js=[]` turns them off; values are in the tables beside.
Input is aggregates from cronjobs.reporting.stats, never execution rows.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pygal
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
        "truncate_legend": 30,
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
            x_labels_major_every=3,
            # Each outcome keeps its colour whichever outcomes are present.
            style=_style(tuple(OUTCOME_COLOURS[s] for s in present)),
        )
    )
    chart.x_labels = [h.hour.strftime("%H:00") for h in hours]
    for status in present:
        chart.add(status.replace("_", " "), [getattr(h, status) for h in hours])
    return chart.render(is_unicode=True)


def per_task_trend(
    title: str,
    trends: list[stats.DailyTrend],
    names: dict[int, str],
    days: list[dt.date],
    value: Callable[[stats.DailyTrend], float | None],
    unit: str,
) -> str:
    """One line per task over `days`; a day without runs is a gap, not a zero."""
    every = max(len(days) // 6, 1)
    chart = pygal.Line(
        # Dots carry pygal's per-value tooltips, which need its scripts: without them they
        # only cost markup (a third of the page) and rendering time.
        **_config(
            title=title, x_labels_major_every=every, allow_interruptions=True, show_dots=False
        ),
        value_formatter=lambda v: f"{v:.1f} {unit}",
    )
    chart.x_labels = [d.strftime("%d %b") for d in days]
    by_task: dict[int, dict[dt.date, float | None]] = {}
    for trend in trends:
        by_task.setdefault(trend.task_id, {})[trend.date] = value(trend)
    for task_id, points in sorted(by_task.items(), key=lambda item: names.get(item[0], "")):
        chart.add(names.get(task_id, str(task_id)), [points.get(day) for day in days])
    return chart.render(is_unicode=True)
