"""The retail domain the five jobs work on (docs/domain.md): outlets, products, stock and
sales, staff, the daily flagged products staff count, and what the jobs derive from the counts
(leaderboards, badges, store statistics, AI insights).

The jobs read these tables set-wise (cronjobs never query per product), so the indexes below
follow the jobs' filters: flags by outlet and date, completed counts by date, sales by outlet
and day."""

from __future__ import annotations

from django.db import models
from django.utils import timezone


class Outlet(models.Model):
    code = models.CharField(max_length=20, unique=True)
    name = models.CharField(max_length=100)
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["code"]

    def __str__(self) -> str:
        return self.name


class Product(models.Model):
    sku = models.CharField(max_length=32, unique=True)
    name = models.CharField(max_length=200)
    brand = models.CharField(max_length=100)
    category = models.CharField(max_length=100)
    price = models.DecimalField(max_digits=10, decimal_places=2)
    cost = models.DecimalField(max_digits=10, decimal_places=2)
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["sku"]

    def __str__(self) -> str:
        return f"{self.sku} {self.name}"


class StockLevel(models.Model):
    """What the system believes is on the shelf. May be negative: sales were recorded for
    stock that was never received, which is exactly what a count should catch."""

    outlet = models.ForeignKey(Outlet, on_delete=models.CASCADE, related_name="stock")
    product = models.ForeignKey(Product, on_delete=models.CASCADE, related_name="stock")
    quantity = models.IntegerField()
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["outlet", "product"], name="stock_outlet_product"),
        ]
        indexes = [
            # Negative stock per outlet (insights) without scanning every stock row.
            models.Index(fields=["quantity", "outlet"], name="stock_quantity_outlet"),
            # The generator reads one outlet's (product, quantity) pairs from the index alone.
            models.Index(fields=["outlet", "product", "quantity"], name="stock_outlet_covering"),
        ]

    def __str__(self) -> str:
        return f"{self.outlet_id}/{self.product_id}: {self.quantity}"


