"""refresh_store_stats: per-outlet numbers cached in StoreStats for the portal's store page.

    pending             today's flags still to count
    completed_today     counts completed since local midnight
    completion_rate_7d  completed / flagged, flags dated on the 7 closed days before today
    accuracy_7d         exact counts / completed counts, same window
    avg_discrepancy_7d  mean |counted - expected| of completed counts, same window

The 7-day figures leave today out. Today's flags are made at 07:05 and counted during the day,
so until the evening most of them are still pending, not missed: counting them made the rate
drop by up to a seventh every morning and the insight report a store on target as below its
goal. Weighting today by the elapsed counting day would need a model of when staff count; a
closed day is simply over, so the window is the 7 closed days (yesterday and the 6 before), and
today shows in `pending` and `completed_today` instead.

One aggregate query for all outlets and one upsert: the cost does not grow with products.
"""

from __future__ import annotations

import datetime
from typing import Any

from django.db import connection
from django.db.models import Avg, Count, F, Q
from django.db.models.functions import Abs
from django.utils import timezone

from flagged_products.models import FlaggedProduct, Outlet, StoreStats

WINDOW_DAYS = 7
STAT_FIELDS = [
    "pending",
    "completed_today",
    "completion_rate_7d",
    "accuracy_7d",
    "avg_discrepancy_7d",
    "refreshed_at",
]


def outlet_numbers(today: datetime.date, midnight: datetime.datetime) -> dict[int, dict[str, Any]]:
    done = Q(status=FlaggedProduct.Status.COMPLETED)
    closed = done & Q(flag_date__lt=today)  # the 7-day figures: closed days only
    rows = (
        FlaggedProduct.objects.filter(
            flag_date__gte=today - datetime.timedelta(days=WINDOW_DAYS), flag_date__lte=today
        )
        .values("outlet_id")
        .annotate(
            flagged=Count("id", filter=Q(flag_date__lt=today)),
            pending=Count("id", filter=Q(flag_date=today, status=FlaggedProduct.Status.PENDING)),
            completed=Count("id", filter=closed),
            completed_today=Count("id", filter=done & Q(completed_at__gte=midnight)),
            accurate=Count("id", filter=closed & Q(counted_quantity=F("expected_quantity"))),
            avg_discrepancy=Avg(Abs(F("counted_quantity") - F("expected_quantity")), filter=closed),
        )
        .order_by()
    )
    return {row["outlet_id"]: row for row in rows}


def stats_row(outlet_id: int, numbers: dict[str, Any] | None, now: datetime.datetime) -> StoreStats:
    if not numbers:
        return StoreStats(outlet_id=outlet_id, refreshed_at=now)
    completed = numbers["completed"]
    return StoreStats(
        outlet_id=outlet_id,
        pending=numbers["pending"],
        completed_today=numbers["completed_today"],
        completion_rate_7d=round(completed / numbers["flagged"], 4) if numbers["flagged"] else 0.0,
        accuracy_7d=round(numbers["accurate"] / completed, 4) if completed else 0.0,
        avg_discrepancy_7d=round(float(numbers["avg_discrepancy"] or 0), 3),
        refreshed_at=now,
    )


def refresh_store_stats(now: datetime.datetime | None = None) -> dict[str, int]:
    now = now or timezone.now()
    today = timezone.localdate(now)
    midnight = timezone.make_aware(datetime.datetime.combine(today, datetime.time()))
    numbers = outlet_numbers(today, midnight)
    outlets = Outlet.objects.filter(is_active=True).values_list("id", flat=True)
    rows = [stats_row(outlet_id, numbers.get(outlet_id), now) for outlet_id in outlets]
    # MySQL's ON DUPLICATE KEY UPDATE takes no conflict target; SQLite requires one.
    target = ["outlet"] if connection.features.supports_update_conflicts_with_target else None
    StoreStats.objects.bulk_create(
        rows, update_conflicts=True, unique_fields=target, update_fields=STAT_FIELDS
    )
    return {"outlets": len(rows)}
