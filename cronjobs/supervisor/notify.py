"""Receivers and notifiers, called so that they can never change a run's result (docs/operations.md,
"Alerts").

Every outbound call (an alert to a receiver, a Healthchecks ping) goes through `guarded`: whatever
it raises (a bad URL, a DNS failure, a timeout, a 500) is logged with the URL redacted to its
scheme and host, and the caller carries on. Receivers are configured as

* `ALERT_URLS`: Apprise URLs (`mailto://`, `slack://`, `msteams://`, `tgram://`, `json://`, ...);
* `ALERT_EMAILS`: a shorthand for email through Django's mail settings;
* `ALERT_WEBHOOK_URL`: a shorthand for a Slack-style JSON POST;
* `ALERT_ESCALATION_URLS`: Apprise URLs that hear only escalations (and their recovery).
"""

from __future__ import annotations

import json
import logging
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings
from django.core.mail import send_mail

log = logging.getLogger(__name__)


class _ScrubSecrets(logging.Filter):
    """Apprise and urllib3 (under requests) log the full URL they post to at DEBUG, and some
    plugins quote it in warnings: strip every configured receiver's secrets from their records."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        for url in [
            *settings.ALERT_URLS,
            *settings.ALERT_ESCALATION_URLS,
            settings.ALERT_WEBHOOK_URL,
        ]:
            if url:
                text = scrub(text, url)
        record.msg, record.args = text, None
        return True


# Their DEBUG lines are the full request: never wanted in a supervisor's logs.
for _name in ("apprise", "urllib3.connectionpool"):
    logging.getLogger(_name).addFilter(_ScrubSecrets())
    logging.getLogger(_name).setLevel(logging.WARNING)


def redact(url: str) -> str:
    """The URL as it may be logged: scheme and host only; tokens live in the rest."""
    parts = urlsplit(url.strip()) if "://" in url else None
    if parts is None or not parts.scheme or not parts.hostname:
        return "<unparsable URL>"
    port = f":{parts.port}" if _port(parts) else ""
    tail = "/…" if parts.path.strip("/") or parts.query or parts.username else ""
    return f"{parts.scheme}://{parts.hostname}{port}{tail}"


def _port(parts: object) -> int | None:
    try:
        return parts.port  # type: ignore[attr-defined, no-any-return]
    except ValueError:  # a port that is not a number
        return None


def scrub(text: str, url: str) -> str:
    """Remove the URL and each of its secret-looking pieces from a message (exceptions from
    urllib and Apprise quote the URL they were given)."""
    pieces = {url, url.strip()}
    parts = urlsplit(url.strip())
    pieces |= {parts.netloc, parts.path, parts.query, parts.username or "", parts.password or ""}
    pieces |= set(parts.path.split("/")) | set(parts.netloc.split("@")[0].split(":"))
    for piece in sorted((p for p in pieces if len(p) >= 4), key=len, reverse=True):
        text = text.replace(piece, "***")
    return text


def url_problem(url: str) -> str:
    """Why a receiver URL can never work, or "" (for `manage.py check`)."""
    parts = urlsplit(url.strip())
    if "://" not in url or not parts.scheme:
        return "has no scheme (write it as scheme://host/...)"
    return ""


def guarded(what: str, url: str, call: Callable[[], object]) -> bool:
    """Run one outbound call; log and swallow any failure. True when it succeeded."""
    try:
        result = call()
    except Exception as exc:  # anything at all: a notifier never fails a run
        log.error(
            "%s to %s failed: %s", what, redact(url), scrub(f"{type(exc).__name__}: {exc}", url)
        )
        return False
    if result is False:
        log.error("%s to %s failed (see the receiver's answer above)", what, redact(url))
        return False
    return True


@dataclass(frozen=True)
class Message:
    title: str
    body: str
    payload: dict[str, object]  # the webhook shorthand's JSON fields


@dataclass(frozen=True)
class Receiver:
    label: str  # safe to log and print
    url: str  # what guarded() redacts
    send: Callable[[Message], object]


def receivers() -> list[Receiver]:
    """Every configured receiver, the shorthands first."""
    found = []
    if settings.ALERT_EMAILS:
        found.append(Receiver("email to " + ", ".join(settings.ALERT_EMAILS), "", _send_email))
    if settings.ALERT_WEBHOOK_URL:
        url = settings.ALERT_WEBHOOK_URL
        found.append(Receiver(f"webhook {redact(url)}", url, _poster(url)))
    for url in settings.ALERT_URLS:
        found.append(Receiver(f"apprise {redact(url)}", url, _apprise_sender(url)))
    return found


def escalation_receivers() -> list[Receiver]:
    """ALERT_ESCALATION_URLS: who hears of a critical alert nobody acknowledged in time."""
    urls = settings.ALERT_ESCALATION_URLS
    return [Receiver(f"escalation {redact(url)}", url, _apprise_sender(url)) for url in urls]


def send_to_all(message: Message) -> dict[str, bool]:
    """Send to every receiver; label -> succeeded. Never raises."""
    return {receiver.label: _send_one(receiver, message) for receiver in receivers()}


def send_to_escalation(message: Message) -> dict[str, bool]:
    """Send to every escalation receiver; label -> succeeded. Never raises."""
    return {r.label: _send_one(r, message) for r in escalation_receivers()}


def _send_one(receiver: Receiver, message: Message) -> bool:
    return guarded("alert", receiver.url or receiver.label, lambda: receiver.send(message))


def _send_email(message: Message) -> object:
    return send_mail(message.title, message.body, None, settings.ALERT_EMAILS)


def _poster(url: str) -> Callable[[Message], object]:
    def post(message: Message) -> object:
        request = urllib.request.Request(
            url,
            data=json.dumps(message.payload).encode(),
            headers={"Content-Type": "application/json", "User-Agent": "flagged-cron"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=settings.ALERT_TIMEOUT) as response:
            return response.read(1024)

    return post


def _apprise_sender(url: str) -> Callable[[Message], object]:
    def send(message: Message) -> object:
        import apprise  # imported on first use: most runs send nothing

        plugin = apprise.Apprise.instantiate(url, suppress_exceptions=True)
        if not plugin:
            raise ValueError("Apprise does not recognise this URL")
        plugin.socket_connect_timeout = plugin.socket_read_timeout = settings.ALERT_TIMEOUT
        plugin.request_rate_per_sec = 0  # one message per receiver per event: no throttle sleep
        return bool(plugin.notify(body=message.body, title=message.title))

    return send


def apprise_problem(url: str) -> str:
    """Why Apprise cannot use this URL, or ""."""
    problem = url_problem(url)
    if problem:
        return problem
    import apprise

    if not apprise.Apprise.instantiate(url, suppress_exceptions=True):
        return "is not a URL Apprise recognises (see the Apprise wiki for its services)"
    return ""
