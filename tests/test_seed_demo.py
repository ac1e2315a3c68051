"""manage.py seed_demo: deterministic, staged, refusing (or skipping) an already seeded DB."""

from __future__ import annotations

import datetime
import hashlib
import io

import pytest
import time_machine
from django.core.management import CommandError, call_command
from django.db.models import F, Sum

from flagged_products.models import FlaggedProduct, Product, Sale, Staff, StockLevel
from flagged_products.selection import generate_daily_products

pytestmark = pytest.mark.django_db
SMALL = ["--outlets", "2", "--products", "300", "--staff", "6", "--days", "10"]
TODAY = datetime.datetime(2026, 3, 11, 9, 0, tzinfo=datetime.UTC)


def seed(*args: str) -> str:
    out = io.StringIO()
    with time_machine.travel(TODAY, tick=False):
        call_command("seed_demo", *SMALL, *args, stdout=out)
    return out.getvalue()


def fingerprint() -> str:
    rows = [
        list(Product.objects.order_by("sku").values_list("sku", "name", "price", "cost")),
        list(StockLevel.objects.order_by("outlet__code", "product__sku").values_list("quantity")),
        Sale.objects.aggregate(Sum("quantity")),
        list(
            FlaggedProduct.objects.order_by(
                "flag_date", "outlet__code", "product__sku"
            ).values_list("product__sku", "status", "expected_quantity", "counted_quantity")
        ),
        list(Staff.objects.order_by("email").values_list("email", "outlet__code")),
    ]
    return hashlib.sha256(repr(rows).encode()).hexdigest()


def test_the_same_seed_gives_the_same_data_and_another_seed_does_not():
    seed("--seed", "7")
    first = fingerprint()
    seed("--seed", "7", "--flush")
    assert fingerprint() == first
    seed("--seed", "8", "--flush")
    assert fingerprint() != first


def test_each_stage_prints_a_progress_line():
    out = seed()
    for stage in (
        "outlets: 2 rows",
        "products: 300 rows",
        "stock:",
        "sales:",
        "staff: 6 rows",
        "flags: 400 rows",
        "seeded:",
    ):
        assert stage in out


def test_an_already_seeded_database_is_refused_and_left_alone():
    seed()
    before = fingerprint()
    with pytest.raises(CommandError, match=r"refusing to seed.*2 outlets.*--flush.*--if-empty"):
        seed("--seed", "99")
    assert fingerprint() == before


def test_if_empty_skips_an_already_seeded_database():
    seed()
    before = fingerprint()
    assert "already seeded (2 outlets, 300 products, 400 flags): skipped" in seed("--if-empty")
    assert fingerprint() == before


def test_the_data_has_the_shapes_the_jobs_look_for():
    seed()
    assert StockLevel.objects.filter(quantity__lt=0).exists()
    assert StockLevel.objects.filter(quantity=0).exists()
    assert Product.objects.filter(price__gte=300).exists()  # expensive items
    flags = FlaggedProduct.objects
    completed = flags.filter(status="completed")
    assert completed.count() > flags.count() * 0.7
    assert completed.exclude(counted_quantity=F("expected_quantity")).exists()
    assert flags.filter(status="skipped").exists()
    yesterday = TODAY.date() - datetime.timedelta(days=1)
    assert flags.filter(status="pending", flag_date=yesterday).exists()
    assert not flags.filter(flag_date=TODAY.date()).exists()  # today is left for the job
    busiest = Sale.objects.values("product").annotate(n=Sum("quantity")).order_by("-n")
    assert busiest[0]["n"] > 10 * busiest[len(busiest) // 2]["n"]  # fast and slow movers


def test_seeded_outlets_get_their_twenty_products():
    seed()
    assert generate_daily_products(TODAY.date()) == {"outlets": 2, "flagged": 40}


def test_bad_sizes_are_refused():
    with pytest.raises(CommandError, match="--products must be at least 20"):
        call_command("seed_demo", "--products", "5")
