"""Demo data at realistic scale for `manage.py seed_demo` (deterministic for a seed and a day).

What it makes, relative to today (history ends yesterday, so today is left for the jobs):

* outlets named after New Zealand towns;
* products with a long tail of popularity (a few fast movers, many slow ones), a few
  expensive items, and cost at 40-75 % of price;
* stock at every outlet for about 85 % of products, mostly positive, some zero, some negative;
* daily sales per outlet and product drawn by popularity;
* staff at each outlet, some far keener counters than others;
* past flags, 20 per outlet and day: most counted (about a quarter with a discrepancy), some
  skipped, yesterday's partly still pending.

Rows go in with bulk_create in batches, one stage at a time, so memory stays flat.
"""

from __future__ import annotations

import dataclasses
import datetime
import random
import time
from collections import Counter
from collections.abc import Callable, Iterable
from decimal import Decimal

from django.db import transaction
from django.db.models import Model
from django.utils import timezone

from flagged_products import models as m

BATCH = 5000
TOWNS = [
    "Auckland CBD",
    "Ponsonby",
    "Newmarket",
    "Albany",
    "Manukau",
    "Hamilton",
    "Tauranga",
    "Rotorua",
    "Napier",
    "New Plymouth",
    "Palmerston North",
    "Wellington",
    "Lower Hutt",
    "Nelson",
    "Christchurch",
    "Riccarton",
    "Timaru",
    "Dunedin",
    "Queenstown",
    "Invercargill",
]
CATEGORIES = {  # category -> typical price in dollars
    "Beverages": 4,
    "Snacks": 3,
    "Confectionery": 2,
    "Household": 8,
    "Personal care": 9,
    "Stationery": 5,
    "Pet": 12,
    "Hardware": 25,
    "Toys": 20,
    "Outdoor": 40,
    "Accessories": 30,
    "Electronics": 90,
}
BRANDS = ["Kiwi Co", "Tui", "Harbour", "Southern", "Pohutukawa", "Kauri", "Aoraki", "Totara"]
NOUNS = ["Classic", "Original", "Deluxe", "Lite", "Family", "Travel", "Pro", "Mini", "Max"]
FIRST = [
    "Aroha",
    "Ben",
    "Chloe",
    "Daniel",
    "Emma",
    "Finn",
    "Grace",
    "Hemi",
    "Isla",
    "Jack",
    "Kiri",
    "Liam",
    "Mia",
    "Noah",
    "Olivia",
]
LAST = [
    "Smith",
    "Wilson",
    "Ngata",
    "Brown",
    "Taylor",
    "Singh",
    "Patel",
    "Walker",
    "Clarke",
    "Tane",
    "Young",
    "King",
    "Chen",
    "Li",
]


@dataclasses.dataclass(frozen=True)
class SeedOptions:
    outlets: int = 20
    products: int = 8000
    staff: int = 150
    days: int = 90
    seed: int = 42
    today: datetime.date | None = None


class AlreadySeeded(Exception):
    pass


def domain_counts() -> dict[str, int]:
    return {
        "outlets": m.Outlet.objects.count(),
        "products": m.Product.objects.count(),
        "flags": m.FlaggedProduct.objects.count(),
    }


def is_seeded() -> bool:
    return m.Outlet.objects.exists() or m.Product.objects.exists()


def flush() -> None:
    """Delete every domain row, children first so each DELETE is one statement."""
    for model in (
        m.Insight,
        m.StoreStats,
        m.StaffAchievement,
        m.Achievement,
        m.LeaderboardEntry,
        m.FlaggedProduct,
        m.Sale,
        m.StockLevel,
        m.Staff,
        m.Product,
        m.Outlet,
    ):
        model.objects.all().delete()


