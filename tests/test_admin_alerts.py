"""Alerts in the admin: filters, acknowledge and resolve actions, export, permissions."""

from __future__ import annotations

import csv
import io

import pytest
from django.contrib.admin.models import LogEntry
from django.urls import reverse

from cronjobs.models import Alert
from tests.helpers import make_alert, make_task, make_user

pytestmark = pytest.mark.django_db

LIST = reverse("admin:cronjobs_alert_changelist")
EXPORT = reverse("admin:cronjobs_alert_export")


def shown(response) -> set[int]:
    return {row.pk for row in response.context["cl"].result_list}


def action(client, name: str, *alerts: Alert):
    return client.post(
        LIST, {"action": name, "_selected_action": [a.pk for a in alerts]}, follow=True
    )


@pytest.fixture
def alerts():
    stock, stats = make_task("stock_sync"), make_task("store_stats")
    return {
        "failed": make_alert(stock, "failed", severity="critical"),
        "slow": make_alert(stock, "slow", state="acknowledged"),
        "late": make_alert(stats, "late", state="resolved"),
    }


def test_list_filters_by_state_kind_and_task(admin_client, alerts):
    page = admin_client.get(LIST)
    assert "failed on stock_sync" in page.content.decode()
    assert shown(admin_client.get(LIST, {"state__exact": "open"})) == {alerts["failed"].pk}
    assert shown(admin_client.get(LIST, {"kind__exact": "late"})) == {alerts["late"].pk}
    stats_id = alerts["late"].task_id
    assert shown(admin_client.get(LIST, {"task__id__exact": stats_id})) == {alerts["late"].pk}


def test_acknowledge_records_who_and_keeps_the_alert_unresolved(admin_client, admin_user, alerts):
    response = action(admin_client, "acknowledge", alerts["failed"], alerts["late"])

    # Only the open one: the other was acknowledged already.
    assert "Acknowledged the failed alert of stock_sync." in response.content.decode()
    acked = Alert.objects.get(pk=alerts["failed"].pk)
    assert acked.state == "acknowledged" and acked.acknowledged_by == admin_user
    assert acked.open_key is not None  # a repeat still de-duplicates into it
    assert LogEntry.objects.filter(object_id=str(acked.pk), change_message="Acknowledged").exists()


def test_resolve_closes_open_and_acknowledged_alerts(admin_client, alerts):
    response = action(admin_client, "resolve", *alerts.values())

    page = response.content.decode()
    assert "Resolved the " in page and "failed alert of stock_sync" in page
    assert "slow alert of stock_sync" in page
    for name in ("failed", "slow"):
        resolved = Alert.objects.get(pk=alerts[name].pk)
        assert resolved.state == "resolved" and resolved.resolved_at and resolved.open_key is None


def test_export_lists_the_filtered_alerts(admin_client, admin_user, alerts):
    action(admin_client, "acknowledge", alerts["failed"])
    form = admin_client.get(EXPORT).context["form"]
    formats = {title: value for value, title in form.fields["format"].choices}
    data = {name: "on" for name, f in form.fields.items() if getattr(f, "is_selectable_field", 0)}

    response = admin_client.post(
        EXPORT + "?task__id__exact=" + str(alerts["failed"].task_id),
        {**data, "format": formats["csv"]},
    )

    body = b"".join(response.streaming_content).decode()
    rows = {r["kind"]: r for r in csv.DictReader(io.StringIO(body))}
    assert set(rows) == {"failed", "slow"}
    assert rows["failed"]["task"] == "stock_sync"
    assert rows["failed"]["acknowledged_by"] == admin_user.username
    assert rows["slow"]["state"] == "acknowledged"


def test_a_viewer_cannot_acknowledge_or_resolve_and_others_cannot_even_look(client, alerts):
    client.force_login(make_user("watcher", "view_alert"))
    assert client.get(LIST).status_code == 200
    action(client, "resolve", alerts["failed"])
    action(client, "acknowledge", alerts["failed"])
    assert Alert.objects.get(pk=alerts["failed"].pk).state == "open"

    client.force_login(make_user("outsider", "view_task"))
    assert client.get(LIST).status_code == 403
    assert client.get(EXPORT).status_code == 403


def test_an_alert_page_is_read_only(admin_client, alerts):
    url = reverse("admin:cronjobs_alert_change", args=[alerts["failed"].pk])
    page = admin_client.get(url).content.decode()
    assert "failed on stock_sync" in page and 'name="_save"' not in page
    admin_client.post(url, {"message": "edited"})
    assert Alert.objects.get(pk=alerts["failed"].pk).message == "failed on stock_sync"
