"""The dashboard's charts as inline SVG, written out here as plain strings: nothing to download
in the browser, no CDN, no script. A hundred tasks make three hundred small charts a
refresh, so each is a few dozen elements joined in about 0.1 ms (pygal took 5-12 ms a chart,
most of a cold dashboard's 2.8 s; docs/benchmarks.md). Input is aggregates from
cronjobs.reporting.stats, never execution rows.

Styling is presentation attributes on the elements, never a <style> sheet, so nothing here can
restyle the admin page around it. Text and gridlines are `currentColor`, the admin's text
colour in its light and dark themes; cronjobs/static/cronjobs/admin.css gives the trend line
the theme's link colour. Every text is escaped: task names come from operators' configuration.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from collections.abc import Callable
from html import escape

from django.utils import timezone

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
LINE_COLOUR = "#1565c0"  # without admin.css
NO_DATA = "No runs in this period"


@dataclasses.dataclass(frozen=True)
class Metric:
    """A per-day figure charted for each task: what it is, its unit, how to read it."""

    title: str  # "Success rate per day"
    unit: str  # "%", "s", "MiB"
    value: Callable[[stats.DailyTrend], float | None]
    range: tuple[float, float] | None = None  # a fixed y axis (percentages), else nice_ticks


@dataclasses.dataclass(frozen=True)
class Frame:
    """Where a chart's plot area sits in its viewBox, and its y axis's gridlines."""

    width: int
    height: int
    left: int
    right: int
    top: int
    bottom: int
    ticks: list[float]

    def y(self, value: float) -> float:
        low, high = self.ticks[0], self.ticks[-1]
        return self.bottom - (self.bottom - self.top) * (value - low) / (high - low)


def nice_ticks(top: float, count: int = 4, whole: bool = False) -> list[float]:
    """Gridlines from 0 to the first round value at or above `top`, about `count` intervals
    of 1, 2, 2.5 or 5 times a power of ten (whole numbers only when counting). The axis starts
    at zero so that 3.0 s becoming 3.1 s does not look like a doubling."""
    top = top if top > 0 else 1.0
    raw = max(top / count, 1.0) if whole else top / count
    power = 10.0 ** math.floor(math.log10(raw))
    step = next(
        step
        for step in (round(m * power, 12) for m in (1, 2, 2.5, 5, 10))
        if step >= raw and (not whole or step.is_integer())
    )
    return [round(k * step, 10) for k in range(max(math.ceil(top / step - 1e-9), 1) + 1)]


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
    return [(name, task_trend(name, metric, days, points)) for name, points in found]


def task_trend(
    name: str, metric: Metric, days: list[dt.date], points: dict[dt.date, float | None]
) -> str:
    """One task's line over `days`. The title names the task, the y axis the unit (0-100 for a
    fixed range, round ticks from 0 otherwise), the x axis four dates and the window."""
    values = [points.get(day) for day in days]
    if metric.range:
        low, high = metric.range
        ticks = [low + (high - low) * k / 4 for k in range(5)]
    else:
        ticks = nice_ticks(max((v for v in values if v is not None), default=0))
    frame = Frame(420, 260, left=54, right=394, top=36, bottom=210, ticks=ticks)
    step = (frame.right - frame.left) / max(len(days) - 1, 1)
    xs = [frame.left + i * step for i in range(len(days))]
    dates = sorted({round(k * (len(days) - 1) / 3) for k in range(4)})
    window = f"last {len(days)} days"
    return _svg(
        frame,
        f"{name}: {metric.title.lower()} in {metric.unit}, {window}",
        _title(frame, name, 16),
        _y_axis(frame, metric.unit),
        _x_axis(frame, [(xs[i], days[i].strftime("%d %b")) for i in dates]),
        f'<text x="{(frame.left + frame.right) / 2:.0f}" y="250" text-anchor="middle">'
        f"day, {window}</text>",
        _line(frame, xs, values),
        font_size=13,  # drawn 320-450 px wide in the grid
    )


def _line(frame: Frame, xs: list[float], values: list[float | None]) -> str:
    """The values joined day to day. A day without runs (None) is a gap in the line, not a
    zero, and a day between two gaps is a dot."""
    runs: list[list[tuple[float, float]]] = [[]]
    for x, value in zip(xs, values, strict=True):
        if value is None:
            runs.append([])
        else:
            runs[-1].append((x, frame.y(value)))
    path = "".join(
        "M" + "L".join(f"{x:.1f},{y:.1f}" for x, y in run) for run in runs if len(run) > 1
    )
    dots = "".join(
        f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3"/>'
        for run in runs
        if len(run) == 1
        for x, y in run
    )
    drawn = ""
    if path:
        drawn += (
            f'<path class="fc-line" d="{path}" fill="none" stroke="{LINE_COLOUR}" '
            'stroke-width="2.5" stroke-linejoin="round" stroke-linecap="round"/>'
        )
    if dots:
        drawn += f'<g class="fc-dots" fill="{LINE_COLOUR}">{dots}</g>'
    return drawn


def runs_per_hour(hours: list[stats.HourOutcomes]) -> str:
    """Stacked bars: attempts and skips started in each of the last 24 local hours, one colour
    per outcome (OUTCOME_COLOURS, whichever are present), with a legend of those present."""
    present = [s for s in OUTCOME_COLOURS if any(getattr(h, s) for h in hours)]
    totals = [sum(getattr(h, s) for s in present) for h in hours]
    ticks = nice_ticks(max(totals, default=0), whole=True)
    frame = Frame(800, 320, left=64, right=784, top=44, bottom=226, ticks=ticks)
    title = "Runs per hour, last 24 hours"
    if not present:
        empty = f'<text x="400" y="170" text-anchor="middle" font-size="16">{NO_DATA}</text>'
        return _svg(frame, f"{title}: {NO_DATA.lower()}", _title(frame, title, 16), empty)
    slot = (frame.right - frame.left) / len(hours)
    return _svg(
        frame,
        f"{title}, by outcome",
        _title(frame, title, 16),
        _y_axis(frame, "attempts and skips"),
        _x_axis(
            frame,
            [
                (frame.left + (i + 0.5) * slot, h.hour.strftime("%H:00"))
                for i, h in enumerate(hours)
                if h.hour.hour % 3 == 0
            ],
        ),
        f'<text x="{(frame.left + frame.right) / 2:.0f}" y="264" text-anchor="middle">'
        f"local hour ({escape(timezone.get_current_timezone_name())})</text>",
        _bars(frame, hours, present, slot),
        _legend(frame, present),
    )


def _bars(frame: Frame, hours: list[stats.HourOutcomes], present: list[str], slot: float) -> str:
    """Each outcome's bars in one group of its colour, stacked in OUTCOME_COLOURS' order; a
    bar's tooltip (its <title>) gives the hour, the outcome and the count."""
    base = [0] * len(hours)
    groups = []
    for status in present:
        bars = []
        for i, hour in enumerate(hours):
            if count := getattr(hour, status):
                y0, y1 = frame.y(base[i]), frame.y(base[i] + count)
                base[i] += count
                bars.append(
                    f'<rect x="{frame.left + (i + 0.15) * slot:.1f}" y="{y1:.1f}" '
                    f'width="{slot * 0.7:.1f}" height="{y0 - y1:.1f}"><title>'
                    f"{hour.hour:%H:00} {status.replace('_', ' ')}: {count}</title></rect>"
                )
        groups.append(f'<g class="fc-bars" fill="{OUTCOME_COLOURS[status]}">{"".join(bars)}</g>')
    return "".join(groups)