class Sale(models.Model):
    """Units of one product sold at one outlet on one day (daily totals, not receipts)."""

    outlet = models.ForeignKey(Outlet, on_delete=models.CASCADE, related_name="sales")
    product = models.ForeignKey(Product, on_delete=models.CASCADE, related_name="sales")
    sold_on = models.DateField()
    quantity = models.PositiveIntegerField()

    class Meta:
        indexes = [
            # Velocity: one outlet's sales over the last weeks, summed per product, read from
            # the index alone.
            models.Index(
                fields=["outlet", "sold_on", "product", "quantity"], name="sale_outlet_day_covering"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.sold_on} {self.outlet_id}/{self.product_id} x{self.quantity}"


class Staff(models.Model):
    outlet = models.ForeignKey(Outlet, on_delete=models.CASCADE, related_name="staff")
    name = models.CharField(max_length=100)
    email = models.EmailField(unique=True)
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "staff"

    def __str__(self) -> str:
        return self.name


class FlaggedProduct(models.Model):
    """One product an outlet's staff are asked to count on one day. Unique per outlet, product
    and day, so two generators racing each other cannot flag a product twice."""

    class Status(models.TextChoices):
        PENDING = "pending"
        COMPLETED = "completed"
        SKIPPED = "skipped"

    outlet = models.ForeignKey(Outlet, on_delete=models.CASCADE, related_name="flags")
    product = models.ForeignKey(Product, on_delete=models.CASCADE, related_name="flags")
    flag_date = models.DateField()
    reason = models.CharField(max_length=100)
    score = models.FloatField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    expected_quantity = models.IntegerField()
    counted_quantity = models.IntegerField(null=True, blank=True)
    completed_by = models.ForeignKey(
        Staff, null=True, blank=True, on_delete=models.SET_NULL, related_name="counts"
    )
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-flag_date", "outlet", "-score"]
        constraints = [
            models.UniqueConstraint(
                fields=["outlet", "product", "flag_date"], name="flag_outlet_product_day"
            ),
        ]
        indexes = [
            # The generator's per-outlet history and the store stats' per-outlet window.
            models.Index(fields=["outlet", "flag_date"], name="flag_outlet_day"),
            # The generator's per-product history at one outlet, read from the index alone.
            models.Index(
                fields=[
                    "outlet",
                    "product",
                    "flag_date",
                    "status",
                    "counted_quantity",
                    "expected_quantity",
                ],
                name="flag_outlet_history",
            ),
            # Store stats and insights: the last 7 days of every outlet, as one range.
            models.Index(fields=["flag_date", "outlet"], name="flag_day_outlet"),
            # Leaderboard, badges: completed counts in a date window, grouped by staff, and
            # whether each was exact, answered from the index alone (no row lookups).
            models.Index(
                fields=[
                    "status",
                    "flag_date",
                    "completed_by",
                    "counted_quantity",
                    "expected_quantity",
                ],
                name="flag_status_day_counts",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.flag_date} {self.outlet_id}/{self.product_id} {self.status}"

    @property
    def discrepancy(self) -> int | None:
        if self.counted_quantity is None:
            return None
        return self.counted_quantity - self.expected_quantity


class LeaderboardEntry(models.Model):
    class Period(models.TextChoices):
        DAILY = "daily"
        WEEKLY = "weekly"
        MONTHLY = "monthly"
        ALL_TIME = "all_time", "all time"

    period = models.CharField(max_length=10, choices=Period.choices)
    period_start = models.DateField(null=True, blank=True, help_text="Empty for all time")
    staff = models.ForeignKey(Staff, on_delete=models.CASCADE, related_name="leaderboard")
    rank = models.PositiveIntegerField()
    points = models.PositiveIntegerField()
    counts = models.PositiveIntegerField()
    accurate_counts = models.PositiveIntegerField()
    accuracy = models.FloatField(help_text="Share of counts that matched the expected quantity")
    streak = models.PositiveIntegerField(default=0, help_text="Consecutive days with a count")
    as_of = models.DateField(null=True, blank=True, help_text="The business date the board is for")
    refreshed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["period", "rank", "staff__name"]
        verbose_name_plural = "leaderboard entries"
        constraints = [
            models.UniqueConstraint(fields=["period", "staff"], name="leaderboard_period_staff"),
        ]

    def __str__(self) -> str:
        return f"{self.period} #{self.rank} {self.staff_id}"


class Achievement(models.Model):
    code = models.CharField(max_length=40, unique=True)
    name = models.CharField(max_length=100)
    description = models.CharField(max_length=255)

    class Meta:
        ordering = ["code"]

    def __str__(self) -> str:
        return self.name


class StaffAchievement(models.Model):
    """A badge awarded to one staff member; the unique constraint makes awarding twice
    impossible even when two runs of check_achievements overlap."""

    staff = models.ForeignKey(Staff, on_delete=models.CASCADE, related_name="achievements")
    achievement = models.ForeignKey(Achievement, on_delete=models.CASCADE, related_name="awards")
    awarded_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-awarded_at"]
        constraints = [
            models.UniqueConstraint(fields=["staff", "achievement"], name="award_staff_badge"),
        ]

    def __str__(self) -> str:
        return f"{self.staff_id} {self.achievement_id}"


class StoreStats(models.Model):
    outlet = models.OneToOneField(Outlet, on_delete=models.CASCADE, related_name="stats")
    pending = models.PositiveIntegerField(default=0, help_text="Today's flags not yet counted")
    completed_today = models.PositiveIntegerField(default=0)
    completion_rate_7d = models.FloatField(
        default=0.0, help_text="Completed / flagged, 7 closed days"
    )
    accuracy_7d = models.FloatField(
        default=0.0, help_text="Exact counts / completed, 7 closed days"
    )
    avg_discrepancy_7d = models.FloatField(default=0.0, help_text="Mean |counted - expected|")
    refreshed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["outlet__code"]
        verbose_name_plural = "store stats"

    def __str__(self) -> str:
        return f"stats {self.outlet_id}"


class Insight(models.Model):
    class Source(models.TextChoices):
        OPENAI = "openai", "OpenAI-compatible API"
        RULES = "rules", "rule-based"

    outlet = models.ForeignKey(
        Outlet,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="insights",
        help_text="Empty for the all-outlets insight",
    )
    text = models.TextField()
    source = models.CharField(max_length=10, choices=Source.choices)
    model = models.CharField(max_length=100, blank=True)
    generated_at = models.DateTimeField(default=timezone.now)
    input_hash = models.CharField(max_length=64, help_text="SHA-256 of the summary sent")

    class Meta:
        ordering = ["-generated_at", "-id"]
        indexes = [models.Index(fields=["outlet", "generated_at"], name="insight_outlet_at")]

    def __str__(self) -> str:
        return f"insight {self.outlet_id or 'all'} {self.generated_at:%Y-%m-%d %H:%M}"
