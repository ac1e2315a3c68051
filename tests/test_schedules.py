"""Next runs and schedules in words, in TIME_ZONE, across Pacific/Auckland's clock changes."""

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine

from cronjobs.schedules import (
    cron_syntax_problem,
    describe,
    is_wildcard,
    next_run,
    next_runs,
    previous_run,
)

NZ = ZoneInfo("Pacific/Auckland")


@pytest.fixture(autouse=True)
def _auckland(settings):
    settings.TIME_ZONE = "Pacific/Auckland"


def nz(*args, fold=0) -> datetime:
    return datetime(*args, tzinfo=NZ, fold=fold)


def stamps(runs) -> list[str]:
    """What an operator reads: local time with its offset."""
    return [run.isoformat(timespec="minutes") for run in runs]


SEED = [
    # task, schedule, words, next run after Tuesday 2026-06-09 12:10 NZST
    ("generate_daily_products", "5 7 * * *", "At 07:05 AM", "2026-06-10T07:05+12:00"),
    ("refresh_store_stats", "*/30 * * * *", "Every 30 minutes", "2026-06-09T12:30+12:00"),
    ("refresh_leaderboard", "0 2 * * *", "At 02:00 AM", "2026-06-10T02:00+12:00"),
    ("check_achievements", "0 */6 * * *", "Every 6 hours", "2026-06-09T18:00+12:00"),
    ("generate_ai_insights", "0 * * * *", "Every hour", "2026-06-09T13:00+12:00"),
]


@pytest.mark.parametrize(("task", "schedule", "words", "expected"), SEED, ids=[s[0] for s in SEED])
def test_seed_schedule_next_run_and_words(task, schedule, words, expected):
    with time_machine.travel(nz(2026, 6, 9, 12, 10), tick=False):
        run = next_run(schedule)
    assert stamps([run]) == [expected]
    assert describe(schedule) == words


def test_next_runs_are_local_aware_times_in_order():
    runs = next_runs("0 */6 * * *", 4, after=nz(2026, 6, 9, 12, 10))
    assert stamps(runs) == [
        "2026-06-09T18:00+12:00",
        "2026-06-10T00:00+12:00",
        "2026-06-10T06:00+12:00",
        "2026-06-10T12:00+12:00",
    ]
    assert all(run.tzinfo == NZ for run in runs)


def test_next_run_is_strictly_after_a_run_that_just_fired():
    assert stamps([next_run("5 7 * * *", after=nz(2026, 6, 9, 7, 5))]) == ["2026-06-10T07:05+12:00"]


def test_previous_run_defaults_to_now():
    with time_machine.travel(nz(2026, 6, 9, 12, 10), tick=False):
        assert stamps([previous_run("*/30 * * * *")]) == ["2026-06-09T12:00+12:00"]
        assert stamps([previous_run("5 7 * * *")]) == ["2026-06-09T07:05+12:00"]


def test_manual_only_task_has_no_runs():
    assert next_runs("", 3) == []
    assert next_run("") is None
    assert previous_run("") is None
    assert describe("") == "Manual only"


def test_a_date_that_never_comes_has_no_next_run():
    assert next_run("0 0 30 2 *") is None


def test_macros_read_like_their_expansion():
    assert describe("@daily") == "At 12:00 AM"
    assert stamps([next_run("@hourly", after=nz(2026, 6, 9, 12, 10))]) == ["2026-06-09T13:00+12:00"]


def test_wildcard_jobs_are_the_ones_with_a_star_in_minute_or_hour():
    assert is_wildcard("*/30 * * * *") and is_wildcard("0 */6 * * *") and is_wildcard("@hourly")
    assert not is_wildcard("5 7 * * *") and not is_wildcard("0 1-3 * * *")


