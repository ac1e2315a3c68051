"""Settings for bench/runjob_overhead.py and the runners of bench/ten_million.py: the project's,
plus the no-op jobs, registered both as runjob tasks and as a django-crontab CRONJOBS entry.
django_crontab goes first so its own `crontab run <hash>` command is the one `manage.py crontab`
finds."""

import os

os.environ.setdefault("SECRET_KEY", "bench-only-secret-" + "x" * 50)

from flagged_cron_project.settings import *  # noqa: F403

INSTALLED_APPS = [
    "django_crontab",
    *(app for app in INSTALLED_APPS if app != "django_crontab"),  # noqa: F405
    "bench.noopapp",
]
CRONJOBS = [("* * * * *", "bench.noopapp.jobs.noop")]
# bench/ten_million.py: a file that bench/noopapp/writelog.py appends each runner write's time to.
BENCH_WRITE_LOG = os.environ.get("BENCH_WRITE_LOG", "")
