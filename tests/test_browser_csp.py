"""The Content-Security-Policy (flagged_cron_project/csp.py) in a real browser: every page of the
control room, the dashboard with its charts and its refresh, and the task list's "Running now"
panel work with no violation reported by Chromium (no inline script or style anywhere)."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.urls import reverse

from cronjobs import tokens
from cronjobs.models import Execution, Task
from tests.helpers import make_alert
from tests.test_browser_admin import PASSWORD, operator, page  # noqa: F401  # fixtures

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# Chromium fires `securitypolicyviolation` at the document for each blocked script, style,
# image or form; the init script runs before any page script and is not subject to the policy.
RECORD_VIOLATIONS = """
window.__violations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__violations.push(`${event.violatedDirective} ${event.blockedURI} ` +
    `${event.sourceFile}:${event.lineNumber} ${event.sample}`);
});
"""


def control_room_urls() -> list[str]:
    """Every registered model's list, add and first object page, the dashboard, the index,
    the import and export pages of the history."""
    urls = ["/admin/", reverse("cronjobs-dashboard"), "/admin/cronjobs/execution/import/"]
    urls.append("/admin/cronjobs/execution/export/")
    for model in admin.site._registry:
        base = f"/admin/{model._meta.app_label}/{model._meta.model_name}/"
        urls += [base, f"{base}add/"]
        first = model._default_manager.order_by("pk").first()
        if first is not None:
            urls.append(f"{base}{first.pk}/change/")
    return urls


def test_no_page_of_the_control_room_violates_the_policy(page, operator, live_server):  # noqa: F811
    make_alert(Task.objects.filter(alerts=None).first(), message="=1+2 <b>bold</b>")
    tokens.create_token("grafana", read_only=True, from_command_line=True)
    page.context.add_init_script(RECORD_VIOLATIONS)
    messages: list[str] = []
    page.on("console", lambda m: messages.append(m.text) if "Security Policy" in m.text else None)
    page.goto("/admin/login/")
    page.fill("#id_username", "operator")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url("**/admin/")
    found, shown = {}, 0
    for url in control_room_urls():
        response = page.goto(url)
        assert response is not None and response.status in (200, 403), url  # 403: no adding
        shown += response.status == 200
        policy = response.header_value("content-security-policy") or ""
        assert "default-src 'self'" in policy, url
        page.wait_for_load_state("networkidle")
        violations = page.evaluate("window.__violations")
        if violations:
            found[url] = violations
    assert found == {}
    assert messages == []
    assert shown > 30
    assert Execution.objects.exists()  # the pages showed real history


def test_the_dashboard_refreshes_and_draws_its_charts_under_the_policy(
    page,  # noqa: F811
    operator,  # noqa: F811
):
    page.context.add_init_script(RECORD_VIOLATIONS)
    page.goto("/admin/login/")
    page.fill("#id_username", "operator")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url("**/admin/")
    page.goto(reverse("cronjobs-dashboard"))
    charts = page.locator("#fc-chart-success figure svg")
    assert charts.count() > 0 and charts.first.is_visible()
    # dashboard.js fetches ?partial=1 and swaps the content in: run it now rather than wait.
    with page.expect_response(lambda r: "partial=1" in r.url) as refreshed:
        page.evaluate("document.dispatchEvent(new Event('visibilitychange'))")
    assert refreshed.value.status == 200
    assert page.evaluate("window.__violations") == []


def test_the_date_filter_and_the_export_form_work_without_inline_script(
    page,  # noqa: F811
    operator,  # noqa: F811
):
    """The two library templates rewritten for the policy (templates/rangefilter/,
    templates/admin/import_export/export.html) still do their job."""
    page.context.add_init_script(RECORD_VIOLATIONS)
    page.goto("/admin/login/")
    page.fill("#id_username", "operator")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url("**/admin/")
    page.goto("/admin/cronjobs/execution/?status__exact=failed")
    page.fill("input[name=started_at__range__gte]", "2020-01-01")
    page.fill("input[name=started_at__range__lte]", "2099-12-31")
    page.click(".admindatefilter input[type=submit]")
    page.wait_for_url("**started_at__range__gte=2020-01-01**")
    assert "status__exact=failed" in page.url  # the other filter is kept
    page.goto("/admin/cronjobs/execution/export/")
    boxes = page.locator("input.selectable-field-export-row, .selectable-field-export-row input")
    page.uncheck("input.select-toggle")
    assert boxes.count() > 3
    assert not any(boxes.nth(i).is_checked() for i in range(boxes.count()))
    page.check("input.select-toggle")
    assert all(boxes.nth(i).is_checked() for i in range(boxes.count()))
    assert page.evaluate("window.__violations") == []
