"""Settings for bench/runjob_overhead.py: the project's, plus the no-op job, registered both as
a runjob task and as a django-crontab CRONJOBS entry. django_crontab goes first so its own
`crontab run <hash>` command is the one `manage.py crontab` finds."""

import os

os.environ.setdefault("SECRET_KEY", "bench-only-secret-" + "x" * 50)

from flagged_cron_project.settings import *  # noqa: F403

INSTALLED_APPS = [
    "django_crontab",
    *(app for app in INSTALLED_APPS if app != "django_crontab"),  # noqa: F405
    "bench.noopapp",
]
CRONJOBS = [("* * * * *", "bench.noopapp.jobs.noop")]