@pytest.mark.parametrize(
    ("expression", "problem"),
    [
        ("0 9 * * mon-fri", ""),
        ("0 0 1 jan,jul *", ""),
        ("@daily", ""),
        ("0 0 L * *", "uses 'L', which Debian's cron does not understand"),
        ("0 12 * * MON#2", "uses 'MON#2', which Debian's cron does not understand"),
        ("0 0 ? * *", "uses '?', which Debian's cron does not understand"),
        ("0 0 * * * *", "has 6 fields; cron takes 5 (minute hour day month weekday)"),
    ],
)
def test_croniter_only_syntax_is_named_because_cron_would_reject_it(expression, problem):
    assert cron_syntax_problem(expression) == problem


# September 27 2026: 02:00 NZST jumps to 03:00 NZDT; 02:xx does not exist.


def test_fixed_time_job_in_the_skipped_hour_runs_once_when_clocks_jump():
    runs = next_runs("30 2 * * *", 2, after=nz(2026, 9, 26, 12, 0))
    assert stamps(runs) == ["2026-09-27T03:00+13:00", "2026-09-28T02:30+13:00"]


def test_leaderboard_at_two_still_runs_on_the_night_clocks_go_forward():
    with time_machine.travel(nz(2026, 9, 26, 23, 0), tick=False):
        assert stamps(next_runs("0 2 * * *", 2)) == [
            "2026-09-27T03:00+13:00",
            "2026-09-28T02:00+13:00",
        ]


def test_wildcard_job_has_no_runs_in_the_skipped_hour():
    runs = next_runs("*/30 * * * *", 4, after=nz(2026, 9, 27, 1, 0))
    assert stamps(runs) == [
        "2026-09-27T01:30+12:00",
        "2026-09-27T03:00+13:00",
        "2026-09-27T03:30+13:00",
        "2026-09-27T04:00+13:00",
    ]


def test_previous_run_across_the_spring_gap():
    with time_machine.travel(nz(2026, 9, 27, 3, 10), tick=False):
        assert stamps([previous_run("30 2 * * *")]) == ["2026-09-27T03:00+13:00"]
        assert stamps([previous_run("*/30 * * * *")]) == ["2026-09-27T03:00+13:00"]
    assert stamps([previous_run("*/30 * * * *", before=nz(2026, 9, 27, 3, 0))]) == [
        "2026-09-27T01:30+12:00"
    ]


# April 5 2026: 03:00 NZDT goes back to 02:00 NZST; 02:xx happens twice.


def test_fixed_time_job_in_the_repeated_hour_runs_only_once():
    runs = next_runs("30 2 * * *", 2, after=nz(2026, 4, 4, 12, 0))
    assert stamps(runs) == ["2026-04-05T02:30+13:00", "2026-04-06T02:30+12:00"]


def test_wildcard_job_runs_in_both_passes_of_the_repeated_hour():
    runs = next_runs("*/30 * * * *", 6, after=nz(2026, 4, 5, 1, 45))
    assert stamps(runs) == [
        "2026-04-05T02:00+13:00",
        "2026-04-05T02:30+13:00",
        "2026-04-05T02:00+12:00",
        "2026-04-05T02:30+12:00",
        "2026-04-05T03:00+12:00",
        "2026-04-05T03:30+12:00",
    ]


def test_runs_seen_from_inside_the_second_pass():
    second_pass = nz(2026, 4, 5, 2, 10, fold=1)  # 02:10 NZST, after 02:30 NZDT already happened
    with time_machine.travel(second_pass, tick=False):
        assert stamps([next_run("0 * * * *")]) == ["2026-04-05T03:00+12:00"]
        assert stamps([previous_run("0 * * * *")]) == ["2026-04-05T02:00+12:00"]
        assert stamps([previous_run("30 2 * * *")]) == ["2026-04-05T02:30+13:00"]
        assert stamps([next_run("30 2 * * *")]) == ["2026-04-06T02:30+12:00"]


