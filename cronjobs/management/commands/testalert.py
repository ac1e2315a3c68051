from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from cronjobs.supervisor import notify


class Command(BaseCommand):
    help = (
        "Send a test message to every alert receiver (ALERT_URLS, ALERT_EMAILS, "
        "ALERT_WEBHOOK_URL) and print which succeeded. Exits 1 when any failed."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        if not notify.receivers():
            raise CommandError(
                "no alert receivers are configured: set ALERT_URLS, ALERT_EMAILS or "
                "ALERT_WEBHOOK_URL (docs/configuration.md, Alerts and email)"
            )
        host = settings.CRONJOBS_HOST
        message = notify.Message(
            title="[flagged-cron] test alert",
            body=f"A test message from flagged-cron on {host}: this receiver works.",
            payload={
                "text": f"[flagged-cron] test alert from {host}",
                "event": "test",
                "host": host,
            },
        )
        results = notify.send_to_all(message)
        for label, ok in results.items():
            self.stdout.write(f"{'ok    ' if ok else 'FAILED'} {label}")
        if not all(results.values()):
            raise CommandError(f"{list(results.values()).count(False)} receiver(s) failed")
