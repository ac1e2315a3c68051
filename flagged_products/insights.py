"""generate_ai_insights: a few sentences per outlet (and one for all outlets) about its counts.

Each outlet's numbers are reduced to a compact summary (the cached StoreStats, negative stock,
the largest recent discrepancies). With OPENAI_API_KEY set, the summary goes to an
OpenAI-compatible chat-completions endpoint (OPENAI_BASE_URL, OPENAI_MODEL, OPENAI_TIMEOUT);
without one, deterministic rule-based text is written instead.

The summary's SHA-256 is stored with the insight: an outlet whose summary has not changed since
its latest insight is not sent again. An API error (429, 5xx, timeout) raises, so the attempt
fails and the runner retries it and the breaker counts it; insights already written in that
attempt stay, and their unchanged hashes keep the retry from paying for them twice.
"""

from __future__ import annotations

import datetime
import hashlib
import json
from collections import defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Any

from django.conf import settings
from django.db.models import Count, F, Max
from django.utils import timezone

from flagged_products.models import FlaggedProduct, Insight, StockLevel, StoreStats

WINDOW_DAYS = 7
TOP_DISCREPANCIES = 3
API_CONCURRENCY = 4  # requests in flight at once; modest, to stay clear of rate limits
COMPLETION_GOAL = 0.9
ACCURACY_GOAL = 0.9
SYSTEM_PROMPT = (
    "You are a retail operations analyst. From the JSON numbers of one store's stock counts, "
    "write 2 to 4 short, concrete sentences for the store manager: what stands out and what "
    "to do today. No greeting, no markdown."
)

Writer = Callable[[dict[str, Any]], str]
# An insight to rewrite: (outlet id, None for all outlets; summary; input hash).
Pending = tuple[int | None, dict[str, Any], str]


def summaries(today: datetime.date) -> dict[int | None, dict[str, Any]]:
    """outlet id (None: all outlets) -> the numbers an insight is written from."""
    negative = dict(
        StockLevel.objects.filter(quantity__lt=0)
        .values("outlet_id")
        .annotate(n=Count("id"))
        .order_by()
        .values_list("outlet_id", "n")
    )
    worst = largest_discrepancies(today)
    result: dict[int | None, dict[str, Any]] = {}
    stats = StoreStats.objects.filter(outlet__is_active=True).select_related("outlet")
    for row in stats.order_by("outlet__code"):
        result[row.outlet_id] = {
            "outlet": row.outlet.name,
            "pending_today": row.pending,
            "completed_today": row.completed_today,
            "completion_rate_7d": row.completion_rate_7d,
            "accuracy_7d": row.accuracy_7d,
            "avg_discrepancy_7d": row.avg_discrepancy_7d,
            "negative_stock_products": negative.get(row.outlet_id, 0),
            "largest_discrepancies": worst.get(row.outlet_id, []),
        }
    if result:
        result[None] = overall(list(result.values()))
    return result


def largest_discrepancies(today: datetime.date) -> dict[int, list[dict[str, Any]]]:
    rows = (
        FlaggedProduct.objects.filter(
            status=FlaggedProduct.Status.COMPLETED,
            flag_date__gt=today - datetime.timedelta(days=WINDOW_DAYS),
            flag_date__lte=today,
        )
        .exclude(counted_quantity=F("expected_quantity"))
        .values_list("outlet_id", "product__name", "expected_quantity", "counted_quantity")
        .order_by()
    )
    by_outlet: dict[int, list[tuple[int, str, int, int]]] = defaultdict(list)
    for outlet_id, name, expected, counted in rows:
        assert counted is not None  # completing a flag records its count
        by_outlet[outlet_id].append((-abs(counted - expected), name, expected, counted))
    return {
        outlet_id: [
            {"product": name, "expected": expected, "counted": counted}
            for _, name, expected, counted in sorted(items)[:TOP_DISCREPANCIES]
        ]
        for outlet_id, items in by_outlet.items()
    }


def overall(outlets: list[dict[str, Any]]) -> dict[str, Any]:
    def mean(key: str) -> float:
        total: float = sum(o[key] for o in outlets)
        return round(total / len(outlets), 4)

    lowest = min(outlets, key=lambda o: (o["completion_rate_7d"], o["outlet"]))
    return {
        "outlet": "all outlets",
        "outlets": len(outlets),
        "pending_today": sum(o["pending_today"] for o in outlets),
        "completed_today": sum(o["completed_today"] for o in outlets),
        "completion_rate_7d": mean("completion_rate_7d"),
        "accuracy_7d": mean("accuracy_7d"),
        "avg_discrepancy_7d": mean("avg_discrepancy_7d"),
        "negative_stock_products": sum(o["negative_stock_products"] for o in outlets),
        "lowest_completion_outlet": lowest["outlet"],
    }