def test_next_run_is_the_same_for_every_moment_of_a_minute_and_moves_at_its_end():
    """next_run is computed once a minute per expression (a page lists a hundred tasks); the
    cached answer must be what every moment of that minute would get."""
    for second in (0, 1, 30, 59.999):
        moment = nz(2026, 6, 9, 12, 29) + timedelta(seconds=second)
        assert next_run("*/30 * * * *", moment) == nz(2026, 6, 9, 12, 30)
    assert next_run("*/30 * * * *", nz(2026, 6, 9, 12, 30)) == nz(2026, 6, 9, 13, 0)
    assert next_run("* * * * *", nz(2026, 6, 9, 12, 30, 59)) == nz(2026, 6, 9, 12, 31)


def test_next_run_follows_a_change_of_time_zone(settings):
    moment = datetime(2026, 6, 9, 0, 10, tzinfo=ZoneInfo("UTC"))  # 12:10 NZST
    assert stamps([next_run("5 7 * * *", moment)]) == ["2026-06-10T07:05+12:00"]
    settings.TIME_ZONE = "Europe/London"
    assert stamps([next_run("5 7 * * *", moment)]) == ["2026-06-09T07:05+01:00"]


# The compiled matcher (schedules._compiled) against croniter itself: random expressions and
# moments, read through the whole zone and daylight-saving logic both ways.
FIELDS = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 7))


def random_field(rng, low: int, high: int) -> str:
    shape = rng.choice(["*", "*", "value", "list", "range", "step", "every"])
    if shape == "*":
        return "*"
    if shape == "value":
        return str(rng.randint(low, high))
    if shape == "list":
        return ",".join(str(v) for v in sorted(rng.sample(range(low, high + 1), 3)))
    first = rng.randint(low, high - 1)
    last = rng.randint(first + 1, high)
    if shape == "range":
        return f"{first}-{last}"
    if shape == "step":
        return f"{first}-{last}/{rng.randint(2, 4)}"
    return f"*/{rng.randint(2, max(2, (high - low) // 2))}"


def random_expression(rng) -> str:
    return " ".join(random_field(rng, low, high) for low, high in FIELDS)


def random_moments(rng, zone: str, count: int) -> list[datetime]:
    """Moments spread over years, and as many within hours of the zone's clock changes."""
    tz = ZoneInfo(zone)
    moments = []
    for _ in range(count):
        moment = datetime(2024, 1, 1, tzinfo=ZoneInfo("UTC")) + timedelta(
            seconds=rng.randint(0, 6 * 365 * 86400)
        )
        moments.append(moment)
    changes = []
    probe = datetime(2025, 1, 1, tzinfo=ZoneInfo("UTC"))
    while probe.year < 2027:
        if (probe + timedelta(hours=1)).astimezone(tz).utcoffset() != probe.astimezone(
            tz
        ).utcoffset():
            changes.append(probe)
        probe += timedelta(hours=1)
    for _ in range(count):
        change = rng.choice(changes) if changes else moments[0]
        moments.append(change + timedelta(seconds=rng.randint(-3 * 3600, 3 * 3600)))
    return moments


def through_croniter(monkeypatch, call):
    with monkeypatch.context() as patched:
        patched.setattr("cronjobs.schedules._compiled", lambda expression: None)
        return call()


@pytest.mark.parametrize("zone", ["Europe/London", "America/New_York", "Pacific/Auckland"])
def test_compiled_schedules_agree_with_croniter_in_every_zone(monkeypatch, settings, zone):
    import random

    rng = random.Random(f"schedules-{zone}")
    settings.TIME_ZONE = zone
    expressions = [random_expression(rng) for _ in range(40)]
    expressions += ["5 7 * * *", "30 1 * * *", "30 2 * * 0", "*/30 * * * *", "0 */6 * * *"]
    expressions += ["0 0 29 2 *", "0 0 30 2 *", "15 3 13 * 5", "0 12 * * 7", "0 0 31 * *"]
    compared = 0
    for expression in expressions:
        for moment in random_moments(rng, zone, 3):
            at = moment.replace(second=rng.choice((0, 17)), microsecond=0)
            fast = (next_runs(expression, 3, at, zone), previous_run(expression, at, zone))
            slow = through_croniter(
                monkeypatch,
                lambda e=expression, a=at: (next_runs(e, 3, a, zone), previous_run(e, a, zone)),
            )
            assert stamps(fast[0]) == stamps(slow[0]), (expression, at.isoformat())
            assert fast[1] == slow[1], (expression, at.isoformat())
            compared += 1
    assert compared == len(expressions) * 6


