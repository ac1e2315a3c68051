# flagged-cron: `make demo` and `make test` are the two commands a newcomer needs.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
MANAGE := $(BIN)/python manage.py
MARIADB_URL ?= mysql://root:@127.0.0.1:3306/flagged_cron
DEMO_ADDR ?= 127.0.0.1:8000
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: setup setup-dev demo serve test test-sqlite test-mariadb lint format bench bench-reliability \
	bench-api bench-web bench-admin bench-domain bench-import bench-scheduling bench-rollups \
	bench-ten-million bench-dashboard bench-windows bench-overview bench-fencing bench-live-output \
	bench-alerts bench-import-limits bench-slots bench-burst bench-ten-thousand clean

$(BIN)/python:
	$(PY) -m venv $(VENV)

# The stamp files reinstall only when a requirements file changes.
$(VENV)/.installed: requirements.txt | $(BIN)/python
	bin/system-deps build
	$(BIN)/pip install -q -r requirements.txt
	touch $@

$(VENV)/.installed-dev: requirements.txt requirements-dev.txt | $(BIN)/python
	bin/system-deps test
	$(BIN)/pip install -q -r requirements-dev.txt
	touch $(VENV)/.installed $@

setup: $(VENV)/.installed
setup-dev: $(VENV)/.installed-dev

# The address is checked before anything is installed: a busy port is said at once.
demo:
	@bin/port-free $(DEMO_ADDR) DEMO_ADDR
	@$(MAKE) --no-print-directory setup
	bin/demo $(DEMO_ADDR)

# Production: migrate, collectstatic, gunicorn on 127.0.0.1:8000 (docs/deploy.md).
serve: setup
	bin/serve $(SERVE_ADDR)

test: setup-dev lint test-sqlite test-mariadb

lint: setup-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: setup-dev
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test-sqlite: setup-dev
	env -u DATABASE_URL $(BIN)/pytest $(PYTEST_ARGS)

# Outside CI a missing MariaDB skips this suite with a message; with CI=true it is an error.
test-mariadb: setup-dev
	@if $(BIN)/python bin/mariadb-ready "$(MARIADB_URL)"; then \
	  DATABASE_URL="$(MARIADB_URL)" $(BIN)/pytest $(PYTEST_ARGS); \
	elif [ "$${CI:-}" = true ]; then \
	  echo "MariaDB at $(MARIADB_URL) is required with CI=true" >&2; exit 1; \
	else \
	  echo "skipping the MariaDB suite: install and start MariaDB on 127.0.0.1:3306" \
	       "(apt-get install mariadb-server) or set MARIADB_URL"; \
	fi

# Supervision cost against django-crontab's `crontab run`, on SQLite then MariaDB.
bench: setup-dev
	$(BIN)/python bench/runjob_overhead.py
	$(BIN)/python bench/runjob_overhead.py --database-url "$(subst flagged_cron,flagged_cron_bench_overhead,$(MARIADB_URL))"

# Concurrent invocations, SIGKILL takeover and the spool, on MariaDB.
bench-reliability: setup-dev
	$(BIN)/python bench/reliability.py

# API and /metrics on a million executions in MariaDB (seeds flagged_cron_bench once, ~2 min).
bench-api: setup-dev
	$(BIN)/python bench/api.py

# gunicorn under 32 concurrent loopback clients for 60 s on the same database (issue 12).
bench-web: setup-dev
	$(BIN)/python bench/web.py

# Admin pages, dashboard and a 100,000-row CSV export on the same database.
bench-admin: setup-dev
	$(BIN)/python bench/admin.py

# The five Flagged Products jobs through runjob at full demo scale, on MariaDB.
bench-domain: setup-dev
	$(BIN)/python bench/flagged_jobs.py

# import_legacy_metrics of a 500,000-row Smart Cron V2 export into MariaDB: time and memory.
bench-import: setup-dev
	$(BIN)/python bench/legacy_import.py

# What an oversized admin import costs before it is refused, against parsing it whole (issue 25).
bench-import-limits: setup-dev
	$(BIN)/python bench/import_limits.py $(BENCH_ARGS)

# Stop latency and the watchdog with 500 catch_up tasks (issue 14; SQLite in a temp dir).
bench-scheduling: setup-dev
	$(BIN)/python bench/scheduling.py

