"""The JSON API (docs/api.md). Views are thin: `authorize` decides who may
call and hands the view its caller (a cronjobs.actions.Actor), `parse_params` turns the query
string into checked values, cronjobs.views.payloads builds the responses.

Who may call: a staff session, or `Authorization: Bearer <token>` (cronjobs.tokens). Every
request, read or write, is decided by cronjobs.actions' one permission rule (`Actor.require`):
reads need the view permission of the admin page showing the same rows, writes the change
permission, a token acts with its creator's permissions, and writes are rate-limited. Token
requests carry no cookies, so they are exempt from CSRF; session requests are CSRF-checked
like any Django form post.
"""

from __future__ import annotations

import functools
import json
import logging
import re
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Concatenate, ParamSpec, TypeAlias

from django.core.exceptions import SuspiciousOperation
from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.middleware.csrf import CsrfViewMiddleware
from django.urls import Resolver404, path, resolve
from django.utils import timezone
from django.views import defaults
from django.views.decorators.csrf import csrf_exempt

from cronjobs import actions, tokens, windows
from cronjobs.models import MaintenanceWindow, Task
from cronjobs.views import payloads

log = logging.getLogger(__name__)

P = ParamSpec("P")
# A JSON object, as a view under `authorize` answers.
Body: TypeAlias = Mapping[str, object]
# A view under `authorize`: the request, the caller, then the URL's arguments; it answers a JSON
# object, or a response of its own (a status other than 200, the Prometheus text).
ApiView: TypeAlias = Callable[Concatenate[HttpRequest, actions.Actor, P], Body | HttpResponse]


class ApiError(Exception):
    def __init__(self, status: int, message: str):
        self.status, self.message = status, message
        super().__init__(message)


def error(status: int, message: str) -> JsonResponse:
    response = JsonResponse({"error": message}, status=status)
    if status == 401:
        response["WWW-Authenticate"] = 'Bearer realm="flagged-cron"'
    return response


def _bearer(request: HttpRequest) -> str | None:
    """The token from `Authorization: Bearer <secret>`, "" for a malformed header, None when
    there is no header at all."""
    header = request.headers.get("Authorization")
    if header is None:
        return None
    scheme, _, secret = header.strip().partition(" ")
    return secret.strip() if scheme.lower() == "bearer" else ""


def check_access(request: HttpRequest, permission: str) -> actions.Actor:
    """The caller, allowed `permission`. Raise ApiError 401 (who are you?), or ActionError 403
    (not allowed to do that) or 429 (too many writes)."""
    actor = _caller(request)
    if actor.token is None:
        _check_csrf(request)  # first: a forged request must not use up the write quota
    actor.require(permission)
    return actor


def _caller(request: HttpRequest) -> actions.Actor:
    """The bearer token's actor, or the staff session's."""
    secret = _bearer(request)
    if secret is not None:
        token = tokens.authenticate(secret)
        if token is None:
            raise ApiError(401, "invalid or revoked API token")
        return actions.Actor("api", token=token)
    user = request.user
    if not user.is_authenticated:
        raise ApiError(401, "authentication required: a staff session or a bearer token")
    if not (user.is_active and user.is_staff):
        raise ApiError(403, "staff access required")
    return actions.Actor("api", user=user)


def _no_response(request: HttpRequest) -> HttpResponse:
    """Stands in for a view in the CSRF check; it is never called."""
    return HttpResponse(status=204)


def _check_csrf(request: HttpRequest) -> None:
    """The view is csrf_exempt for token callers; session callers get Django's own check."""
    middleware = CsrfViewMiddleware(_no_response)
    middleware.process_request(request)
    if middleware.process_view(request, _no_response, (), {}) is not None:
        raise ApiError(403, "CSRF check failed: send the csrftoken cookie and X-CSRFToken")


