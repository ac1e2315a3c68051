"""`make demo` (bin/demo) twice in a row on a fresh copy of the project with a task the user
declared, as the README's tour does it: a busy port is refused before any work; the first start
invents history for the demo's own tasks only and runs every task once; the restart invents
nothing, runs nothing again, and the login of the first start still works, although `.env`
gained a SECRET_KEY in between."""

from __future__ import annotations

import http.cookiejar
import os
import re
import signal
import socket
import sqlite3
import subprocess
import urllib.parse
import urllib.request
from pathlib import Path

from tests.helpers import ROOT, wait_for
from tests.live_gunicorn import free_port

TASKS_FILE = """
[tasks.disk_usage]
command = ["df", "-h", "/"]
schedule = "*/15 * * * *"
timeout = 30
"""
# What a developer's shell might carry into the copy: none of it may reach the demo.
LEFT_OUT = (
    "DATABASE_URL",
    "DJANGO_SETTINGS_MODULE",
    "SECRET_KEY",
    "LOG_DIR",
    "EXTRA_APPS",
    "DEBUG",
)


def fresh_copy(tmp_path: Path) -> Path:
    """The project's files as a clone has them (tracked and new, not ignored), sharing the
    virtualenv."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout
    copy = tmp_path / "clone"
    for name in filter(None, listed.decode().split("\0")):
        source = ROOT / name
        if source.is_file():
            target = copy / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(source.read_bytes())
            target.chmod(source.stat().st_mode)
    (copy / ".venv").symlink_to((ROOT / ".venv").resolve())
    (copy / "cronjobs.toml").write_text(TASKS_FILE)
    return copy


def environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in LEFT_OUT and not k.startswith("CRON")}


class Demo:
    def __init__(self, copy: Path, addr: str):
        self.copy, self.addr = copy, addr
        self.log = copy / f"demo-{len(list(copy.glob('demo-*.log')))}.log"
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                ["bin/demo", addr], cwd=copy, env=environment(), stdout=out, stderr=out
            )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_until_serving(self) -> str:
        def up() -> bool:
            assert self.process.poll() is None, self.output()
            if "flagged-cron admin:" not in self.output():
                return False
            with socket.socket() as sock:
                return sock.connect_ex(("127.0.0.1", int(self.addr.rpartition(":")[2]))) == 0

        wait_for(up, timeout=600, interval=0.5, what=lambda: self.output()[-2000:])
        return self.output()

    def stop(self) -> None:
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class Browser:
    """Cookies kept across requests, as a browser keeps its session."""

    def __init__(self, base: str):
        self.base = base
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))

    def get(self, path: str) -> tuple[str, str]:
        with self.opener.open(self.base + path, timeout=30) as response:
            return response.geturl(), response.read().decode()

    def log_in(self, password: str) -> str:
        _, page = self.get("/admin/login/?next=/admin/")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
        assert token, page[:500]
        form = {
            "username": "admin",
            "password": password,
            "csrfmiddlewaretoken": token.group(1),
            "next": "/admin/",
        }
        request = urllib.request.Request(
            self.base + "/admin/login/?next=/admin/",
            data=urllib.parse.urlencode(form).encode(),
            headers={"Referer": self.base + "/admin/login/"},
        )
        with self.opener.open(request, timeout=30) as response:
            return response.geturl()

    def logged_in(self) -> bool:
        url, _ = self.get("/admin/")
        return "/admin/login/" not in url


def rows(copy: Path) -> dict[tuple[str, str], int]:
    """Executions per (task, host) in the demo's SQLite database."""
    with sqlite3.connect(copy / "db.sqlite3") as db:
        found = db.execute(
            "SELECT t.name, e.host, COUNT(*) FROM cronjobs_execution e"
            " JOIN cronjobs_task t ON t.id = e.task_id GROUP BY t.name, e.host"
        ).fetchall()
    return {(name, host): count for name, host, count in found}


def test_make_demo_twice_invents_nothing_for_your_task_and_keeps_the_login(tmp_path):
    copy = fresh_copy(tmp_path)
    port = free_port()
    addr = f"127.0.0.1:{port}"

    with socket.socket() as busy:  # something else serves on the port
        busy.bind(("127.0.0.1", port))
        busy.listen()
        refused = subprocess.run(
            ["bin/demo", addr], cwd=copy, env=environment(), capture_output=True, text=True
        )
    assert refused.returncode == 1
    assert f"make demo DEMO_ADDR=127.0.0.1:{port + 1}" in refused.stderr
    assert not (copy / "db.sqlite3").exists()  # refused before any work

    first = Demo(copy, addr)
    try:
        said = first.wait_until_serving()
        password = re.search(r"password:\s+(\S+)", said)
        assert password, said
        assert "manage.py changepassword admin" in said
        browser = Browser(f"http://{addr}")
        assert browser.log_in(password.group(1)).endswith("/admin/")
        assert browser.logged_in()
    finally:
        first.stop()
    after_first = rows(copy)
    invented = {task for (task, host) in after_first if host == "demo-history"}
    assert "generate_ai_insights" in invented and "heartbeat" in invented
    assert "disk_usage" not in invented
    disk_usage = {host: n for (task, host), n in after_first.items() if task == "disk_usage"}
    assert sum(disk_usage.values()) == 1  # the one real run of the first start

    # The README's tour: the command line gets a secret key of its own in .env.
    (copy / ".env").write_text("SECRET_KEY=" + "k" * 60 + "\n")
    second = Demo(copy, addr)
    try:
        said = second.wait_until_serving()
        assert "left as it is" in said
        assert "tasks not run again" in said
        assert "password:            unchanged" in said and "changepassword admin" in said
        assert browser.logged_in()  # the session of the first start
        assert Browser(f"http://{addr}").log_in(password.group(1)).endswith("/admin/")
    finally:
        second.stop()
    assert rows(copy) == after_first  # nothing invented, nothing run again
    assert (copy / ".demo-secret-key").stat().st_mode & 0o077 == 0
