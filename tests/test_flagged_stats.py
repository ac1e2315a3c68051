"""refresh_store_stats (flagged_products/stats.py) on a hand-made fixture."""

from __future__ import annotations

import datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from flagged_products.models import FlaggedProduct, StoreStats
from flagged_products.stats import refresh_store_stats
from tests import flagged_helpers as h

pytestmark = pytest.mark.django_db
TODAY = datetime.date(2026, 3, 11)
NOW = timezone.make_aware(datetime.datetime.combine(TODAY, datetime.time(15, 0)))


def ago(n: int) -> datetime.date:
    return TODAY - datetime.timedelta(days=n)


@pytest.fixture
def shop():
    """Today (not in the 7-day window of closed days): 2 counted (one 3 units out), 2 pending.
    Three days ago: 3 counted (one 1 unit out), 1 skipped. Eight days ago (outside the window):
    2 counted wrongly."""
    shop = h.outlet("Ponsonby")
    person = h.staff(shop)
    items = iter(h.products(12))
    h.flag(shop, next(items), TODAY, by=person, expected=10, counted=10)
    h.flag(shop, next(items), TODAY, by=person, expected=10, counted=7)
    h.flag(shop, next(items), TODAY)
    h.flag(shop, next(items), TODAY)
    h.flag(shop, next(items), ago(3), by=person, expected=10, counted=11)
    h.flag(shop, next(items), ago(3), by=person)
    h.flag(shop, next(items), ago(3), by=person)
    h.flag(shop, next(items), ago(3), status="skipped")
    h.flag(shop, next(items), ago(8), by=person, counted=0)
    h.flag(shop, next(items), ago(8), by=person, counted=0)
    return shop


def test_numbers_match_the_hand_made_fixture(shop):
    refresh_store_stats(NOW)
    stats = StoreStats.objects.get(outlet=shop)
    assert stats.pending == 2
    assert stats.completed_today == 2
    assert stats.completion_rate_7d == 0.75  # 3 of the 4 flags of the closed days
    assert stats.accuracy_7d == 0.6667  # 2 of 3 counts exact
    assert stats.avg_discrepancy_7d == 0.333  # (1 + 0 + 0) / 3
    assert stats.refreshed_at == NOW


def test_an_outlet_without_flags_gets_zeros_and_inactive_outlets_none(shop):
    quiet, closed = h.outlet("Quiet"), h.outlet("Closed", is_active=False)
    refresh_store_stats(NOW)
    stats = StoreStats.objects.get(outlet=quiet)
    assert (stats.pending, stats.completion_rate_7d, stats.accuracy_7d) == (0, 0.0, 0.0)
    assert not StoreStats.objects.filter(outlet=closed).exists()


def test_a_refresh_updates_the_cached_row_in_place(shop):
    refresh_store_stats(NOW)
    flag = FlaggedProduct.objects.filter(outlet=shop, status="pending").first()
    flag.status, flag.counted_quantity, flag.completed_at = "completed", 10, NOW
    flag.save()
    refresh_store_stats(NOW + datetime.timedelta(minutes=30))
    stats = StoreStats.objects.get(outlet=shop)
    assert (stats.pending, stats.completed_today) == (1, 3)
    assert StoreStats.objects.count() == 1


def test_query_count_does_not_grow_with_flags(shop):
    def run() -> int:
        with CaptureQueriesContext(connection) as ctx:
            refresh_store_stats(NOW)
        return len(ctx.captured_queries)

    before = run()
    for item in h.products(100):
        h.flag(shop, item, ago(1))
    assert run() == before
    assert StoreStats.objects.get(outlet=shop).completion_rate_7d == round(3 / 104, 4)


def test_the_rate_does_not_dip_in_the_morning_and_counts_seven_closed_days(shop):
    """At 07:30 today's 20 new flags are all pending: the 7-day rate must not move, and a day
    is in the window from the day after it until it is 7 closed days old."""
    items = h.products(20)
    for item in items:
        h.flag(shop, item, TODAY)
    refresh_store_stats(NOW)
    afternoon = StoreStats.objects.get(outlet=shop).completion_rate_7d
    morning = timezone.make_aware(datetime.datetime.combine(TODAY, datetime.time(7, 30)))
    refresh_store_stats(morning)
    stats = StoreStats.objects.get(outlet=shop)
    assert stats.completion_rate_7d == afternoon == 0.75
    assert stats.pending == 22

    # Tomorrow today's day is closed: its 24 flags (2 counted) join the window.
    refresh_store_stats(NOW + datetime.timedelta(days=1))
    assert StoreStats.objects.get(outlet=shop).completion_rate_7d == round(5 / 28, 4)
    # Five days later the flags of three days ago (8 days old then) have left it.
    refresh_store_stats(NOW + datetime.timedelta(days=5))
    assert StoreStats.objects.get(outlet=shop).completion_rate_7d == round(2 / 24, 4)