def authorize(
    method: str = "GET", write: bool = False, permission: str | None = None
) -> Callable[[ApiView[P]], Callable[Concatenate[HttpRequest, P], HttpResponse]]:
    """Wrap a view returning a dict: method, access and errors become JSON responses, and the
    view gets the caller as its second argument. `permission` is what the caller needs
    (cronjobs.actions.Actor.require); by default `change_task` for a write and `view_task` for
    a read. HEAD is served wherever GET is; `method` may name several, e.g. "POST, DELETE"."""
    needed = permission or (actions.TASK_PERMISSION if write else actions.VIEW_TASK_PERMISSION)
    methods = tuple(name.strip() for name in method.split(","))
    allowed = (*methods, "HEAD") if "GET" in methods else methods

    def decorate(view: ApiView[P]) -> Callable[Concatenate[HttpRequest, P], HttpResponse]:
        @csrf_exempt
        @functools.wraps(view)
        def wrapper(request: HttpRequest, /, *args: P.args, **kwargs: P.kwargs) -> HttpResponse:
            def answer(actor: actions.Actor) -> Body | HttpResponse:
                return view(request, actor, *args, **kwargs)

            response = _respond(request, answer, needed, allowed)
            if request.method == "HEAD":
                response["Content-Length"] = str(len(response.content))
                response.content = b""
            return response

        return wrapper

    return decorate


def _respond(
    request: HttpRequest,
    answer: Callable[[actions.Actor], Body | HttpResponse],
    permission: str,
    allowed: tuple[str, ...],
) -> HttpResponse:
    try:
        if request.method not in allowed:
            usable = ", ".join(name for name in allowed if name != "HEAD")
            response = error(405, f"method {request.method} not allowed; use {usable}")
            response["Allow"] = ", ".join(allowed)
            return response
        check_duplicates(request)
        result = answer(check_access(request, permission))
    except actions.Throttled as exc:
        response = error(exc.status, exc.message)
        response["Retry-After"] = str(exc.retry_after)
        return response
    except (ApiError, actions.ActionError) as exc:
        return error(exc.status, exc.message)
    except SuspiciousOperation as exc:  # e.g. more than DATA_UPLOAD_MAX_NUMBER_FIELDS
        return error(400, f"bad request: {exc}")
    except DatabaseError:
        log.exception("API request failed on the database")
        return error(503, "database unavailable, try again shortly")
    if isinstance(result, HttpResponse):
        return result
    return JsonResponse(result, json_dumps_params={"ensure_ascii": False})


def check_duplicates(request: HttpRequest) -> None:
    """A parameter given twice is ambiguous (which one wins depends on the reader): 400."""
    for name, values in request.GET.lists():
        if len(values) > 1:
            raise ApiError(400, f"parameter {name!r} given {len(values)} times; give it once")


def parse_params(request: HttpRequest, ranges: dict[str, tuple[int, int, int]]) -> dict[str, int]:
    """Whole-number parameters, each with (minimum, maximum, default). Unknown parameters and
    values out of range are a 400 naming the parameter."""
    unknown = sorted(set(request.GET) - set(ranges))
    if unknown:
        allowed = ", ".join(ranges) or "none"
        raise ApiError(400, f"unknown parameter {unknown[0]!r} (allowed: {allowed})")
    values = {}
    for name, (low, high, default) in ranges.items():
        raw = request.GET.get(name)
        values[name] = default if raw is None else _whole_number(name, raw, low, high)
    return values


ASCII_DIGITS = re.compile(r"-?[0-9]+")
# No parameter's range needs more characters than this, leading zeros allowed.
LONGEST_NUMBER = 40


def _whole_number(name: str, raw: str, low: int, high: int) -> int:
    """ASCII digits only: int() would also take "+5", " 5", "1_0" and other scripts' digits.
    A number longer than the limits is out of range before int() reads it (Python refuses to
    convert more than 4,300 digits, and reading a long one costs time)."""
    if not ASCII_DIGITS.fullmatch(raw):
        raise ApiError(400, f"{name} must be a whole number from {low} to {high} (digits 0-9)")
    if len(raw) > LONGEST_NUMBER:
        raise ApiError(400, f"{name} must be from {low} to {high}, not a {len(raw)}-digit number")
    value = int(raw)
    if not low <= value <= high:
        raise ApiError(400, f"{name} must be from {low} to {high}, not {value}")
    return value


