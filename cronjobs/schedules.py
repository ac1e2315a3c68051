"""When a task runs, in words and in time (docs/operations.md, "Time zones").

Everything is read in settings.TIME_ZONE, the zone the installed crontab fires in (`crontab add`
refuses to install when the system zone differs). Expressions are validated by the registry;
these helpers assume a valid expression, and an empty one means "manual only".

Daylight saving follows what Debian's cron does, not what a naive calendar would:

* clocks go forward (Pacific/Auckland, last Sunday of September, 02:00 -> 03:00): a fixed-time
  job (minute and hour fields without a leading `*`) scheduled in the missing hour runs once
  when the clock lands at 03:00; a wildcard job (`*/30 * * * *`, `0 */6 * * *`) just has no
  runs in the missing hour;
* clocks go back (first Sunday of April, 03:00 -> 02:00): a fixed-time job runs only in the
  first pass of the repeated hour; a wildcard job runs in both passes.
"""

from __future__ import annotations

import bisect
import dataclasses
import functools
import os
import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from cron_descriptor import Options, get_description
from croniter import CroniterBadDateError, CroniterError, croniter
from django.conf import settings
from django.utils import timezone

MANUAL_ONLY = "Manual only"

# croniter and cron-descriptor read these differently or not at all; cron means exactly this.
MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}

# Real daylight-saving shifts are an hour or less; cron itself only catches up jumps under 3 h.
_MAX_SHIFT = timedelta(hours=3)


def next_runs(
    expression: str, count: int = 1, after: datetime | None = None, zone: str = ""
) -> list[datetime]:
    """The next `count` times the schedule fires strictly after `after` (default: now), read
    in `zone` (default: TIME_ZONE; a task's or a maintenance window's `time_zone`)."""
    expression = _expand(expression)
    if not expression or count < 1:
        return []
    tz, after_utc = _zone(zone), _as_utc(after)
    wildcard = is_wildcard(expression)
    found: list[datetime] = []
    for naive in _candidates(expression, _wall(after_utc, tz), forward=True):
        fires = _fires(naive, tz, wildcard)
        if len(found) >= count and fires and min(fires) > found[count - 1]:
            break  # the earliest fire time only grows with the wall clock: nothing sooner follows
        found = sorted({*found, *(f for f in fires if f > after_utc)})
        if len(found) >= count and not wildcard:
            break  # a fixed-time job's fire times never run backwards: we have the soonest
    return [f.astimezone(tz) for f in found[:count]]


def next_run(expression: str, after: datetime | None = None, zone: str = "") -> datetime | None:
    """The next time the schedule fires (read in `zone`, default TIME_ZONE), or None for a
    manual-only task."""
    minute = _as_utc(after).replace(second=0, microsecond=0)
    return _next_run_after_minute(expression, zone or settings.TIME_ZONE, minute)


# cron fires on whole minutes, so every moment of one minute has the same next run: a page
# listing every task computes each once a minute. Sized for 10,000 tasks' expressions and zones:
# a smaller cache read in task order evicts each entry just before it is asked for again.
@functools.lru_cache(maxsize=32768)
def _next_run_after_minute(expression: str, zone: str, minute: datetime) -> datetime | None:
    runs = next_runs(expression, 1, minute, zone)
    return runs[0] if runs else None


def previous_run(
    expression: str, before: datetime | None = None, zone: str = ""
) -> datetime | None:
    """The last time the schedule fired strictly before `before` (default: now), read in
    `zone` (default: TIME_ZONE), or None."""
    expression = _expand(expression)
    if not expression:
        return None
    tz, before_utc = _zone(zone), _as_utc(before)
    wildcard, best = is_wildcard(expression), None
    start = _wall(before_utc, tz) + _fold_shift(before_utc, tz)
    for naive in _candidates(expression, start, forward=False):
        fires = _fires(naive, tz, wildcard)
        if best is not None and fires and max(fires) <= best:
            break  # the latest fire time only shrinks going back: nothing later precedes
        earlier = [f for f in fires if f < before_utc]
        best = max([*earlier, best] if best else earlier, default=None)
        if best is not None and not wildcard:
            break
    return best.astimezone(tz) if best else None


@functools.lru_cache(maxsize=512)  # cron-descriptor takes about a millisecond per sentence
def describe(expression: str) -> str:
    """The schedule as a sentence, e.g. 'At 07:05 AM'; 'Manual only' when there is none."""
    expression = _expand(expression)
    if not expression:
        return MANUAL_ONLY
    options = Options()
    options.verbose = False
    sentence: str = get_description(expression, options)
    return sentence


def may_fire_between(expression: str, since: datetime, until: datetime, zone: str = "") -> bool:
    """False when the schedule certainly does not fire from `since` to `until` (aware
    moments, read in `zone`): a check of each minute against the compiled fields, about a
    microsecond a minute, for a caller that asks every task each minute (a dispatcher) before
    the full reading of previous_run. True, to be safe, near a clock change (cron's catch-up
    after a jump moves fire times) and for what only croniter reads."""
    expression = _expand(expression)
    compiled = _compiled(expression) if expression else None
    if compiled is None:
        return bool(expression)
    if not compiled.fires:
        return False
    window = _wall_minutes(zone or settings.TIME_ZONE, since, until)
    if window is None:
        return True
    return any(
        minute in compiled.minute_set and hour in compiled.hour_set and compiled.day_matches(day)
        for minute, hour, day in window
    )


# A dispatcher asks the same few minutes of every task: each zone's are worked out once.
@functools.lru_cache(maxsize=64)
def _wall_minutes(
    zone: str, since: datetime, until: datetime
) -> tuple[tuple[int, int, date], ...] | None:
    """(minute, hour, day) of each wall-clock minute from `since` to `until` in `zone`, or
    None when the clocks change within _MAX_SHIFT of them."""
    tz = _zone(zone)
    if (since - _MAX_SHIFT).astimezone(tz).utcoffset() != until.astimezone(tz).utcoffset():
        return None
    minute = _wall(_as_utc(since), tz).replace(second=0, microsecond=0)
    last = _wall(_as_utc(until), tz)
    found = []
    while minute <= last:
        found.append((minute.minute, minute.hour, minute.date()))
        minute += _MINUTE
    return tuple(found)


def covering_expression(expression: str, zone: str) -> str:
    """A cron expression in TIME_ZONE that fires at every slot of `expression` read in `zone`,
    whichever UTC offsets the two zones take (for `5 7 * * *` in Europe/London on a UTC
    machine, `5 6,7 * * *`). It may fire at a few moments that are no slot (the hours of the
    other offset); `runjob --trigger cron` finds no slot then and exits 3 at once."""
    expression = _expand(expression)
    shifts = offset_shifts(zone, settings.TIME_ZONE, timezone.now().year)
    if not expression or shifts == [0]:
        return expression
    fields = expression.split()
    minutes, hours, *_ = croniter.expand(expression)[0]
    new_minutes: set[int] = set()
    new_hours: set[int] = set()
    wraps = False
    for shift in shifts:
        for minute in [m for m in minutes if m != "*"] or [0]:
            total = int(minute) + shift
            new_minutes.add(total % 60)
            for hour in [h for h in hours if h != "*"]:
                moved = int(hour) + total // 60
                wraps = wraps or not 0 <= moved < 24
                new_hours.add(moved % 24)
    keep_minutes = all(shift % 60 == 0 for shift in shifts)
    fields[0] = fields[0] if keep_minutes else _listed(new_minutes)
    fields[1] = fields[1] if "*" in hours else _listed(new_hours)
    if wraps:  # a slot moved across midnight: its day in TIME_ZONE is not the zone's day
        fields[2:] = ["*", "*", "*"]
    return " ".join(fields)


