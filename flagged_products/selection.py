"""generate_daily_products: which products each outlet's staff count today.

Every candidate (a product the outlet stocks) gets a score in points; the highest are flagged.

    score = 200 x anomaly        negative stock, or none on hand although it sold in the last 7 days
          +  30 x value at risk  log(1 + on-hand units x cost) / log(1 + 10 000), at most 1
          +  25 x velocity       units sold per day over the last 28 days / 5, at most 1
          +  25 x staleness      days since last counted at this outlet / 90, at most 1 (never: 1)
          +  20 x discrepancies  past counts at this outlet that did not match / 3, at most 1
          +   1 x random         seeded by outlet and day, so reruns choose the same products

The regular terms add up to at most 101 points, so every anomaly is flagged before any other
product. Products flagged at the outlet in the last 7 days (today included) are not candidates,
which is also what makes a rerun top up instead of duplicating.

Queries per outlet are fixed (lock, count, stock, sales, history, insert), plus one for every
product's cost, whatever the number of products: the aggregation happens in SQL (covering
indexes, see models.py) and the scoring over one outlet's rows in Python.
"""

from __future__ import annotations

import dataclasses
import datetime
import heapq
import math
import random
from typing import Any, TypeVar

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, F, FloatField, Max, Q, QuerySet, Sum
from django.db.models.functions import Cast
from django.utils import timezone

from flagged_products.models import FlaggedProduct, Outlet, Product, Sale, StockLevel

ANOMALY_POINTS = 200
WEIGHTS = {"value": 30, "velocity": 25, "staleness": 25, "discrepancies": 20}
W_VALUE, W_VELOCITY, W_STALENESS, W_DISCREPANCIES = WEIGHTS.values()
VALUE_CAP = 10_000  # dollars on hand at cost that earn the full value term
LOG_VALUE_CAP = math.log1p(VALUE_CAP)
VELOCITY_CAP = 5.0  # units a day that earn the full velocity term
STALE_DAYS = 90
DISCREPANCY_CAP = 3
VELOCITY_DAYS = 28
RECENT_SALE_DAYS = 7
EXCLUDE_DAYS = 7

REASONS = {
    "negative": "negative stock",
    "zero_selling": "zero stock but selling",
    "value": "high value at risk",
    "velocity": "fast mover",
    "staleness": "not counted recently",
    "discrepancies": "past discrepancies",
}


@dataclasses.dataclass(frozen=True)
class Candidate:
    product_id: int
    quantity: int
    score: float
    reason: str


@dataclasses.dataclass
class OutletFacts:
    """One outlet's aggregates, keyed by product id, as read from the database."""

    stock: list[tuple[int, int]]  # (product_id, quantity), by product id
    units: dict[int, int]  # units sold over VELOCITY_DAYS
    recent_units: dict[int, int]  # units sold over RECENT_SALE_DAYS
    days_since_count: dict[int, int]
    mismatches: dict[int, int]
    recently_flagged: set[int]


def generate_daily_products(day: datetime.date | None = None) -> dict[str, int]:
    """Flag up to FLAGGED_PRODUCTS_PER_OUTLET products at every active outlet for `day`.
    Returns counts for the job's log line."""
    day = day or timezone.localdate()
    per_outlet = settings.FLAGGED_PRODUCTS_PER_OUTLET
    costs = product_costs()
    outlets = list(Outlet.objects.filter(is_active=True).values_list("id", flat=True))
    created = sum(flag_outlet(outlet_id, day, per_outlet, costs) for outlet_id in outlets)
    return {"outlets": len(outlets), "flagged": created}


def product_costs() -> dict[int, float]:
    """Cost of every active product, read once for all outlets. Cast in SQL: converting
    130 000 Decimals per run in Python costs more than the queries do."""
    active = Product.objects.filter(is_active=True)
    return dict(active.values_list("id", Cast("cost", FloatField())))


def flag_outlet(
    outlet_id: int, day: datetime.date, per_outlet: int, costs: dict[int, float]
) -> int:
    """Top the outlet's flags for `day` up to `per_outlet`; returns how many were added.

    Two runs (retries, or the same crontab on two hosts) must not exceed the quota, so the
    work happens under a lock on the outlet's row. The lock is a no-op UPDATE rather than
    SELECT ... FOR UPDATE because SQLite ignores FOR UPDATE but takes its write lock, with
    busy-waiting, on a transaction's first write. The unique constraint backs it up."""
    with transaction.atomic():
        Outlet.objects.filter(pk=outlet_id).update(code=F("code"))
        have = FlaggedProduct.objects.filter(outlet_id=outlet_id, flag_date=day).count()
        need = per_outlet - have
        if need <= 0:
            return 0
        chosen = best_candidates(outlet_id, day, need, costs)
        rows = [flag_row(outlet_id, day, candidate) for candidate in chosen]
        FlaggedProduct.objects.bulk_create(rows, ignore_conflicts=True)
    return len(chosen)


def flag_row(outlet_id: int, day: datetime.date, candidate: Candidate) -> FlaggedProduct:
    return FlaggedProduct(
        outlet_id=outlet_id,
        product_id=candidate.product_id,
        flag_date=day,
        reason=candidate.reason,
        score=round(candidate.score, 3),
        expected_quantity=candidate.quantity,
    )


