"""Settings for the test suites: the project's own, plus a test app of jobs and the demo app
(its seed commands are tested, and tests seed data with them)."""

import os

os.environ.setdefault("SECRET_KEY", "test-only-secret-" + "x" * 50)

from flagged_cron_project.settings import *  # noqa: F403

INSTALLED_APPS = [*INSTALLED_APPS, "tests.jobsapp"]  # noqa: F405
if "demo" not in INSTALLED_APPS:  # a developer's .env may list it in EXTRA_APPS already
    INSTALLED_APPS.append("demo")
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
CRONJOBS_KILL_GRACE = 1
# Pages show what a test just wrote; tests/test_dashboard.py turns the cache on to test it.
CRONJOBS_DASHBOARD_CACHE_SECONDS = 0
# Pages render without a collectstatic run; tests/test_static_files.py covers the manifest.
STORAGES = {
    **STORAGES,  # noqa: F405
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
# Serve static files the way development does (looked up per request), so WhiteNoise does not
# warn about a STATIC_ROOT that only `collectstatic` creates.
WHITENOISE_AUTOREFRESH = True
# A gunicorn started by a test runs with DEBUG off: WhiteNoise finds the apps' static files
# itself (as with DEBUG on), so its pages have their scripts and styles without collectstatic.
WHITENOISE_USE_FINDERS = True
# Each test process keeps its own cache (tests/conftest.py empties it per test). A gunicorn
# started by a test (tests/live_gunicorn.py) keeps the database cache its workers share.
if not os.environ.get("FLAGGED_CRON_LIVE_SERVER"):
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