# Issue 23: the duration baseline's cost per successful attempt and a watchdog pass with 500
# tasks and 100 open alerts, on SQLite (temp dir) then MariaDB.
bench-alerts: setup-dev
	$(BIN)/python bench/alert_noise.py
	$(BIN)/python bench/alert_noise.py --url "$(subst flagged_cron,flagged_cron_bench_alerts,$(MARIADB_URL))"

# What the per-hour and per-day rollups add to finalising an attempt (MariaDB).
bench-rollups: setup-dev
	$(BIN)/python bench/rollup_upsert.py

# Issue 16: pages, API and prune_history under four runjob loops on 10,000,000 executions in
# MariaDB (flagged_cron_bench10m, seeded once by LOAD DATA, kept; the prune runs on a copy).
bench-ten-million: setup-dev
	$(BIN)/python bench/ten_million.py $(BENCH_ARGS)

# Live output: a job printing 1 MB/s followed by 20 pollers through gunicorn, beside 20 pollers
# of /api/running/ (MariaDB, flagged_cron_bench_live).
bench-live-output: setup-dev
	$(BIN)/python bench/live_output.py $(BENCH_ARGS)

# The dashboard's content and charts with 100 tasks and 30 days of history (SQLite in a temp dir).
bench-dashboard: setup-dev
	$(BIN)/python bench/dashboard.py $(BENCH_ARGS)

# A watchdog pass with 500 tasks and 10 maintenance windows on now, against none (SQLite).
bench-windows: setup-dev
	$(BIN)/python bench/windows.py $(BENCH_ARGS)

# The overview (/admin/) on a million executions in MariaDB, warm and cold, beside Django's
# stock index it replaced (flagged_cron_bench_overview, seeded once, kept).
bench-overview: setup-dev
	$(BIN)/python bench/overview.py $(BENCH_ARGS)

# Fencing (issue 22): a partition to the job's death, and the margin left before its lease
# could lapse, 20 trials through frozen TCP proxies to MariaDB (flagged_cron_bench_fencing).
bench-fencing: setup-dev
	$(BIN)/python bench/fencing.py $(BENCH_ARGS)

# One run per slot (issue 22): the claim's cost in-process and end to end, and the start lag
# of 1, 10 and 50 tasks due in one minute (waits for three minute boundaries), on MariaDB.
bench-slots: setup-dev
	$(BIN)/python bench/slots.py --database-url "$(subst flagged_cron,flagged_cron_bench_slots,$(MARIADB_URL))"

# The midnight burst (issue 26): 100 and 1,000 tasks due in one minute, per-task runjob processes
# beside one `runjob --due` per host, then 1,000 over three hosts (waits for 4 minute boundaries,
# ~8 minutes); first a profile of 40 warm supervised starts.
bench-burst: setup-dev
	$(BIN)/python bench/burst.py --profile 41 --database-url "$(subst flagged_cron,flagged_cron_bench_burst,$(MARIADB_URL))" $(BENCH_ARGS)

# Ten thousand declared tasks (issue 26): the commands, a watchdog pass, the pages, the API and
# slots.find for every task, wall time and queries with 1,000 and 10,000 tasks, on SQLite (temp
# dir) then MariaDB (flagged_cron_bench_ten_thousand, made anew each run).
bench-ten-thousand: setup-dev
	$(BIN)/python bench/ten_thousand_tasks.py $(BENCH_ARGS)
	$(BIN)/python bench/ten_thousand_tasks.py --database-url "$(subst flagged_cron,flagged_cron_bench_ten_thousand,$(MARIADB_URL))" $(BENCH_ARGS)

# The import diagram in docs/architecture.md (stdlib only; tests/test_architecture.py fails
# while it is stale).
.PHONY: diagram docs
diagram:
	bin/architecture-diagram --write docs/architecture.md

# The generated parts of docs/: the import diagram and the task settings table
# (cronjobs/tasksettings.py); tests/test_docs.py and test_architecture.py fail while stale.
docs: diagram setup
	$(BIN)/python bin/settings-table --write docs/configuration.md

clean:
	rm -rf $(VENV) staticfiles logs db.sqlite3
