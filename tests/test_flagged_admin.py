"""flagged_products/admin.py: read-only pages with search for every domain table."""

from __future__ import annotations

import datetime

import pytest
from django.urls import reverse

from flagged_products import models
from tests import flagged_helpers as h

pytestmark = pytest.mark.django_db
PAGES = [
    (models.Outlet, "Ponsonby"),
    (models.Product, "Widget"),
    (models.StockLevel, "Widget"),
    (models.Sale, "Widget"),
    (models.Staff, "Aroha"),
    (models.FlaggedProduct, "Widget"),
    (models.LeaderboardEntry, "Aroha"),
    (models.Achievement, "century"),
    (models.StaffAchievement, "Aroha"),
    (models.StoreStats, "Ponsonby"),
    (models.Insight, "recount"),
]


@pytest.fixture
def data():
    shop = h.outlet("Ponsonby")
    person = h.staff(shop, "Aroha")
    widget = h.product(name="Tui Widget")
    h.stock(shop, [widget])
    day = datetime.date(2026, 3, 11)
    h.sale(shop, widget, day)
    flag = h.flag(shop, widget, day, by=person)
    badge = models.Achievement.objects.create(code="century", name="Century", description="x")
    models.StaffAchievement.objects.create(staff=person, achievement=badge)
    models.LeaderboardEntry.objects.create(
        period="daily", staff=person, rank=1, points=15, counts=1, accurate_counts=1, accuracy=1
    )
    models.StoreStats.objects.create(outlet=shop)
    models.Insight.objects.create(
        outlet=shop, text="Please recount", source="rules", input_hash="x"
    )
    return flag


def url(model, view: str, *args) -> str:
    return reverse(f"admin:flagged_products_{model._meta.model_name}_{view}", args=args)


@pytest.mark.parametrize(("model", "term"), PAGES, ids=[m.__name__ for m, _ in PAGES])
def test_every_table_has_a_searchable_list_without_add_or_delete(admin_client, data, model, term):
    response = admin_client.get(url(model, "changelist"), {"q": term})
    assert response.status_code == 200
    assert response.context["cl"].result_count == 1
    assert url(model, "add") not in response.content.decode()
    assert 'name="action"' not in response.content.decode()  # no delete action


def test_a_flag_opens_read_only_and_cannot_be_changed(admin_client, data):
    page = admin_client.get(url(models.FlaggedProduct, "change", data.pk))
    assert page.status_code == 200
    assert 'type="submit" value="Save"' not in page.content.decode()
    response = admin_client.post(url(models.FlaggedProduct, "change", data.pk), {"reason": "x"})
    assert response.status_code == 403
    data.refresh_from_db()
    assert data.reason == "test"
