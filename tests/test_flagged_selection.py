"""generate_daily_products (flagged_products/selection.py): which products an outlet counts."""

from __future__ import annotations

import contextlib
import datetime
import threading

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from flagged_products import selection
from flagged_products.models import FlaggedProduct, Outlet
from flagged_products.selection import generate_daily_products
from tests import flagged_helpers as h

pytestmark = pytest.mark.django_db
DAY = datetime.date(2026, 3, 10)


def flagged_today(outlet) -> list[int]:
    return sorted(
        FlaggedProduct.objects.filter(outlet=outlet, flag_date=DAY).values_list(
            "product_id", flat=True
        )
    )


def test_each_active_outlet_gets_exactly_twenty_products():
    shop, closed = h.outlet(), h.outlet("Closed", is_active=False)
    items = h.products(50)
    h.stock(shop, items)
    h.stock(closed, items)
    result = generate_daily_products(DAY)
    assert len(flagged_today(shop)) == 20
    assert flagged_today(closed) == []
    assert result == {"outlets": 1, "flagged": 20}
    row = FlaggedProduct.objects.filter(outlet=shop).first()
    assert row.status == FlaggedProduct.Status.PENDING and row.expected_quantity == 10


def test_anomalies_are_flagged_before_everything_else(settings):
    settings.FLAGGED_PRODUCTS_PER_OUTLET = 2
    shop = h.outlet()
    items = h.products(30, cost="400.00")  # valuable, never counted: high scores
    h.stock(shop, items, quantity=50)
    negative, empty_selling, empty_idle = h.product("1.00"), h.product("1.00"), h.product("1.00")
    h.stock(shop, [negative], quantity=-4)
    h.stock(shop, [empty_selling, empty_idle], quantity=0)
    h.sale(shop, empty_selling, DAY - datetime.timedelta(days=2))
    h.sale(shop, empty_idle, DAY - datetime.timedelta(days=20))
    generate_daily_products(DAY)
    assert flagged_today(shop) == sorted([negative.id, empty_selling.id])
    reasons = dict(FlaggedProduct.objects.values_list("product_id", "reason"))
    assert reasons[negative.id] == "negative stock"
    assert reasons[empty_selling.id] == "zero stock but selling"


def test_a_fast_mover_outranks_a_slow_one(settings):
    settings.FLAGGED_PRODUCTS_PER_OUTLET = 1
    shop = h.outlet()
    items = h.products(10)
    h.stock(shop, items)
    fast = items[7]
    for days_ago in range(1, 29):
        h.sale(shop, fast, DAY - datetime.timedelta(days=days_ago), quantity=6)
    generate_daily_products(DAY)
    assert flagged_today(shop) == [fast.id]
    assert FlaggedProduct.objects.get(product=fast).reason == "fast mover"


def test_past_discrepancies_raise_a_product_above_its_peers(settings):
    settings.FLAGGED_PRODUCTS_PER_OUTLET = 1
    shop = h.outlet()
    counter = h.staff(shop)
    items = h.products(6)
    h.stock(shop, items)
    # Every product was counted 30 days ago; only one of them was wrong every time.
    for item in items:
        for days_ago in (30, 40, 50):
            wrong = item == items[3]
            h.flag(
                shop,
                item,
                DAY - datetime.timedelta(days=days_ago),
                by=counter,
                expected=10,
                counted=7 if wrong else 10,
            )
    generate_daily_products(DAY)
    assert flagged_today(shop) == [items[3].id]


def test_products_flagged_in_the_last_seven_days_are_not_flagged_again():
    shop = h.outlet()
    items = h.products(25)
    h.stock(shop, items)
    recent, older = items[:10], items[10:12]
    for item in recent:
        h.flag(shop, item, DAY - datetime.timedelta(days=7))
    for item in older:
        h.flag(shop, item, DAY - datetime.timedelta(days=8))
    generate_daily_products(DAY)
    chosen = flagged_today(shop)
    assert len(chosen) == 15  # only 15 products are eligible
    assert not set(chosen) & {p.id for p in recent}
    assert {p.id for p in older} <= set(chosen)


def test_rerun_tops_up_to_twenty_and_never_duplicates():
    shop = h.outlet()
    h.stock(shop, h.products(60))
    generate_daily_products(DAY)
    first = flagged_today(shop)
    assert generate_daily_products(DAY)["flagged"] == 0
    assert flagged_today(shop) == first
    FlaggedProduct.objects.filter(product_id__in=first[:5], flag_date=DAY).delete()
    assert generate_daily_products(DAY)["flagged"] == 5
    after = flagged_today(shop)
    assert len(after) == 20 and set(first[5:]) <= set(after)


def test_the_random_component_is_the_same_for_the_same_outlet_and_day():
    shop = h.outlet()
    h.stock(shop, h.products(100))  # identical products: only the random term differs
    generate_daily_products(DAY)
    first = flagged_today(shop)
    FlaggedProduct.objects.all().delete()
    generate_daily_products(DAY)
    assert flagged_today(shop) == first
    generate_daily_products(DAY + datetime.timedelta(days=1))
    next_day = FlaggedProduct.objects.filter(flag_date=DAY + datetime.timedelta(days=1))
    assert not set(next_day.values_list("product_id", flat=True)) & set(first)


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_runs_flag_exactly_twenty_per_outlet(monkeypatch):
    """Two runs that would choose different products (each thread gets its own random term)
    meet between reading and inserting: without the outlet lock they would flag 40."""
    shops = [h.outlet(f"Shop {i}") for i in range(2)]
    items = h.products(60)
    for shop in shops:
        h.stock(shop, items)
    seeded_random = selection.random.Random
    monkeypatch.setattr(
        selection.random, "Random", lambda seed: seeded_random(f"{seed}:{threading.get_ident()}")
    )
    meet = threading.Barrier(2)
    real_load_facts = selection.load_facts

    def load_facts_then_meet(*args):
        facts = real_load_facts(*args)
        # The lock keeps the second run out, so waiting in vain is the good outcome.
        with contextlib.suppress(threading.BrokenBarrierError):
            meet.wait(timeout=1)
        return facts

    monkeypatch.setattr(selection, "load_facts", load_facts_then_meet)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            generate_daily_products(DAY)
        except BaseException as exc:  # reported below; a thread cannot fail the test itself
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    for shop in shops:
        chosen = flagged_today(shop)
        assert len(chosen) == 20 and len(set(chosen)) == 20


def test_query_count_does_not_grow_with_products():
    def run_with(count: int) -> tuple[int, int]:
        Outlet.objects.all().delete()
        shops = [h.outlet(), h.outlet()]
        items = h.products(count)
        for shop in shops:
            h.stock(shop, items[: count // 2], quantity=-1)
            h.stock(shop, items[count // 2 :])
            h.sale(shop, items[0], DAY - datetime.timedelta(days=1))
            h.flag(shop, items[-1], DAY - datetime.timedelta(days=30), by=h.staff(shop))
        with CaptureQueriesContext(connection) as ctx:
            flagged = generate_daily_products(DAY)["flagged"]
        return len(ctx.captured_queries), flagged

    small, large = run_with(40), run_with(400)
    assert small[1] == large[1] == 40
    assert small[0] == large[0]