def test_compiled_schedule_reads_weekday_seven_as_sunday_and_either_day_field():
    after = nz(2026, 6, 9, 12, 10)  # a Tuesday
    assert stamps(next_runs("0 12 * * 7", 1, after)) == ["2026-06-14T12:00+12:00"]
    # Both day fields restricted: the 13th or any Friday, whichever comes first.
    assert stamps(next_runs("0 9 13 * 5", 2, after)) == [
        "2026-06-12T09:00+12:00",
        "2026-06-13T09:00+12:00",
    ]
    assert next_runs("0 0 30 2 *", 1, after) == []


def test_plain_cron_syntax_is_read_as_croniter_expands_it():
    """schedules reads plain fields itself (croniter.expand is its slowest part); for each
    expression, the same minutes, hours, days, months, weekdays and day rule, or the same
    refusal."""
    import random

    from croniter import CroniterError, croniter

    from cronjobs import schedules

    rng = random.Random("plain-syntax")
    expressions = [random_expression(rng) for _ in range(2000)]
    expressions += ["0 0 * * mon-fri", "0 0 1 jan-mar *", "0 0 * * 5-7", "0 0 */1 * 1"]
    expressions += ["0 0 1-31 * 1", "0 0 * * 0-7", "0 0 */2 * */3", "0 0 * * jan", "61 0 * * *"]
    expressions += ["*/0 * * * *", "0 0 * sun *", "0 0 1-31 * 1-7", "5/10 * * * *"]
    for expression in expressions:
        try:
            fields, _ = croniter.expand(expression)
        except CroniterError:
            with pytest.raises(CroniterError):
                schedules._compiled.__wrapped__(expression)
            continue
        values = [
            tuple(every) if field == ["*"] else tuple(sorted(int(v) for v in field))
            for field, every in zip(fields, schedules._RANGES, strict=True)
        ]
        days_or = fields[2] != ["*"] and fields[4] != ["*"]
        expected = schedules._compiled_from(values, days_or=days_or)
        assert schedules._compiled.__wrapped__(expression) == expected, expression


@pytest.mark.parametrize("zone", ["Europe/London", "America/New_York"])
def test_may_fire_between_never_misses_a_fire_time(settings, zone):
    """The dispatcher's shortcut may say "maybe" when nothing fires, never "no" when
    something does: checked against previous_run on random expressions and moments, clock
    changes included."""
    import random

    from cronjobs.schedules import may_fire_between

    rng = random.Random(f"may-fire-{zone}")
    settings.TIME_ZONE = "UTC"
    expressions = [random_expression(rng) for _ in range(40)]
    expressions += ["5 7 * * *", "30 1 * * *", "30 2 * * 0", "0 */6 * * *", "0 0 30 2 *"]
    saw_no = saw_yes = 0
    for expression in expressions:
        for moment in random_moments(rng, zone, 3):
            until = moment.replace(microsecond=0)
            since = until - timedelta(minutes=5)
            last = previous_run(expression, until + timedelta(microseconds=1), zone)
            fires = last is not None and last >= since
            answer = may_fire_between(expression, since, until, zone)
            assert answer or not fires, (expression, until.isoformat(), last)
            saw_no += not answer
            saw_yes += fires
    assert saw_no and saw_yes  # both answers were put to the test
