"""The settings an installed crontab line must share with the process that installs it (issue
14): the database, where logs go, which tasks exist, the zone schedules are read in, and a
secret key at all.

`crontab add` (cronjobs.supervisor.crontab) starts a fresh interpreter with cron's environment
that runs this module: it needs the settings module and nothing else, so it imports no app and
does not call django.setup() (the apps cost that interpreter twice the settings' 0.3 s).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from django.conf import settings

CHECKED_SETTINGS = ("DATABASE_URL", "LOG_DIR", "CRONJOBS_TASKS_FILE", "TIME_ZONE", "SECRET_KEY")


def settings_fingerprint() -> dict[str, tuple[str, str]]:
    """Each checked setting of this process: (what may be shown, a digest to compare). The
    database is shown without its password; the secret key only as set or not set."""
    db = settings.DATABASES["default"]
    engine = str(db.get("ENGINE", "")).rsplit(".", 1)[-1]
    where = f"{db.get('USER') or ''}@{db.get('HOST') or ''}:{db.get('PORT') or ''}/"
    shown_db = f"{engine}://{where if engine != 'sqlite3' else ''}{db.get('NAME')}"
    shown = {
        "DATABASE_URL": (shown_db, f"{shown_db} {_digest(str(db.get('PASSWORD') or ''))}"),
        "LOG_DIR": (str(Path(settings.LOG_DIR).resolve()),) * 2,
        "CRONJOBS_TASKS_FILE": (str(settings.CRONJOBS_TASKS_FILE),) * 2,
        "TIME_ZONE": (settings.TIME_ZONE,) * 2,
        "SECRET_KEY": ("set" if settings.SECRET_KEY else "not set",) * 2,
    }
    return {name: (value[0], value[1]) for name, value in shown.items()}


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def main() -> None:
    """Print the fingerprint as JSON, or what stopped the settings from loading."""
    try:
        print(json.dumps(settings_fingerprint()))
    except Exception as exc:
        print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}))


if __name__ == "__main__":
    main()