def input_hash(summary: dict[str, Any], source: str, model: str) -> str:
    payload = json.dumps({"summary": summary, "source": source, "model": model}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


def latest_hashes() -> dict[int | None, str]:
    latest = Insight.objects.values("outlet_id").annotate(last=Max("id")).values("last")
    return dict(Insight.objects.filter(id__in=latest).values_list("outlet_id", "input_hash"))


def percent(value: float) -> str:
    return f"{value * 100:.0f} %"


def rules_text(summary: dict[str, Any]) -> str:
    """Deterministic insight from the same summary the model would see."""
    name = summary["outlet"]
    lines = [
        f"{name}: {summary['pending_today']} of today's flagged products still to count, "
        f"{summary['completed_today']} counted today."
    ]
    rate = summary["completion_rate_7d"]
    if rate < COMPLETION_GOAL:
        lines.append(
            f"Only {percent(rate)} of the flags of the 7 days before today were counted, below "
            f"the {percent(COMPLETION_GOAL)} goal: schedule the counts at the start of a shift."
        )
    else:
        lines.append(
            f"{percent(rate)} of the flags of the 7 days before today were counted, on target."
        )
    accuracy = summary["accuracy_7d"]
    if accuracy < ACCURACY_GOAL:
        lines.append(
            f"{percent(accuracy)} of counts matched the system quantity (average discrepancy "
            f"{summary['avg_discrepancy_7d']:g} units): check receiving and write-offs."
        )
    if summary["negative_stock_products"]:
        lines.append(
            f"{summary['negative_stock_products']} products show negative stock; "
            "they are flagged first."
        )
    worst = summary.get("largest_discrepancies") or []
    if worst:
        top = worst[0]
        lines.append(
            f"Largest recent discrepancy: {top['product']} "
            f"(expected {top['expected']}, counted {top['counted']})."
        )
    return " ".join(lines)


def openai_writer() -> Writer:
    """A writer calling the configured endpoint. `openai` is imported here, not at module
    level, so runjob and the rule-based path do not pay for loading it."""
    import openai

    client = openai.OpenAI(
        api_key=settings.OPENAI_API_KEY,
        base_url=settings.OPENAI_BASE_URL or None,
        timeout=settings.OPENAI_TIMEOUT,
        max_retries=0,  # the runner owns retries (and the circuit breaker counts them)
    )

    def write(summary: dict[str, Any]) -> str:
        response = client.chat.completions.create(
            model=settings.OPENAI_MODEL,
            messages=[
                {"role": "system", "content": SYSTEM_PROMPT},
                {"role": "user", "content": json.dumps(summary, sort_keys=True)},
            ],
        )
        text = (response.choices[0].message.content or "").strip() if response.choices else ""
        if not text:
            raise ValueError("the chat-completions response had no text")
        return text

    return write


def generate_ai_insights(today: datetime.date | None = None) -> dict[str, Any]:
    """Write an insight for every outlet (and all outlets) whose summary changed."""
    today = today or timezone.localdate()
    use_api = bool(settings.OPENAI_API_KEY)
    source = Insight.Source.OPENAI if use_api else Insight.Source.RULES
    model = settings.OPENAI_MODEL if use_api else ""
    previous = latest_hashes()
    current = summaries(today)
    todo: list[Pending] = []
    for outlet_id, summary in current.items():
        digest = input_hash(summary, source, model)
        if previous.get(outlet_id) != digest:
            todo.append((outlet_id, summary, digest))
    if todo:
        write = openai_writer() if use_api else rules_text
        workers = API_CONCURRENCY if use_api else 1
        for (outlet_id, _, digest), text in written_texts(write, todo, workers):
            Insight.objects.create(
                outlet_id=outlet_id, text=text, source=source, model=model, input_hash=digest
            )
    return {"written": len(todo), "unchanged": len(current) - len(todo), "source": source}


def written_texts(
    write: Writer, todo: list[Pending], workers: int
) -> Iterator[tuple[Pending, str]]:
    """(item, text) as each text is ready. API calls overlap (an answer takes seconds, so one
    at a time would make the hour's run as slow as the sum of them); rows are written by the
    caller in this thread. The first failure cancels what has not started and is raised."""
    if workers == 1:
        for item in todo:
            yield item, write(item[1])
        return
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {pool.submit(write, item[1]): item for item in todo}
        try:
            for future in as_completed(futures):
                yield futures[future], future.result()
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise
