"""Run one attempt of a task in a child process tree, measure it, and kill it when it must die.

The tree (Linux), for a function task:

    supervisor (runjob)
      `- keeper: own session and process group; child subreaper; dies with the supervisor
           `- worker: runs the callable; stdout+stderr -> one pipe
                `- anything the job starts (same process group unless it calls setsid)

and for a command task, where the keeper execs launcher.py and the command is its child:

    supervisor (runjob)
      `- keeper, then launcher.py (`python -I -S`): the same session, signals and subreaper
           `- the command: stdout+stderr -> one pipe
                `- anything the command starts

Why a keeper: if the supervisor is SIGKILLed nobody is left to clean up, so the keeper asks the
kernel for a parent-death signal and then kills its whole process group. It also adopts
orphaned grandchildren (PR_SET_CHILD_SUBREAPER), so their memory and CPU stay on the bill.
Two forks of an already-loaded Django process cost about a millisecond, far less than starting
a new interpreter, which is what keeps supervision cheap. A command's keeper execs the launcher
instead of forking again: one fork of the supervisor fewer, and no copy of the supervisor's
pages held for the length of the job (launcher.py says why it exists at all).

This module reads and writes no rows: cronjobs/supervisor/runner.py records what it returns. Its
statuses are the model's (`Execution.Status`), so an attempt's outcome has one vocabulary.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import json
import logging
import os
import re
import selectors
import signal
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any, NoReturn

import psutil

from cronjobs.models import Execution
from cronjobs.supervisor import db

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
# The keeper's parent-death signal; SIGTERM is taken by timeouts, which the keeper ignores.
DEATH_SIGNAL = signal.SIGUSR2

_libc = ctypes.CDLL(None, use_errno=True)

# What an attempt runs: a zero-argument callable, or an argv to exec.
Work = Callable[[], Any] | tuple[str, ...]


Status = Execution.Status


@dataclasses.dataclass
class Limits:
    timeout: float
    memory_limit: int | None = None
    grace: float = 5.0
    output_cap: int = 64 * 1024


@dataclasses.dataclass(frozen=True)
class Halt:
    """Why the supervisor ends an attempt before its end (an operator's stop, a lost lease):
    the status the attempt ends with, its error, and the seconds between SIGTERM and SIGKILL
    (None: `Limits.grace`)."""

    status: Status
    error: str
    grace: float | None = None


LAUNCHER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "launcher.py")


@dataclasses.dataclass
class AttemptResult:
    status: Status
    duration: float
    exit_code: int | None = None
    signal: int | None = None
    peak_rss_bytes: int = 0
    memory_added_bytes: int | None = None  # function tasks: the peak over the worker's baseline
    cpu_user: float = 0.0
    cpu_system: float = 0.0
    output: str = ""
    error: str = ""
    traceback: str = ""


def run_attempt(
    work: Work,
    limits: Limits,
    on_output: Callable[[bytes], None] = lambda chunk: None,
    on_tick: Callable[[int], Halt | None] = lambda peak: None,
    cwd: str | None = None,
    env: dict[str, str] | None = None,
) -> AttemptResult:
    """Run `work` (a zero-argument callable, or an argv to exec with `env`) under `limits`.

    1. Fork the keeper, which forks the worker (a command: execs launcher.py, which forks the
       command).
    2. Pump output to `on_output` and keep a capped tail; sample the tree's memory, current
       RSS and each process's kernel high-water mark (VmHWM).
    3. On timeout, or when `on_tick` (called with the peak so far) answers a `Halt` (a stop
       request, a lost lease): SIGTERM to the group, wait the grace, SIGKILL. Over the memory
       limit: SIGKILL.
    4. Reap the keeper; wait4's rusage gives CPU; the peak comes from the samples and the
       kernel high-water marks the launcher and the keeper report.
    """
    out_r, out_w = os.pipe()
    res_r, res_w = os.pipe()
    started = time.monotonic()
    sys.stdout.flush()
    sys.stderr.flush()
    supervisor_pid = os.getpid()
    keeper = os.fork()
    if keeper == 0:  # pragma: no cover - runs in the child, reported through the pipes
        os.close(out_r)
        os.close(res_r)
        _keeper(work, out_w, res_w, supervisor_pid, cwd, env)
    os.close(out_w)
    os.close(res_w)
    monitor = _Monitor(keeper, limits, on_output, on_tick, command=isinstance(work, tuple))
    try:
        monitor.worker = _read_worker_pid(res_r, monitor.reports)
        monitor.watch(out_r, res_r, started)
    finally:
        monitor.stop()  # nothing the attempt started outlives it, even on an exception
        os.close(out_r)
        os.close(res_r)
    return monitor.result(time.monotonic() - started)


class _Monitor:
    def __init__(
        self,
        keeper: int,
        limits: Limits,
        on_output: Callable[[bytes], None],
        on_tick: Callable[[int], Halt | None],
        command: bool = False,
    ) -> None:
        self.keeper, self.limits, self.command = keeper, limits, command
        self.worker: int | None = None
        self.on_output, self.on_tick = on_output, on_tick
        self.tail = bytearray()
        self.reports: list[dict[str, Any]] = []
        self.res_buffer = b""
        self.killed_for: Status | None = None
        self.halt: Halt | None = None
        self.grace = limits.grace
        self.term_sent_at: float | None = None
        self.keeper_exited = False
        self.peak_rss = 0
        self.high_water = 0  # the largest kernel high-water mark of one process of the job
        self.wait_status: int | None = None
        self.rusage: Any = None
        try:
            self.proc: psutil.Process | None = psutil.Process(keeper)
        except psutil.NoSuchProcess:
            self.proc = None

    def watch(self, out_r: int, res_r: int, started: float) -> None:
        deadline = started + self.limits.timeout
        pidfd = os.pidfd_open(self.keeper)
        sel = selectors.DefaultSelector()
        sel.register(out_r, selectors.EVENT_READ, self._read_output)
        sel.register(res_r, selectors.EVENT_READ, self._read_report)
        sel.register(pidfd, selectors.EVENT_READ, None)
        interval = 0.01  # sample often at first so short spikes are seen, then back off
        try:
            while True:
                for key, _ in sel.select(timeout=interval):
                    if key.data is None:
                        self.keeper_exited = True
                        return self._drain(sel)
                    if not key.data(key.fd):
                        sel.unregister(key.fd)
                now = time.monotonic()
                self._sample_memory()
                halt = self.on_tick(max(self.peak_rss, self.high_water))
                if self.term_sent_at is None and (halt or now >= deadline):
                    self.killed_for = halt.status if halt else Status.TIMED_OUT
                    if halt:
                        self.halt = halt
                        self.grace = self.grace if halt.grace is None else halt.grace
                    self._signal_group(signal.SIGTERM)
                    self.term_sent_at = now
                elif self.term_sent_at is not None and now >= self.term_sent_at + self.grace:
                    self._signal_group(signal.SIGKILL)
                # Once SIGTERM is out, look often enough that SIGKILL follows the grace closely:
                # a fenced job must be dead before its lease could lapse.
                interval = min(interval * 2, 0.25 if self.term_sent_at is None else 0.02)
        finally:
            sel.close()
            os.close(pidfd)

    def _drain(self, sel: selectors.BaseSelector) -> None:
        """The keeper has exited: take what is still buffered in the pipes, without waiting on
        background processes that may hold the write ends open."""
        for key in list(sel.get_map().values()):
            if key.data is None:
                continue
            os.set_blocking(key.fd, False)
            try:
                while key.data(key.fd):
                    pass
            except BlockingIOError:
                pass

    def _read_output(self, fd: int) -> bool:
        chunk = os.read(fd, 65536)
        if not chunk:
            return False
        self.on_output(chunk)
        self.tail += chunk
        cap = self.limits.output_cap
        if len(self.tail) > 2 * cap:
            del self.tail[: len(self.tail) - cap]
        return True

    def _read_report(self, fd: int) -> bool:
        chunk = os.read(fd, 65536)
        if not chunk:
            return False
        self.res_buffer += chunk
        *lines, self.res_buffer = self.res_buffer.split(b"\n")
        for line in lines:
            with contextlib.suppress(ValueError):
                self.reports.append(json.loads(line))
        return True

    def _sample_memory(self) -> None:
        if self.proc is None:
            return
        try:
            # The job is the keeper's descendants (worker, its children, adopted orphans). The
            # keeper itself is plumbing whose pages are shared with the worker: adding its RSS
            # would count the forked Django process twice. For a command the keeper is the
            # launcher and the worker is the command itself.
            procs = self.proc.children(recursive=True)
        except psutil.Error:
            return
        # What the tree holds at once: every process's private pages, plus the file pages
        # (libc, the interpreter) of the largest one; summing plain RSS would count the shared
        # libraries once per process and bill `sh -c 'sleep 1'` twice its size.
        private, files = 0, 0
        for proc in procs:
            with contextlib.suppress(psutil.Error, OSError):
                if self.command and self._is_unexecd(proc):
                    continue
                status = _memory_status(proc.pid)
                private += status.get(b"RssAnon", 0) + status.get(b"RssShmem", 0)
                files = max(files, status.get(b"RssFile", 0))
                self.high_water = max(self.high_water, status.get(b"VmHWM", 0))
        total = private + files
        self.peak_rss = max(self.peak_rss, total)
        limit = self.limits.memory_limit
        # The high-water mark catches an allocation freed again between two samples.
        over = limit and max(total, self.high_water) > limit
        if over and self.killed_for is None:
            self.killed_for = Status.MEMORY_EXCEEDED
            self._signal_group(signal.SIGKILL)

    def _is_unexecd(self, proc: psutil.Process) -> bool:
        """The launcher's fork of the command before its exec: the launcher's pages still."""
        return proc.pid == self.worker and LAUNCHER in proc.cmdline()

    def _signal_group(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.keeper, signum)

    def stop(self) -> None:
        """Reap the keeper, give a timed-out group the rest of its grace, then SIGKILL whatever
        is left of the group (background processes the job left behind included)."""
        if not self.keeper_exited:
            self._signal_group(signal.SIGKILL)
        self._reap()
        if self.term_sent_at is not None:
            # The kernel does not reuse a pid while it names a live process group, so after
            # reaping the keeper this probe only ever sees the job's own stragglers.
            give_up = self.term_sent_at + self.grace
            while time.monotonic() < give_up:
                try:
                    os.killpg(self.keeper, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.02)
        self._signal_group(signal.SIGKILL)

    def _reap(self) -> None:
        try:
            _, self.wait_status, self.rusage = os.wait4(self.keeper, 0)
        except ChildProcessError:
            self.wait_status = 0

    def result(self, duration: float) -> AttemptResult:
        worker = next((r for r in self.reports if r.get("kind") == "exit"), {})
        error = next((r for r in self.reports if r.get("kind") == "error"), {})
        exit_code, signum = worker.get("exit_code"), worker.get("signal")
        if not worker and self.wait_status is not None and os.WIFSIGNALED(self.wait_status):
            signum = os.WTERMSIG(self.wait_status)  # the keeper itself was killed
        if self.killed_for:
            status = self.killed_for
        elif exit_code == 0:
            status = Status.SUCCEEDED
        else:
            status = Status.FAILED
        peak, added = self._peaks()
        text = bytes(self.tail[-self.limits.output_cap :]).decode("utf-8", errors="replace")
        return AttemptResult(
            status=status,
            duration=duration,
            exit_code=exit_code,
            signal=signum,
            peak_rss_bytes=peak,
            memory_added_bytes=added,
            cpu_user=self.rusage.ru_utime if self.rusage else 0.0,
            cpu_system=self.rusage.ru_stime if self.rusage else 0.0,
            output=text,
            error=self.halt.error
            if self.halt
            else error.get("error", "") or self._describe(status, exit_code, signum, text),
            traceback=error.get("traceback", ""),
        )

    def _peaks(self) -> tuple[int, int | None]:
        """(peak RSS, memory added over the worker's baseline: function tasks only).

        A command's peak is the most its tree held at once (samples) or the most one of its
        processes ever held (kernel high-water marks, from the launcher's wait4 of the command
        and of adopted orphans, and VmHWM while sampling), whichever is larger. The keeper's
        own rusage is never used for a command: it carries the launcher's pages."""
        kernel = [r.get("maxrss", 0) for r in self.reports if r.get("kind") in ("command", "exit")]
        peak = max([self.peak_rss, self.high_water, *kernel])
        if self.command:
            return peak, None
        if self.rusage is not None:
            peak = max(peak, self.rusage.ru_maxrss * 1024)  # Linux reports KiB
        baseline = next((r["rss"] for r in self.reports if r.get("kind") == "baseline"), None)
        return peak, None if baseline is None else max(0, peak - baseline)

    def _describe(
        self, status: str, exit_code: int | None, signum: int | None, output: str = ""
    ) -> str:
        if status == Status.TIMED_OUT:
            return f"timed out after {self.limits.timeout:g} s"
        if status == Status.MEMORY_EXCEEDED:
            limit, peak = self.limits.memory_limit, max(self.peak_rss, self.high_water)
            return f"memory limit of {limit} bytes exceeded (peak {peak} bytes)"
        if signum:
            return f"killed by {signal.Signals(signum).name}"
        if exit_code:
            said = error_line(output) if self.command else ""
            return f"exited with status {exit_code}" + (f": {said}" if said else "")
        if exit_code is None:
            return f"the attempt's process ended without reporting (wait status {self.wait_status})"
        return ""


ERROR_WORDS = re.compile(r"(?i)\b(fatal|error|exception|traceback)\b")
ERROR_LINE_CAP = 300


def error_line(output: str) -> str:
    """What a failed command said went wrong: the last line of its output tail naming an error
    ("PHP Fatal error:  Uncaught Error: ..."), or else its last line, shortened."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    said = next((line for line in reversed(lines) if ERROR_WORDS.search(line)), "")
    said = said or (lines[-1] if lines else "")
    return said if len(said) <= ERROR_LINE_CAP else said[: ERROR_LINE_CAP - 1] + "…"


# --- child side ---------------------------------------------------------------------------


def _read_worker_pid(res_r: int, reports: list[dict[str, Any]]) -> int | None:
    """Wait for the keeper's report of the worker's pid (the command's own, for a command);
    the worker's own reports may come first and go to `reports`."""
    line = b""
    while True:
        byte = os.read(res_r, 1)
        if not byte:
            return None  # the keeper died before forking
        line += byte
        if byte == b"\n":
            report = json.loads(line)
            if report.get("kind") == "worker":
                return int(report["pid"])
            reports.append(report)
            line = b""


def tree_memory(supervisor_pid: int) -> int | None:
    """The resident memory of a supervisor's descendants (the job's process tree), or None when
    it cannot be read (the run just ended): the "Running now" panel's live figure, read from
    outside the supervisor, which writes its own only every 10 s."""
    try:
        children = psutil.Process(supervisor_pid).children(recursive=True)
    except psutil.Error:
        return None
    total = 0
    for child in children:
        try:
            total += child.memory_info().rss
        except psutil.Error:
            continue
    return total


MEMORY_FIELDS = (b"VmHWM", b"RssAnon", b"RssFile", b"RssShmem")


def _memory_status(pid: int) -> dict[bytes, int]:
    """From /proc/PID/status, in bytes: VmHWM (the kernel's peak RSS of the process since its
    last exec) and the current RSS split into anonymous, file and shared-memory pages."""
    found = {}
    with open(f"/proc/{pid}/status", "rb") as fh:
        for line in fh:
            key, _, rest = line.partition(b":")
            if key in MEMORY_FIELDS:
                found[key] = int(rest.split()[0]) * 1024
    return found


def _keeper(
    work: Work,
    out_w: int,
    res_w: int,
    supervisor_pid: int,
    cwd: str | None,
    env: dict[str, str] | None,
) -> None:
    """Own session, die with the supervisor, fork the worker (or become the launcher of a
    command), report how it ended."""
    try:
        os.setsid()
        signal.signal(DEATH_SIGNAL, _kill_own_group)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # the worker decides; SIGKILL follows
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        _prctl(PR_SET_PDEATHSIG, DEATH_SIGNAL)
        _prctl(PR_SET_CHILD_SUBREAPER, 1)
        if os.getppid() != supervisor_pid:  # the supervisor died before prctl took effect
            _kill_own_group()
        if isinstance(work, tuple):
            _exec_launcher(work, out_w, res_w, supervisor_pid, cwd, env)
        worker = os.fork()
        if worker == 0:
            _worker(work, out_w, res_w, cwd)
        os.write(res_w, (json.dumps({"kind": "worker", "pid": worker}) + "\n").encode())
        os.close(out_w)
        report = _wait_for(worker)
        os.write(res_w, (json.dumps(report) + "\n").encode())
    finally:
        os._exit(0)


def _wait_for(worker: int) -> dict[str, Any]:
    """Reap children (adopted orphans included) until the worker itself has ended. `maxrss`
    is the largest kernel high-water mark among them (launcher.py does the same for a
    command)."""
    maxrss = 0
    while True:
        pid, status, usage = os.wait4(-1, 0)
        maxrss = max(maxrss, usage.ru_maxrss * 1024)  # Linux reports KiB
        if pid == worker:
            report = {"kind": "exit", "maxrss": maxrss}
            if os.WIFSIGNALED(status):
                return {**report, "exit_code": None, "signal": os.WTERMSIG(status)}
            return {**report, "exit_code": os.WEXITSTATUS(status), "signal": None}


def _worker(func: Callable[[], Any], out_w: int, res_w: int, cwd: str | None) -> None:
    code = 1
    try:
        for signum in (signal.SIGTERM, signal.SIGINT, DEATH_SIGNAL, signal.SIGPIPE):
            signal.signal(signum, signal.SIG_DFL)
        _job_files(out_w, cwd)
        _report_baseline(res_w)
        _rebind_std_streams()
        _detach_database_connections()
        code = _call(func, res_w)
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def _rebind_std_streams() -> None:
    """Point sys.stdout/sys.stderr, and logging handlers that wrote to them, at the pipe (fds 1
    and 2). The inherited objects may be anything (a terminal wrapper, a test's capture)."""
    old = {id(sys.stdout), id(sys.stderr), id(sys.__stdout__), id(sys.__stderr__)}
    sys.stdout = open(  # noqa: SIM115 - lives as long as the process
        1, "w", encoding="utf-8", errors="backslashreplace", buffering=1, closefd=False
    )
    sys.stderr = open(  # noqa: SIM115
        2, "w", encoding="utf-8", errors="backslashreplace", buffering=1, closefd=False
    )
    loggers = [logging.root, *logging.root.manager.loggerDict.values()]
    for logger in loggers:
        for handler in getattr(logger, "handlers", []):
            if isinstance(handler, logging.StreamHandler) and id(handler.stream) in old:
                handler.setStream(sys.stderr)


def _job_files(out_w: int, cwd: str | None) -> None:
    """The job's stdin (/dev/null), stdout and stderr (the output pipe) and working directory."""
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(out_w, 1)
    os.dup2(out_w, 2)
    os.close(out_w)
    if cwd:
        os.chdir(cwd)


def _exec_launcher(
    argv: tuple[str, ...],
    out_w: int,
    res_w: int,
    supervisor_pid: int,
    cwd: str | None,
    env: dict[str, str] | None,
) -> NoReturn:
    """Become launcher.py, the command's keeper, which runs `argv` from a small address space.
    The session, the ignored SIGTERM and SIGINT, the parent-death signal and the subreaper flag
    survive the exec; the death signal's handler does not, and the launcher installs its own."""
    keeper = (sys.executable, "-I", "-S", LAUNCHER, "--keeper", str(supervisor_pid), str(res_w))
    try:
        _job_files(out_w, cwd)
        close_inherited_files(keep=res_w)
        os.set_inheritable(res_w, True)
        os.execve(sys.executable, (*keeper, *argv), os.environ if env is None else env)
    except OSError as exc:
        _report_error(res_w, f"cannot start the launcher: {exc.strerror or exc}", "")
        report = {"kind": "exit", "maxrss": 0, "exit_code": 127, "signal": None}
        os.write(res_w, (json.dumps(report) + "\n").encode())
    os._exit(0)


def close_inherited_files(keep: int) -> None:
    """Close every descriptor above stderr but `keep`: what fork copied from the supervisor
    (the database connection's socket or file, which C libraries open without O_CLOEXEC, and
    whatever else) is no business of the command. Closing a copy leaves the supervisor's
    connection open; it is only a reference to the same socket."""
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd > 2 and fd != keep:
            # The listing's own descriptor is closed already.
            with contextlib.suppress(OSError):
                os.close(fd)


def _report_baseline(res_w: int) -> None:
    """The worker's RSS before the job runs: the forked interpreter's pages, not the job's."""
    with open("/proc/self/statm", "rb") as fh:
        rss = int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    os.write(res_w, (json.dumps({"kind": "baseline", "rss": rss}) + "\n").encode())


def _call(func: Callable[[], Any], res_w: int) -> int:
    try:
        func()
    except SystemExit as exc:
        if exc.code in (None, 0):
            return 0
        return exc.code if isinstance(exc.code, int) else 1
    except BaseException as exc:
        tb = traceback.format_exc()
        sys.stderr.write(tb)
        _report_error(res_w, f"{type(exc).__name__}: {exc}", tb)
        return 1
    finally:
        _close_database_connections()
    return 0


def _report_error(res_w: int, error: str, tb: str) -> None:
    line = json.dumps({"kind": "error", "error": error[:2000], "traceback": tb[-16000:]})
    os.write(res_w, (line + "\n").encode())


def _detach_database_connections() -> None:
    # The supervisor's read and write timeouts (db.bound_waits) are not the job's.
    db.detach_inherited_connections(reset_settings=True)


def _close_database_connections() -> None:
    if "django.db" in sys.modules:
        from django.db import connections

        connections.close_all()


def _kill_own_group(*_: Any) -> None:
    os.killpg(0, signal.SIGKILL)


def _prctl(option: int, value: int) -> None:
    if _libc.prctl(option, value, 0, 0, 0) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, os.strerror(errno))
