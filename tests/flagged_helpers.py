"""Small builders for the flagged_products suites: hand-made fixtures, a few rows each."""

from __future__ import annotations

import datetime
import itertools
from decimal import Decimal

from django.utils import timezone

from flagged_products.models import FlaggedProduct, Outlet, Product, Sale, Staff, StockLevel

_seq = itertools.count(1)
Status = FlaggedProduct.Status


def outlet(name: str = "Ponsonby", **fields) -> Outlet:
    n = next(_seq)
    return Outlet.objects.create(code=f"T{n:04d}", name=name, **fields)


def product(cost: str = "5.00", **fields) -> Product:
    n = next(_seq)
    fields = {"name": f"Product {n}", "brand": "Tui", "category": "Snacks", **fields}
    return Product.objects.create(sku=f"T{n:06d}", price=Decimal(cost) * 2, cost=cost, **fields)


def products(count: int, cost: str = "5.00") -> list[Product]:
    start = next(_seq) * 100_000  # keep SKUs unique across calls
    Product.objects.bulk_create(
        Product(
            sku=f"B{start + i}",
            name=f"Bulk {i}",
            brand="Tui",
            category="Snacks",
            price=Decimal(cost) * 2,
            cost=cost,
        )
        for i in range(count)
    )
    return list(Product.objects.filter(sku__startswith="B").order_by("id"))[-count:]


def stock(at: Outlet, items: list[Product], quantity: int = 10) -> None:
    StockLevel.objects.bulk_create(
        StockLevel(outlet=at, product=p, quantity=quantity) for p in items
    )


def staff(at: Outlet, name: str = "Aroha") -> Staff:
    n = next(_seq)
    return Staff.objects.create(outlet=at, name=name, email=f"s{n}@example.com")


def sale(at: Outlet, item: Product, day: datetime.date, quantity: int = 1) -> Sale:
    return Sale.objects.create(outlet=at, product=item, sold_on=day, quantity=quantity)


def flag(
    at: Outlet,
    item: Product,
    day: datetime.date,
    by: Staff | None = None,
    expected: int = 10,
    counted: int | None = None,
    status: str | None = None,
) -> FlaggedProduct:
    """A flag; with `by` it is a completed count (counted defaults to expected)."""
    fields = {"status": status or Status.PENDING}
    if by is not None:
        fields = {
            "status": status or Status.COMPLETED,
            "completed_by": by,
            "counted_quantity": expected if counted is None else counted,
            "completed_at": timezone.make_aware(
                datetime.datetime.combine(day, datetime.time(10, 0))
            ),
        }
    return FlaggedProduct.objects.create(
        outlet=at,
        product=item,
        flag_date=day,
        reason="test",
        score=1.0,
        expected_quantity=expected,
        **fields,
    )
