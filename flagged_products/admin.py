"""Read-only admin pages for the domain: the jobs and seed_demo write these tables, staff look.
Large tables (stock, sales, flags) skip the full COUNT(*) so their pages stay fast."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import Model
from django.http import HttpRequest

from flagged_products import models


class ReadOnlyAdmin(admin.ModelAdmin[Model]):
    show_full_result_count = False
    list_per_page = 50

    def has_add_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False


@admin.register(models.Outlet)
class OutletAdmin(ReadOnlyAdmin):
    list_display = ["code", "name", "is_active"]
    list_filter = ["is_active"]
    search_fields = ["code", "name"]


@admin.register(models.Product)
class ProductAdmin(ReadOnlyAdmin):
    list_display = ["sku", "name", "brand", "category", "price", "cost", "is_active"]
    list_filter = ["category", "is_active"]
    search_fields = ["sku", "name", "brand"]


@admin.register(models.StockLevel)
class StockLevelAdmin(ReadOnlyAdmin):
    list_display = ["outlet", "product", "quantity", "updated_at"]
    list_filter = ["outlet"]
    list_select_related = ["outlet", "product"]
    search_fields = ["product__sku", "product__name"]


@admin.register(models.Sale)
class SaleAdmin(ReadOnlyAdmin):
    list_display = ["sold_on", "outlet", "product", "quantity"]
    list_filter = ["outlet"]
    list_select_related = ["outlet", "product"]
    search_fields = ["product__sku", "product__name"]
    date_hierarchy = "sold_on"


@admin.register(models.Staff)
class StaffAdmin(ReadOnlyAdmin):
    list_display = ["name", "email", "outlet", "is_active"]
    list_filter = ["outlet", "is_active"]
    list_select_related = ["outlet"]
    search_fields = ["name", "email"]


@admin.register(models.FlaggedProduct)
class FlaggedProductAdmin(ReadOnlyAdmin):
    list_display = [
        "flag_date",
        "outlet",
        "product",
        "reason",
        "score",
        "status",
        "expected_quantity",
        "counted_quantity",
        "completed_by",
        "completed_at",
    ]
    list_filter = ["status", "outlet", "reason"]
    list_select_related = ["outlet", "product", "completed_by"]
    search_fields = ["product__sku", "product__name", "completed_by__name"]
    date_hierarchy = "flag_date"


@admin.register(models.LeaderboardEntry)
class LeaderboardEntryAdmin(ReadOnlyAdmin):
    list_display = ["period", "as_of", "rank", "staff", "points", "counts", "accuracy", "streak"]
    list_filter = ["period"]
    list_select_related = ["staff"]
    search_fields = ["staff__name"]


@admin.register(models.Achievement)
class AchievementAdmin(ReadOnlyAdmin):
    list_display = ["code", "name", "description"]
    search_fields = ["code", "name"]


@admin.register(models.StaffAchievement)
class StaffAchievementAdmin(ReadOnlyAdmin):
    list_display = ["staff", "achievement", "awarded_at"]
    list_filter = ["achievement"]
    list_select_related = ["staff", "achievement"]
    search_fields = ["staff__name", "achievement__name"]


@admin.register(models.StoreStats)
class StoreStatsAdmin(ReadOnlyAdmin):
    list_display = [
        "outlet",
        "pending",
        "completed_today",
        "completion_rate_7d",
        "accuracy_7d",
        "avg_discrepancy_7d",
        "refreshed_at",
    ]
    list_select_related = ["outlet"]
    search_fields = ["outlet__name", "outlet__code"]


@admin.register(models.Insight)
class InsightAdmin(ReadOnlyAdmin):
    list_display = ["generated_at", "outlet", "source", "model", "text"]
    list_filter = ["source", "outlet"]
    list_select_related = ["outlet"]
    search_fields = ["text", "outlet__name"]
    # No date_hierarchy on this datetime: on MySQL it needs CONVERT_TZ, which returns NULL
    # unless the server's time zone tables are loaded. The date fields elsewhere are safe.
