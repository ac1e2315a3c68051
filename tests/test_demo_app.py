"""The demo app: its commands exist only where it is installed (EXTRA_APPS=demo, as `make demo`
sets it), never in a production settings load."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys

from tests.helpers import ROOT

DEMO_COMMANDS = ("seed_demo", "seed_history", "demo_user")


def manage_help(extra: dict[str, str]) -> str:
    """`manage.py help` under the project's real settings, as production loads them."""
    env = {k: v for k, v in os.environ.items() if k not in ("EXTRA_APPS", "DEBUG")}
    env.update(
        EXTRA_APPS="",  # set, so an EXTRA_APPS in a developer's .env cannot leak in
        DJANGO_SETTINGS_MODULE="flagged_cron_project.settings",
        DEBUG="0",
        SECRET_KEY=secrets.token_urlsafe(48),  # 64 characters, as a production key would be
    )
    env.update(extra)
    done = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "help"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_production_settings_list_no_demo_command():
    listed = manage_help({})
    assert "[cronjobs]" in listed and "runjob" in listed  # the listing is really there
    for command in DEMO_COMMANDS:
        assert command not in listed
    assert "[demo]" not in listed


def test_extra_apps_demo_adds_the_demo_commands():
    listed = manage_help({"EXTRA_APPS": "demo"})
    assert "[demo]" in listed
    for command in DEMO_COMMANDS:
        assert f"    {command}\n" in listed
