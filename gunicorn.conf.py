"""gunicorn settings for flagged-cron (docs/deploy.md); `bin/serve` and `make serve` use it.
Every value can be overridden from the environment or on the command line (`--bind ...`)."""

import os

wsgi_app = "flagged_cron_project.wsgi:application"
bind = os.environ.get("WEB_BIND", "127.0.0.1:8000")
# Pages are database-bound, not CPU-bound: two workers per core plus one, at most eight.
workers = int(os.environ.get("WEB_CONCURRENCY", min(2 * (os.cpu_count() or 1) + 1, 8)))
timeout = int(os.environ.get("WEB_TIMEOUT", 60))
graceful_timeout = 30
# Trust X-Forwarded-* only from the proxy on this host (docs/deploy.md).
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")
accesslog = os.environ.get("WEB_ACCESS_LOG", "-") or None  # "" turns it off
errorlog = "-"
# Workers are recycled now and then, so a slow leak cannot grow without bound.
max_requests = 2000
max_requests_jitter = 200
# Long enough for any query string Django itself accepts, so Django (JSON on the API), not
# gunicorn (an HTML page), answers one that is too long.
limit_request_line = 8190