def _task(name: str) -> Task:
    task = Task.objects.named(name)
    if task is None:
        raise ApiError(404, f"unknown task {name!r}")
    return task


@authorize()
def tasks(request: HttpRequest, actor: actions.Actor) -> Body:
    parse_params(request, {})
    return payloads.tasks_payload()


@authorize()
def task_detail(request: HttpRequest, actor: actions.Actor, name: str) -> Body:
    parse_params(request, {})
    _task(name)
    task: Body = payloads.tasks_payload(name)["tasks"][0]
    return task


@authorize(permission=actions.VIEW_EXECUTION_PERMISSION)
def status(request: HttpRequest, actor: actions.Actor) -> Body:
    for permission in actions.OVERVIEW_PERMISSIONS:  # it shows task health and alert messages
        actor.require(permission)
    parse_params(request, {})
    return payloads.status_payload()


@authorize(permission=actions.VIEW_EXECUTION_PERMISSION)
def metrics(request: HttpRequest, actor: actions.Actor) -> Body:
    params = parse_params(request, {"hours": (1, 720, 24)})
    return payloads.metrics_payload(params["hours"])


@authorize(permission=actions.VIEW_EXECUTION_PERMISSION)
def log_tail(request: HttpRequest, actor: actions.Actor) -> Body:
    params = parse_params(request, {"lines": (1, 5000, 100)})
    name, lines = actions.log_tail(params["lines"])
    return {"file": name, "date": timezone.localdate().isoformat(), "lines": lines}


# Offsets beyond this are refused before any lookup: no output is that long, and every
# offset stays exact in a JavaScript number.
MAX_OUTPUT_OFFSET = 2**53 - 1


@authorize(permission=actions.VIEW_EXECUTION_PERMISSION)
def run_output(request: HttpRequest, actor: actions.Actor, run_id: str) -> Body:
    params = parse_params(request, {"offset": (0, MAX_OUTPUT_OFFSET, 0), "attempt": (1, 32767, 0)})
    try:
        body = payloads.output_payload(run_id, params["offset"], params["attempt"] or None)
    except ValueError as exc:
        raise ApiError(400, str(exc)) from None
    if body is None:
        which = f"attempt {params['attempt']} of run" if params["attempt"] else "run"
        raise ApiError(404, f"no {which} {run_id!r}")
    return body


@authorize(method="POST", write=True)
def run_now(request: HttpRequest, actor: actions.Actor, name: str) -> JsonResponse:
    parse_params(request, {})
    run_id = actions.run_now(actor, _task(name))
    body = {"task": name, "run_id": run_id, "trigger": "api", "started": True}
    return JsonResponse(body, status=202)


@authorize(method="POST", write=True)
def stop(request: HttpRequest, actor: actions.Actor, name: str) -> JsonResponse:
    parse_params(request, {})
    run_id = actions.stop(actor, _task(name))
    return JsonResponse({"task": name, "run_id": run_id, "stop_requested": True}, status=202)


@authorize(permission=actions.VIEW_EXECUTION_PERMISSION)
def running(request: HttpRequest, actor: actions.Actor) -> Body:
    parse_params(request, {})
    return payloads.running_payload()


@authorize(method="POST", write=True)
def enable(request: HttpRequest, actor: actions.Actor, name: str) -> Body:
    return _set_enabled(request, actor, name, True)


@authorize(method="POST", write=True)
def disable(request: HttpRequest, actor: actions.Actor, name: str) -> Body:
    return _set_enabled(request, actor, name, False)


