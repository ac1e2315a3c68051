"""generate_ai_insights (flagged_products/insights.py): rule-based text without a key, and an
OpenAI-compatible endpoint (a real HTTP server on 127.0.0.1) with one."""

from __future__ import annotations

import datetime
import json
import subprocess
import sys

import openai
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from cronjobs.models import Execution
from cronjobs.supervisor.registry import registry
from cronjobs.supervisor.runner import run_task
from flagged_products.insights import generate_ai_insights
from flagged_products.models import Insight, StoreStats
from tests import flagged_helpers as h
from tests.helpers import ROOT
from tests.openai_standin import OpenAIStandIn

pytestmark = pytest.mark.django_db
TODAY = datetime.date(2026, 3, 11)


@pytest.fixture
def shop():
    """An outlet behind on its counts: half counted, 60 % exact, two negative stock lines."""
    shop = h.outlet("Ponsonby")
    person = h.staff(shop)
    widget, gadget = h.product(name="Tui Widget"), h.product(name="Kauri Gadget")
    h.stock(shop, [widget, gadget], quantity=-2)
    h.flag(shop, widget, TODAY, by=person, expected=10, counted=7)
    h.flag(shop, gadget, TODAY, by=person, expected=10, counted=9)
    StoreStats.objects.create(
        outlet=shop,
        pending=3,
        completed_today=2,
        completion_rate_7d=0.5,
        accuracy_7d=0.6,
        avg_discrepancy_7d=1.5,
    )
    return shop


@pytest.fixture
def api(settings):
    with OpenAIStandIn() as standin:
        settings.OPENAI_API_KEY = "sk-test-key"
        settings.OPENAI_BASE_URL = standin.base_url
        settings.OPENAI_MODEL = "stand-in-model"
        settings.OPENAI_TIMEOUT = 0.5
        yield standin


def test_without_a_key_rule_based_insights_name_the_problems(shop):
    result = generate_ai_insights(TODAY)
    assert result == {"written": 2, "unchanged": 0, "source": "rules"}
    insight = Insight.objects.get(outlet=shop)
    assert insight.source == "rules" and insight.model == ""
    assert insight.text.startswith("Ponsonby: 3 of today's flagged products still to count")
    assert "Only 50 % of the flags of the 7 days before today were counted" in insight.text
    assert "60 % of counts matched the system quantity (average discrepancy 1.5 units)" in (
        insight.text
    )
    assert "2 products show negative stock" in insight.text
    assert "Largest recent discrepancy: Tui Widget (expected 10, counted 7)." in insight.text
    overall = Insight.objects.get(outlet=None)
    assert overall.text.startswith("all outlets: 3 of today's flagged products")


def test_rule_based_text_for_an_outlet_on_target_says_so(shop):
    StoreStats.objects.filter(outlet=shop).update(completion_rate_7d=0.95, accuracy_7d=0.97)
    generate_ai_insights(TODAY)
    text = Insight.objects.get(outlet=shop).text
    assert "95 % of the flags of the 7 days before today were counted, on target." in text
    assert "matched the system quantity" not in text


def test_unchanged_numbers_are_not_written_again(shop):
    generate_ai_insights(TODAY)
    assert generate_ai_insights(TODAY)["unchanged"] == 2
    StoreStats.objects.filter(outlet=shop).update(pending=0)
    assert generate_ai_insights(TODAY)["written"] == 2
    assert Insight.objects.filter(outlet=shop).count() == 2
    assert Insight.objects.filter(outlet=shop).first().text.startswith("Ponsonby: 0 of today's")


def test_with_a_key_the_summary_is_sent_to_the_chat_endpoint(shop, api):
    result = generate_ai_insights(TODAY)
    assert result["written"] == 2 and result["source"] == "openai"
    insight = Insight.objects.get(outlet=shop)
    assert insight.text == api.reply
    assert (insight.source, insight.model) == ("openai", "stand-in-model")
    assert {request["model"] for request in api.requests} == {"stand-in-model"}
    sent = {s["outlet"]: s for s in (json.loads(r["messages"][1]["content"]) for r in api.requests)}
    assert set(sent) == {"Ponsonby", "all outlets"}
    assert sent["Ponsonby"]["negative_stock_products"] == 2
    assert api.headers[0]["authorization"] == "Bearer sk-test-key"


def test_an_unchanged_outlet_is_not_sent_again(shop, api):
    generate_ai_insights(TODAY)
    assert len(api.requests) == 2
    assert generate_ai_insights(TODAY)["unchanged"] == 2
    assert len(api.requests) == 2


@pytest.mark.parametrize(
    ("mode", "error"),
    [
        ("429", openai.RateLimitError),
        ("500", openai.InternalServerError),
        ("slow", openai.APITimeoutError),
    ],
)
def test_an_api_error_raises_without_the_client_retrying(shop, api, mode, error):
    api.mode = mode
    with pytest.raises(error):
        generate_ai_insights(TODAY)
    # max_retries=0: the runner, not the client, retries, so no summary is sent twice.
    sent = [request["messages"][1]["content"] for request in api.requests]
    assert 1 <= len(sent) <= 2 and len(set(sent)) == len(sent)
    assert not Insight.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_rate_limited_attempt_fails_and_the_runner_retries_it(shop, api):
    api.mode = "429"
    outcome = run_task(registry.get("generate_ai_insights"), sleep=lambda seconds: None)
    rows = list(Execution.objects.filter(run_id=outcome.run_id).order_by("attempt"))
    assert outcome.exit_code == 1
    assert [r.status for r in rows] == ["failed"] * 3
    assert all("RateLimitError" in row.error for row in rows)
    assert 3 <= len(api.requests) <= 6  # each attempt sends the two summaries at most once


def test_query_count_does_not_grow_with_flags(shop):
    def run_with(count: int) -> int:
        Insight.objects.all().delete()
        person = h.staff(shop)
        for item in h.products(count):
            h.flag(shop, item, TODAY, by=person, expected=5, counted=4)
        with CaptureQueriesContext(connection) as ctx:
            generate_ai_insights(TODAY)
        return len(ctx.captured_queries)

    assert run_with(10) == run_with(100)
    assert Insight.objects.count() == 2


def test_loading_the_jobs_does_not_import_openai():
    code = (
        "import django, sys; django.setup(); import flagged_products.jobs; "
        "print('openai' in sys.modules)"
    )
    env = {"DJANGO_SETTINGS_MODULE": "tests.settings", "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert done.stdout.strip() == "False", done.stderr