def _legend(frame: Frame, present: list[str]) -> str:
    """The outcomes present, a swatch and a name each, centred in one row below the axis."""
    labels = [status.replace("_", " ") for status in present]
    widths = [18 + 7 * len(label) + 20 for label in labels]
    x = (frame.width - sum(widths) + 20) / 2
    items = []
    for status, label, width in zip(present, labels, widths, strict=True):
        items.append(
            f'<rect x="{x:.0f}" y="291" width="12" height="12" fill="{OUTCOME_COLOURS[status]}"/>'
            f'<text x="{x + 18:.0f}" y="301">{label}</text>'
        )
        x += width
    return f'<g class="fc-legend" font-size="13">{"".join(items)}</g>'


def _svg(frame: Frame, label: str, *parts: str, font_size: int = 12) -> str:
    """The chart's root: sized by its viewBox (admin.css scales it to its box), named for
    screen readers by its <title> and aria-label; its text inherits the admin's font and
    colour."""
    label = escape(label)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {frame.width} {frame.height}" '
        f'width="{frame.width}" height="{frame.height}" role="img" aria-label="{label}" '
        f'font-size="{font_size}" fill="currentColor"><title>{label}</title>'
        + "".join(parts)
        + "</svg>"
    )


def _title(frame: Frame, text: str, size: int) -> str:
    """The chart's heading, centred; a long one is squeezed to the width, never cut."""
    fit = ""
    if len(text) * size * 0.6 > frame.width - 16:
        fit = f' textLength="{frame.width - 16}" lengthAdjust="spacingAndGlyphs"'
    return (
        f'<text x="{frame.width / 2:.0f}" y="{size + 6}" text-anchor="middle" '
        f'font-size="{size}" font-weight="600"{fit}>{escape(text)}</text>'
    )


def _y_axis(frame: Frame, title: str) -> str:
    """Labelled gridlines at the ticks and the axis title (the unit) turned along it."""
    lines, labels = [], []
    for tick in frame.ticks:
        y = frame.y(tick)
        lines.append(f"M{frame.left},{y:.1f}H{frame.right}")
        labels.append(f'<text x="{frame.left - 6}" y="{y:.1f}" dy=".35em">{tick:g}</text>')
    middle = (frame.top + frame.bottom) / 2
    return (
        f'<path d="{"".join(lines)}" stroke="currentColor" stroke-opacity=".18"/>'
        f'<g class="fc-y" text-anchor="end">{"".join(labels)}</g>'
        f'<text transform="translate(14 {middle:.0f}) rotate(-90)" text-anchor="middle">'
        f"{escape(title)}</text>"
    )


def _x_axis(frame: Frame, labels: list[tuple[float, str]]) -> str:
    """The baseline and labels centred under their points (dates, hours)."""
    y = frame.bottom + 18
    texts = "".join(f'<text x="{x:.1f}" y="{y}">{escape(text)}</text>' for x, text in labels)
    return (
        f'<path d="M{frame.left},{frame.bottom}H{frame.right}" stroke="currentColor" '
        f'stroke-opacity=".5"/><g class="fc-x" text-anchor="middle">{texts}</g>'
    )