@functools.lru_cache(maxsize=64)
def offset_shifts(zone: str, site_zone: str, year: int) -> list[int]:
    """Minutes to add to a wall-clock time in `zone` to read it in `site_zone`: one figure per
    combination of UTC offsets the two zones take in `year` and the next (sampled every six
    hours; a daylight-saving period lasts weeks)."""
    first, second = ZoneInfo(zone), ZoneInfo(site_zone)
    moment = datetime(year, 1, 1, tzinfo=UTC)
    found = set()
    for _ in range(2 * 366 * 4):
        ours, theirs = moment.astimezone(first).utcoffset(), moment.astimezone(second).utcoffset()
        assert ours is not None and theirs is not None  # ZoneInfo: aware
        found.add(int((theirs - ours).total_seconds() // 60))
        moment += timedelta(hours=6)
    return sorted(found)


def _listed(values: set[int]) -> str:
    return ",".join(str(value) for value in sorted(values))


def is_wildcard(expression: str) -> bool:
    """Debian cron's 'wildcard job': the minute or hour field starts with `*`."""
    fields = _expand(expression).split()
    return len(fields) >= 2 and (fields[0].startswith("*") or fields[1].startswith("*"))


def cron_syntax_problem(expression: str) -> str:
    """croniter accepts more than Debian's cron (a seconds field, L, W, #, ?, H); a crontab
    holding any of it is rejected whole by `crontab`, so the registry refuses it by name.
    Returns '' when cron can read the expression."""
    if expression.lower() in MACROS or _PLAIN_CRON.fullmatch(expression):
        return ""
    fields = expression.split()
    if len(fields) != 5:
        return f"has {len(fields)} fields; cron takes 5 (minute hour day month weekday)"
    names = (None, None, None, _MONTHS, _WEEKDAYS)
    for field, allowed in zip(fields, names, strict=True):
        bare = allowed.sub("", field.lower()) if allowed else field
        if not _CRON_FIELD.match(bare):
            return f"uses {field!r}, which Debian's cron does not understand"
    return ""


_CRON_FIELD = re.compile(r"^[0-9*/,-]*$")
# Five fields of digits and `*/,-`: what nearly every declaration is, read by one match.
_PLAIN_CRON = re.compile(r"[0-9*/,-]+(?:\s+[0-9*/,-]+){4}")
_MONTHS = re.compile(r"jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec")
_WEEKDAYS = re.compile(r"sun|mon|tue|wed|thu|fri|sat")


def _expand(expression: str) -> str:
    expression = (expression or "").strip()
    return MACROS.get(expression.lower(), expression)


def _zone(name: str = "") -> ZoneInfo:
    return ZoneInfo(name or settings.TIME_ZONE)


def in_zone(moment: datetime, zone: str = "") -> datetime:
    """`moment` on the wall clock of `zone` (default: TIME_ZONE)."""
    return moment.astimezone(_zone(zone))


def _as_utc(moment: datetime | None) -> datetime:
    moment = moment or timezone.now()
    if timezone.is_naive(moment):
        moment = moment.replace(tzinfo=_zone())
    # Comparisons stay in UTC: aware datetimes in one zone compare by wall clock, ignoring fold.
    return moment.astimezone(UTC)


def _wall(moment: datetime, zone: ZoneInfo) -> datetime:
    return moment.astimezone(zone).replace(tzinfo=None, fold=0)


def _fold_shift(moment: datetime, zone: ZoneInfo) -> timedelta:
    """In the second pass of a repeated hour, first-pass runs of later wall times came earlier."""
    local = moment.astimezone(zone)
    if local.fold == 0:
        return timedelta(0)
    first_pass, second_pass = local.replace(fold=0).utcoffset(), local.utcoffset()
    assert first_pass is not None and second_pass is not None  # aware: `zone` is a ZoneInfo
    return first_pass - second_pass


def _candidates(expression: str, start: datetime, forward: bool) -> Iterator[datetime]:
    """Wall-clock (naive) times matching the expression, moving away from `start`."""
    compiled = _compiled(expression)
    if compiled is None:
        yield from _croniter_candidates(expression, start, forward)
    elif compiled.fires:
        yield from compiled.after(start) if forward else compiled.before(start)


@dataclasses.dataclass(frozen=True)
class _Compiled:
    """An expression expanded once into the values of each field, matched minute by minute
    without croniter (about a millisecond per next or previous time: ten seconds for 10,000
    tasks). Weekdays run 0 (Sunday) to 6. `days_or`: both the day-of-month and the
    day-of-week fields are restricted, so a day matching either matches (cron's rule, as
    croniter reads it); otherwise a day must match both."""

    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    days_or: bool
    fires: bool  # False for a date that never comes, such as `0 0 30 2 *`

    @functools.cached_property
    def minute_set(self) -> frozenset[int]:
        return frozenset(self.minutes)

    @functools.cached_property
    def hour_set(self) -> frozenset[int]:
        return frozenset(self.hours)

    def day_matches(self, day: date) -> bool:
        if day.month not in self.months:
            return False
        in_month, in_week = day.day in self.days, (day.weekday() + 1) % 7 in self.weekdays
        return in_month or in_week if self.days_or else in_month and in_week

    def after(self, start: datetime) -> Iterator[datetime]:
        """Matching minutes strictly after `start`, soonest first."""
        first = start.replace(second=0, microsecond=0) + _MINUTE
        for day in self._days(first.date(), _DAY):
            late = day == first.date()
            for hour in self.hours:
                if late and hour < first.hour:
                    continue
                since = first.minute if late and hour == first.hour else 0
                for minute in self.minutes[bisect.bisect_left(self.minutes, since) :]:
                    yield datetime.combine(day, time(hour, minute))

    def before(self, start: datetime) -> Iterator[datetime]:
        """Matching minutes strictly before `start`, latest first."""
        last = start.replace(second=0, microsecond=0)
        last -= _MINUTE if last == start else timedelta(0)
        for day in self._days(last.date(), -_DAY):
            early = day == last.date()
            for hour in reversed(self.hours):
                if early and hour > last.hour:
                    continue
                until = last.minute if early and hour == last.hour else 59
                for minute in reversed(self.minutes[: bisect.bisect_right(self.minutes, until)]):
                    yield datetime.combine(day, time(hour, minute))

    def _days(self, day: date, step: timedelta) -> Iterator[date]:
        # Nine years reach past any 29 February (2096 -> 2104), the rarest date that comes.
        barren = 0
        while barren < 9 * 366:
            if self.day_matches(day):
                yield day
                barren = 0
            barren += 1
            try:
                day += step
            except OverflowError:
                return


_MINUTE, _DAY = timedelta(minutes=1), timedelta(days=1)
_DAYS_IN_MONTH = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)  # a leap year's


# Keyed by expression only: a site's thousands of tasks share it for as long as it runs.
@functools.lru_cache(maxsize=65536)
def _compiled(expression: str) -> _Compiled | None:
    """The expression's field values, or None when it uses what only croniter knows (L, #,
    W...): those stay on croniter. Plain cron syntax is read here (croniter's own expansion
    costs about 50 microseconds, a second for 10,000 declarations); anything else, a mistake
    included, is left to croniter.expand, which says what is wrong."""
    fields = expression.lower().split()
    plain = [_field_values(field, index) for index, field in enumerate(fields[:5])]
    if len(fields) == 5 and all(values is not None for values in plain):
        values = [v for v in plain if v is not None]
        # croniter's reading: a day field is unrestricted when written `*`, or when it lists
        # every day and the other day field holds a `*` (`*/2`, say).
        days_star = fields[2] == "*" or (len(values[2]) == 31 and "*" in fields[4])
        every_weekday = len({day % 7 for day in values[4]}) == 7
        weekdays_star = fields[4] == "*" or (every_weekday and "*" in fields[2])
        return _compiled_from(values, days_or=not days_star and not weekdays_star)
    expanded, nth_weekday = croniter.expand(expression)
    if nth_weekday or len(expanded) != 5:
        return None
    values = []
    for field, every in zip(expanded, _RANGES, strict=True):
        if field == ["*"]:
            values.append(tuple(every))
        elif all(isinstance(value, int) for value in field):
            values.append(tuple(sorted({int(value) for value in field})))
        else:
            return None
    return _compiled_from(values, days_or=expanded[2] != ["*"] and expanded[4] != ["*"])


def _compiled_from(values: list[tuple[int, ...]], days_or: bool) -> _Compiled:
    minutes, hours, days, months, weekdays = values
    # A day of the month that no month of the expression has never comes, unless weekdays
    # may stand in for it.
    fires = days_or or any(day <= _DAYS_IN_MONTH[month - 1] for day in days for month in months)
    return _Compiled(
        minutes,
        hours,
        frozenset(days),
        frozenset(months),
        frozenset(day % 7 for day in weekdays),  # 7 is Sunday, as 0 is
        days_or,
        fires,
    )


_RANGES = (range(60), range(24), range(1, 32), range(1, 13), range(7))
_MONTH_NAMES = {name: n for n, name in enumerate(_MONTHS.pattern.split("|"), start=1)}
_WEEKDAY_NAMES = {name: n for n, name in enumerate(_WEEKDAYS.pattern.split("|"))}
# Per field: the largest value written (weekday 7 is Sunday again) and the names it takes.
_LIMITS: tuple[tuple[int, dict[str, int]], ...] = (
    (59, {}),
    (23, {}),
    (31, {}),
    (12, _MONTH_NAMES),
    (7, _WEEKDAY_NAMES),
)


# Ten thousand expressions are written with a few hundred distinct fields (`*`, `0`, `30`...).
@functools.lru_cache(maxsize=4096)
def _field_values(field: str, index: int) -> tuple[int, ...] | None:
    """The values of one plain field (`*`, `5`, `1-5`, `*/15`, `0-30/10`, lists, names) in
    order, or None for anything else: a wrapped range, a bare `5/10`, a value out of range."""
    every, (most, names) = _RANGES[index], _LIMITS[index]
    found: set[int] = set()
    low: int | None
    high: int | None
    for item in field.split(","):
        span, slash, step_text = item.partition("/")
        step = int(step_text) if step_text.isdigit() else 0 if slash else 1
        if span == "*":
            low, high = every[0], every[-1]
        elif "-" in span:
            first, _, last = span.partition("-")
            low, high = _value(first, names), _value(last, names)
        elif slash:
            return None  # `5/10`: croniter reads it as 5-max/10, cron does not
        else:
            low = high = _value(span, names)
        if low is None or high is None or step < 1 or not every[0] <= low <= high <= most:
            return None
        found.update(range(low, high + 1, step))
    return tuple(sorted(found))


def _value(text: str, names: dict[str, int]) -> int | None:
    return int(text) if text.isdigit() else names.get(text)


def is_valid(expression: str) -> bool:
    """croniter can read the expression (cron_syntax_problem says whether cron can). The
    expansion is the one the schedule is matched with, made once per expression."""
    try:
        _compiled(expression)
    except CroniterError:
        return False
    return True


def _croniter_candidates(expression: str, start: datetime, forward: bool) -> Iterator[datetime]:
    matches = croniter(expression, start)
    step = matches.get_next if forward else matches.get_prev
    while True:
        try:
            yield step(datetime)
        except CroniterBadDateError:  # e.g. "0 0 30 2 *": never fires
            return


def _fires(naive: datetime, zone: ZoneInfo, wildcard: bool) -> list[datetime]:
    """The UTC instants at which cron fires for one matching wall-clock time."""
    first = naive.replace(tzinfo=zone, fold=0)
    second = naive.replace(tzinfo=zone, fold=1)
    if not _exists(first):
        return [] if wildcard else [_end_of_gap(naive, zone)]
    if wildcard and first.utcoffset() != second.utcoffset():
        return [first.astimezone(UTC), second.astimezone(UTC)]
    return [first.astimezone(UTC)]


def _exists(local: datetime) -> bool:
    """False for a wall-clock time the clocks jumped over."""
    round_trip = local.astimezone(UTC).astimezone(local.tzinfo)
    return round_trip.replace(tzinfo=None, fold=0) == local.replace(tzinfo=None, fold=0)


def _end_of_gap(naive: datetime, zone: ZoneInfo) -> datetime:
    """The first minute after the clocks jumped over `naive`: when cron catches up."""
    moment = naive.replace(second=0, microsecond=0)
    limit = moment + _MAX_SHIFT
    while moment < limit:
        moment += timedelta(minutes=1)
        local = moment.replace(tzinfo=zone)
        if _exists(local):
            return local.astimezone(UTC)
    return naive.replace(tzinfo=zone).astimezone(UTC)


def system_time_zone() -> str:
    """The machine's own zone name from /etc/localtime, else UTC: cron fires in this zone, so
    `crontab add` refuses a TIME_ZONE that differs (docs/operations.md)."""
    try:
        target = os.path.realpath("/etc/localtime")
    except OSError:
        return "UTC"
    marker = "/zoneinfo/"
    if marker in target:
        name = target.split(marker, 1)[1]
        # Debian links Etc/UTC; Django wants a plain name it can load.
        return "UTC" if name in {"Etc/UTC", "UCT", "Etc/UCT", "Zulu"} else name
    return "UTC"


_LENGTH_PART = re.compile(r"(\d+)\s*([smhd])", re.IGNORECASE)
_LENGTH_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_duration(text: str, hint: str = "") -> timedelta:
    """The one reading of a length typed by a person (a snooze, a maintenance window, a tasks
    file's window `duration`): '30m', '4h', '2d', '90s' or a sum such as '1h30m'. ValueError
    names the value otherwise, zero included (no time at all is a mistake); `hint` adds what
    else the caller accepts (", or tomorrow")."""
    compact = str(text).strip().replace(" ", "")
    parts = _LENGTH_PART.findall(compact)
    if not compact or "".join(n + u for n, u in parts).lower() != compact.lower():
        raise ValueError(f"{text!r} is not a duration like 30m, 4h or 2d{hint}")
    length = sum(
        (timedelta(**{_LENGTH_UNITS[unit.lower()]: int(n)}) for n, unit in parts),
        start=timedelta(),
    )
    if not length:
        raise ValueError(f"{text!r} is no time at all")
    return length


def parse_moment(text: str) -> datetime:
    """The one reading of a moment typed by a person: an ISO 8601 date and time, in TIME_ZONE
    when it carries no offset. ValueError names the value otherwise."""
    try:
        moment = datetime.fromisoformat(str(text).strip())
    except ValueError:
        raise ValueError(f"{text!r} is not an ISO 8601 date and time") from None
    return timezone.make_aware(moment) if timezone.is_naive(moment) else moment