def _set_enabled(request: HttpRequest, actor: actions.Actor, name: str, enabled: bool) -> Body:
    parse_params(request, {})
    actions.set_enabled(actor, _task(name), enabled)
    return {"task": name, "enabled": enabled}


@authorize(method="POST, DELETE", write=True)
def snooze_task(request: HttpRequest, actor: actions.Actor, name: str) -> Body:
    return _snooze(request, actor, _task(name))


@authorize(method="POST, DELETE", write=True)
def snooze_all(request: HttpRequest, actor: actions.Actor) -> Body:
    return _snooze(request, actor, None)


def _snooze(request: HttpRequest, actor: actions.Actor, task: Task | None) -> Body:
    """POST with `until` (ISO 8601) or `minutes` snoozes; DELETE ends the snooze."""
    if request.method == "DELETE":
        parse_params(request, {})
        return {"snoozed_until": None, "cleared": actions.unsnooze(actor, task)}
    until = _snooze_end(_body_params(request))
    try:
        names = actions.snooze(actor, task, until)
    except ValueError as exc:
        raise ApiError(400, f"until: {exc}") from None
    return {"snoozed_until": until.isoformat(), "tasks": names}


def _body_params(request: HttpRequest, lists: tuple[str, ...] = ()) -> dict[str, str]:
    """Parameters from the query string, a form body or a JSON object body. A JSON list of
    strings is taken, comma-joined, for the parameters named in `lists`."""
    params = {**request.GET.dict(), **request.POST.dict()}
    if request.content_type == "application/json" and request.body:
        params.update(json_object(request.body, lists))
    return params


# A request's JSON body: an object of plain values, small enough to read at once.
MAX_JSON_BYTES = 16 * 1024