class Seeder:
    def __init__(self, options: SeedOptions, progress: Callable[[str], None]):
        self.o = options
        self.rng = random.Random(options.seed)
        self.progress = progress
        self.today = options.today or timezone.localdate()
        self.started = time.monotonic()

    def run(self) -> dict[str, int]:
        if is_seeded():
            raise AlreadySeeded(domain_counts())
        counts = {}
        for stage in (self.outlets, self.products, self.stock, self.sales, self.staff, self.flags):
            name = stage.__name__
            with transaction.atomic():
                counts[name] = stage()
            self.progress(f"{name}: {counts[name]} rows ({time.monotonic() - self.started:.1f} s)")
        return counts

    def insert(self, model: type[Model], rows: Iterable[Model]) -> int:
        batch: list[Model] = []
        total = 0
        for row in rows:
            batch.append(row)
            if len(batch) == BATCH:
                model._default_manager.bulk_create(batch, batch_size=BATCH)
                total, batch = total + len(batch), []
        if batch:
            model._default_manager.bulk_create(batch, batch_size=BATCH)
        return total + len(batch)

    # --- stages ---------------------------------------------------------------------------

    def outlets(self) -> int:
        rows = [
            m.Outlet(code=f"OUT{i + 1:03d}", name=self.town(i), is_active=True)
            for i in range(self.o.outlets)
        ]
        count = self.insert(m.Outlet, rows)
        self.outlet_ids = list(m.Outlet.objects.order_by("code").values_list("id", flat=True))
        return count

    def town(self, i: int) -> str:
        lap, index = divmod(i, len(TOWNS))
        return TOWNS[index] + (f" {lap + 1}" if lap else "")

    def products(self) -> int:
        count = self.insert(m.Product, (self.product(i) for i in range(self.o.products)))
        self.product_ids = list(m.Product.objects.order_by("sku").values_list("id", flat=True))
        # Popularity: a long tail (Zipf-like over a shuffled rank), so a few products sell
        # every day and most sell rarely.
        ranks = list(range(1, len(self.product_ids) + 1))
        self.rng.shuffle(ranks)
        self.popularity = [1.0 / rank**1.1 for rank in ranks]
        return count

    def product(self, i: int) -> m.Product:
        rng = self.rng
        category = rng.choice(list(CATEGORIES))
        price = CATEGORIES[category] * rng.lognormvariate(0, 0.5)
        if rng.random() < 0.03:
            price = rng.uniform(300, 2000)  # the expensive items a miscount really costs
        cost = price * rng.uniform(0.4, 0.75)
        brand = rng.choice(BRANDS)
        return m.Product(
            sku=f"SKU{i + 1:06d}",
            name=f"{brand} {category} {rng.choice(NOUNS)} {i + 1}",
            brand=brand,
            category=category,
            price=Decimal(f"{price:.2f}"),
            cost=Decimal(f"{cost:.2f}"),
        )

    def stock(self) -> int:
        self.carried: dict[int, list[int]] = {}
        return self.insert(m.StockLevel, self.stock_rows())

    def stock_rows(self) -> Iterable[m.StockLevel]:
        rng, now = self.rng, timezone.now()
        for outlet_id in self.outlet_ids:
            carried = []
            for index, product_id in enumerate(self.product_ids):
                if self.popularity[index] < 0.01 and rng.random() < 0.15:
                    continue  # not every slow mover is stocked everywhere
                carried.append(index)
                yield m.StockLevel(
                    outlet_id=outlet_id,
                    product_id=product_id,
                    quantity=self.quantity(index),
                    updated_at=now,
                )
            self.carried[outlet_id] = carried

    def quantity(self, index: int) -> int:
        roll = self.rng.random()
        if roll < 0.02:
            return -self.rng.randint(1, 10)
        if roll < 0.05:
            return 0
        return int(self.popularity[index] * 400) + self.rng.randint(1, 40)

    def sales(self) -> int:
        return self.insert(m.Sale, self.sale_rows())

    def sale_rows(self) -> Iterable[m.Sale]:
        rng = self.rng
        for outlet_id in self.outlet_ids:
            carried = self.carried[outlet_id]
            weights = [self.popularity[i] for i in carried]
            lines = max(5, len(carried) // 30)
            for day in self.history_days():
                sold = Counter(rng.choices(carried, weights=weights, k=lines))
                for index, units in sorted(sold.items()):
                    yield m.Sale(
                        outlet_id=outlet_id,
                        product_id=self.product_ids[index],
                        sold_on=day,
                        quantity=units,
                    )

    def history_days(self) -> list[datetime.date]:
        return [self.today - datetime.timedelta(days=n) for n in range(self.o.days, 0, -1)]

    def staff(self) -> int:
        rows = []
        for i in range(self.o.staff):
            first, last = FIRST[i % len(FIRST)], LAST[(i // len(FIRST)) % len(LAST)]
            rows.append(
                m.Staff(
                    outlet_id=self.outlet_ids[i % len(self.outlet_ids)],
                    name=f"{first} {last}" + (f" {i + 1}" if i >= len(FIRST) * len(LAST) else ""),
                    email=f"{first}.{last}.{i + 1}@example.com".lower(),
                )
            )
        count = self.insert(m.Staff, rows)
        self.team: dict[int, list[tuple[int, float]]] = {o: [] for o in self.outlet_ids}
        for staff_id, outlet_id in m.Staff.objects.order_by("email").values_list("id", "outlet"):
            self.team[outlet_id].append((staff_id, self.rng.uniform(0.2, 3.0)))
        return count

    def flags(self) -> int:
        return self.insert(m.FlaggedProduct, self.flag_rows())

    def flag_rows(self) -> Iterable[m.FlaggedProduct]:
        yesterday = self.today - datetime.timedelta(days=1)
        for day in self.history_days():
            for outlet_id in self.outlet_ids:
                picks = self.rng.sample(self.carried[outlet_id], 20)
                for index in sorted(picks):
                    yield self.past_flag(outlet_id, index, day, day == yesterday)

    def past_flag(
        self, outlet_id: int, index: int, day: datetime.date, recent: bool
    ) -> m.FlaggedProduct:
        rng = self.rng
        expected = int(self.popularity[index] * 400) + rng.randint(-3, 40)
        flag = m.FlaggedProduct(
            outlet_id=outlet_id,
            product_id=self.product_ids[index],
            flag_date=day,
            reason="seeded history",
            score=round(rng.uniform(10, 120), 3),
            expected_quantity=expected,
        )
        roll = rng.random()
        team = self.team[outlet_id]
        if roll < (0.6 if recent else 0.88) and team:
            staff = rng.choices([s for s, _ in team], weights=[w for _, w in team])[0]
            flag.status = m.FlaggedProduct.Status.COMPLETED
            flag.completed_by_id = staff
            flag.counted_quantity = self.counted(expected)
            hour = datetime.time(rng.randint(8, 16), rng.randint(0, 59))
            flag.completed_at = timezone.make_aware(datetime.datetime.combine(day, hour))
        elif not recent:
            flag.status = m.FlaggedProduct.Status.SKIPPED
        return flag

    def counted(self, expected: int) -> int:
        if self.rng.random() < 0.75:
            return expected
        return max(0, expected + self.rng.choice([-5, -3, -2, -1, -1, 1, 1, 2]))


def seed(options: SeedOptions, progress: Callable[[str], None] = print) -> dict[str, int]:
    return Seeder(options, progress).run()