def best_candidates(
    outlet_id: int, day: datetime.date, limit: int, costs: dict[int, float]
) -> list[Candidate]:
    facts = load_facts(outlet_id, day)
    rng = random.Random(f"{outlet_id}:{day.isoformat()}")
    scored = []
    for product_id, quantity in facts.stock:
        jitter = rng.random()  # drawn for every stocked product, so it is stable per product
        cost = costs.get(product_id)
        if cost is not None and product_id not in facts.recently_flagged:
            terms = score_terms(product_id, quantity, cost, facts)
            bonus = anomaly(product_id, quantity, facts)[0]
            total = terms[0] + terms[1] + terms[2] + terms[3] + jitter + bonus
            scored.append((total, -product_id, quantity, terms))
    top = heapq.nlargest(limit, scored)
    return [
        Candidate(-neg_id, quantity, total, reason(-neg_id, quantity, terms, facts))
        for total, neg_id, quantity, terms in top
    ]


def load_facts(outlet_id: int, day: datetime.date) -> OutletFacts:
    stock = raw_rows(
        StockLevel.objects.filter(outlet_id=outlet_id)
        .order_by("product_id")
        .values_list("product_id", "quantity")
    )
    recent = Q(sold_on__gt=day - datetime.timedelta(days=RECENT_SALE_DAYS))
    sales = (
        Sale.objects.filter(
            outlet_id=outlet_id,
            sold_on__gt=day - datetime.timedelta(days=VELOCITY_DAYS),
            sold_on__lte=day,
        )
        .values("product_id")
        .annotate(units=Sum("quantity"), recent=Sum("quantity", filter=recent))
        .order_by()
        .values_list("product_id", "units", "recent")
    )
    completed = Q(status=FlaggedProduct.Status.COMPLETED)
    history = (
        # No upper bound on flag_date: then MariaDB groups along the unique
        # (outlet, product, flag_date) index instead of building a temporary table.
        FlaggedProduct.objects.filter(outlet_id=outlet_id)
        .values("product_id")
        .annotate(
            last_flagged=Max("flag_date"),
            last_counted=Max("flag_date", filter=completed),
            mismatches=Count("id", filter=completed & ~Q(counted_quantity=F("expected_quantity"))),
        )
        .order_by()
        .values_list("product_id", "last_flagged", "last_counted", "mismatches")
    )
    facts = OutletFacts(stock, {}, {}, {}, {}, set())
    for product_id, units, recent_units in sales:
        facts.units[product_id] = units
        facts.recent_units[product_id] = recent_units or 0
    exclude_from = day - datetime.timedelta(days=EXCLUDE_DAYS)
    for product_id, last_flagged, last_counted, mismatches in history:
        if last_flagged >= exclude_from:
            facts.recently_flagged.add(product_id)
        if last_counted:
            facts.days_since_count[product_id] = max(0, (day - last_counted).days)
        if mismatches:
            facts.mismatches[product_id] = mismatches
    return facts


Row = TypeVar("Row")


def raw_rows(queryset: QuerySet[Any, Row]) -> list[Row]:
    """The rows of a values_list() of plain integer columns, straight from the cursor: for the
    ~7 000 stock rows per outlet, Django's per-row iterator costs more than the query. Only for
    columns that need no conversion (no decimals, dates or aggregates)."""
    sql, params = queryset.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return list(cursor.fetchall())


def score_terms(
    product_id: int, quantity: int, cost: float, facts: OutletFacts
) -> tuple[float, float, float, float]:
    """The weighted regular terms, in the order of WEIGHTS. Called for every stocked product,
    so it stays plain arithmetic."""
    value = math.log1p(quantity * cost) / LOG_VALUE_CAP if quantity > 0 else 0.0
    velocity = facts.units.get(product_id, 0) / (VELOCITY_DAYS * VELOCITY_CAP)
    staleness = facts.days_since_count.get(product_id, STALE_DAYS) / STALE_DAYS
    discrepancies = facts.mismatches.get(product_id, 0) / DISCREPANCY_CAP
    return (
        W_VALUE * (value if value < 1.0 else 1.0),
        W_VELOCITY * (velocity if velocity < 1.0 else 1.0),
        W_STALENESS * (staleness if staleness < 1.0 else 1.0),
        W_DISCREPANCIES * (discrepancies if discrepancies < 1.0 else 1.0),
    )


def anomaly(product_id: int, quantity: int, facts: OutletFacts) -> tuple[int, str]:
    if quantity < 0:
        return ANOMALY_POINTS, REASONS["negative"]
    if quantity == 0 and facts.recent_units.get(product_id):
        return ANOMALY_POINTS, REASONS["zero_selling"]
    return 0, ""


def reason(product_id: int, quantity: int, terms: tuple[float, ...], facts: OutletFacts) -> str:
    """The anomaly, else the term that contributed most points."""
    anomaly_reason = anomaly(product_id, quantity, facts)[1]
    if anomaly_reason:
        return anomaly_reason
    return REASONS[list(WEIGHTS)[terms.index(max(terms))]]