def json_object(raw: bytes, lists: tuple[str, ...] = ()) -> dict[str, str]:
    """The JSON object of a request body, its values as text; checked for size and nesting
    before it is parsed (a deeply nested body would exhaust the parser's recursion). A list of
    strings is taken, comma-joined, for the keys named in `lists`; nothing else may nest."""
    if len(raw) > MAX_JSON_BYTES:
        raise ApiError(400, f"the JSON body is {len(raw)} bytes; at most {MAX_JSON_BYTES}")
    if _nesting(raw) > (2 if lists else 1):
        raise ApiError(400, "the JSON body must be one object of plain values, not nested")
    try:
        body = json.loads(raw)
    except ValueError:
        raise ApiError(400, "the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise ApiError(400, "the JSON body must be an object")
    params = {}
    for key, value in body.items():
        if key in lists and isinstance(value, list):
            if not all(isinstance(each, str) for each in value):
                raise ApiError(400, f"{key} must be a list of strings")
            value = ",".join(value)
        elif isinstance(value, (list, dict)):
            raise ApiError(400, f"{key} must be a string or a number")
        params[key] = str(value)
    return params


def _nesting(raw: bytes) -> int:
    """How deep `{` and `[` nest outside strings (escapes inside strings skipped)."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in raw:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x7B, 0x5B):  # { [
            depth += 1
            deepest = max(deepest, depth)
        elif byte in (0x7D, 0x5D):  # } ]
            depth -= 1
    return deepest


def _snooze_end(params: dict[str, str]) -> datetime:
    unknown = sorted(set(params) - {"until", "minutes"})
    if unknown:
        raise ApiError(400, f"unknown parameter {unknown[0]!r} (allowed: until, minutes)")
    return _end_time(params, actions.MAX_SNOOZE, actions.snooze_end)


def _end_time(params: dict[str, str], longest: timedelta, end: Callable[..., datetime]) -> datetime:
    """The end a snooze or a window asks for: exactly one of `minutes` (1 to `longest`) or
    `until` (ISO 8601), read by the door-independent `end(length, until)`."""
    if ("until" in params) == ("minutes" in params):
        raise ApiError(400, "give exactly one of until (ISO 8601) or minutes")
    if "minutes" in params:
        limit = int(longest.total_seconds() // 60)
        minutes = _whole_number("minutes", params["minutes"], 1, limit)
        return end(f"{minutes}m")
    try:
        return end(until=params["until"])
    except ValueError as exc:
        raise ApiError(400, f"until: {exc}") from None


@authorize(method="GET, POST", permission=actions.VIEW_WINDOW_PERMISSION)
def maintenance_windows(request: HttpRequest, actor: actions.Actor) -> Body | JsonResponse:
    """GET lists the windows; POST opens a one-off window (docs/api.md)."""
    if request.method == "POST":
        return _open_window(request, actor)
    params = parse_params(request, {"past": (0, 1, 0)})
    return payloads.windows_payload(include_past=bool(params["past"]))


def _open_window(request: HttpRequest, actor: actions.Actor) -> JsonResponse:
    actor.require(actions.WINDOW_PERMISSION)  # refused before the body is read
    params = _body_params(request, lists=("tasks",))
    allowed = ("tasks", "minutes", "until", "mode", "reason")
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise ApiError(400, f"unknown parameter {unknown[0]!r} (allowed: {', '.join(allowed)})")
    missing = [name for name in ("tasks", "mode", "reason") if not params.get(name)]
    if missing:
        raise ApiError(400, f"{missing[0]} is required")
    until = _end_time(params, windows.MAX_LENGTH, windows.window_end)
    try:
        window = actions.open_window(
            actor, params["tasks"].split(","), params["mode"], params["reason"], until
        )
    except ValueError as exc:
        raise ApiError(400, str(exc)) from None
    return JsonResponse(payloads.window_dict(window, windows.Calendar()), status=201)


@authorize(method="POST", permission=actions.WINDOW_PERMISSION)
def end_maintenance_window(request: HttpRequest, actor: actions.Actor, pk: int) -> Body:
    parse_params(request, {})
    window = MaintenanceWindow.objects.filter(pk=pk).first()
    if window is None:
        raise ApiError(404, f"no maintenance window {pk}")
    ended = actions.end_window(actor, window)
    return {"ended": ended, "window": payloads.window_dict(window, windows.Calendar())}


@csrf_exempt
def not_found(request: HttpRequest, rest: str) -> HttpResponse:
    """A path without its final slash is the endpoint with it (any method: a redirect would
    turn a POST into a GET); anything else is a JSON 404, whoever asks."""
    if not rest.endswith("/"):
        try:
            match = resolve(f"/api/{rest}/")
        except Resolver404:
            match = None
        if match is not None and match.func is not not_found:
            response: HttpResponse = match.func(request, *match.args, **match.kwargs)
            return response
    return error(404, f"no API endpoint /api/{rest}")


urlpatterns = [
    path("tasks/", tasks, name="api-tasks"),
    path("tasks/<str:name>/", task_detail, name="api-task"),
    path("tasks/<str:name>/run/", run_now, name="api-task-run"),
    path("tasks/<str:name>/stop/", stop, name="api-task-stop"),
    path("tasks/<str:name>/enable/", enable, name="api-task-enable"),
    path("tasks/<str:name>/disable/", disable, name="api-task-disable"),
    path("tasks/<str:name>/snooze/", snooze_task, name="api-task-snooze"),
    path("snooze/", snooze_all, name="api-snooze-all"),
    path("status/", status, name="api-status"),
    path("running/", running, name="api-running"),
    path("metrics/", metrics, name="api-metrics"),
    path("logs/", log_tail, name="api-logs"),
    path("windows/", maintenance_windows, name="api-windows"),
    path("windows/<int:pk>/end/", end_maintenance_window, name="api-window-end"),
    path("runs/<str:run_id>/output/", run_output, name="api-run-output"),
    path("<path:rest>", not_found),
]


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    """handler400: JSON under /api/ and /metrics, Django's page elsewhere."""
    if request.path.startswith("/api/") or request.path == "/metrics":
        return error(400, f"bad request: {exception}")
    return defaults.bad_request(request, exception)
