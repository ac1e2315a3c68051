"""The keeper of a command task: run its argv, reap what it leaves behind, and report its kernel
memory high-water mark (docs/operations.md, "Memory figures").

process.py forks a keeper from the loaded Django process; for a command the keeper sets up its
session, parent-death signal, subreaper flag and file descriptors, then execs this file with a
bare interpreter (`python -I -S`, stdlib only, no Django), which goes on as the keeper:

    python -I -S launcher.py --keeper SUPERVISOR_PID REPORT_FD ARGV...

Why exec: Linux carries a process's peak RSS across exec (signal->maxrss), so exec'ing the
command from a fork of the supervisor would bill every command for ~40 MiB of interpreter pages
it never used, and a keeper that stays a fork of the supervisor keeps the supervisor's pages it
later dirties (about 5 MiB private per running job). This keeper's fork of the command starts
from a small address space, and wait4's ru_maxrss for that child is the command's own, except
that it too carries what the fork copied from this launcher (about 8 MiB). So the figure is
reported only when it is above the launcher's own RSS at fork time: below that it says nothing
about the command, whose memory the supervisor's samples and VmHWM readings show.

The parent-death signal and the subreaper flag survive exec; the signal's handler does not, so it
is installed again here, and the supervisor's pid is checked again in case it died in between.
Writes JSON lines to REPORT_FD: {"kind": "worker", "pid": <the command's pid>} first, then
{"kind": "command", "maxrss": bytes} and {"kind": "exit", "maxrss": <the adopted orphans' peak>,
"exit_code": ..., "signal": ...} when the command has ended (or an exec error from the command's
fork), and exits 0.

Every start of a command pays for this file, so it imports nothing the bare interpreter has not
loaded already: `signal` would import `enum` and `json` would import `re`, which together
doubled its CPU (about 9 ms without them, 20 ms with, on the benchmark machine). `_signal` is
the C module under `signal`, and the reports are written by hand.
"""

import _signal  # type: ignore[import-not-found]  # CPython's C module, no stub
import os
import sys

SIGTERM, SIGINT, SIGKILL = _signal.SIGTERM, _signal.SIGINT, _signal.SIGKILL
# process.DEATH_SIGNAL: SIGTERM is taken by timeouts, which the keeper ignores.
DEATH_SIGNAL = _signal.SIGUSR2


def main() -> None:
    if len(sys.argv) < 5 or sys.argv[1] != "--keeper":
        sys.exit("usage: launcher.py --keeper SUPERVISOR_PID REPORT_FD ARGV...")
    supervisor, report_fd, argv = int(sys.argv[2]), int(sys.argv[3]), sys.argv[4:]
    _signal.signal(DEATH_SIGNAL, _kill_own_group)
    if os.getppid() != supervisor:  # the supervisor died before the handler was back
        _kill_own_group()
    # Timeouts signal the whole process group: the command decides, and SIGKILL follows. (The
    # forked keeper ignored them already, which exec keeps; this file does not rely on it.)
    _signal.signal(SIGTERM, _signal.SIG_IGN)
    _signal.signal(SIGINT, _signal.SIG_IGN)
    floor = _own_rss()
    command = os.fork()
    if command == 0:
        _exec(argv, report_fd)
    _report(report_fd, f'"kind": "worker", "pid": {command}')
    status, maxrss, orphans = _reap(command)
    _report(report_fd, f'"kind": "command", "maxrss": {maxrss if maxrss > floor else 0}')
    if os.WIFSIGNALED(status):
        ended = f'"exit_code": null, "signal": {os.WTERMSIG(status)}'
    else:
        ended = f'"exit_code": {os.WEXITSTATUS(status)}, "signal": null'
    _report(report_fd, f'"kind": "exit", "maxrss": {orphans}, {ended}')
    os._exit(0)


def _reap(command: int) -> tuple[int, int, int]:
    """Reap children until the command ends: its wait status, its kernel peak RSS and the
    largest peak among the orphans reaped meanwhile (the keeper is their subreaper)."""
    orphans = 0
    while True:
        pid, status, usage = os.wait4(-1, 0)
        maxrss = usage.ru_maxrss * 1024  # Linux reports KiB
        if pid == command:
            return status, maxrss, orphans
        orphans = max(orphans, maxrss)


def _kill_own_group(*_: object) -> None:
    os.killpg(0, SIGKILL)


def _own_rss() -> int:
    with open("/proc/self/status", "rb") as fh:
        for line in fh:
            if line.startswith(b"VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def _exec(argv: list[str], report_fd: int) -> None:
    try:
        _signal.signal(SIGTERM, _signal.SIG_DFL)
        _signal.signal(SIGINT, _signal.SIG_DFL)
        # Python ignores these at start-up and exec keeps an ignored signal: without this,
        # `yes | head -1` in a command would get write errors instead of ending quietly.
        _signal.signal(_signal.SIGPIPE, _signal.SIG_DFL)
        _signal.signal(_signal.SIGXFSZ, _signal.SIG_DFL)
        os.set_inheritable(report_fd, False)
        # The keeper left only the report pipe (closed by the exec); be sure of it.
        os.closerange(3, report_fd)
        os.closerange(report_fd + 1, os.sysconf("SC_OPEN_MAX"))
        os.execvp(argv[0], argv)
    except OSError as exc:
        error = f"cannot run {argv[0]!r}: {exc.strerror or exc}"
        _report(report_fd, f'"kind": "error", "error": {_quoted(error)}')
    os._exit(127)


def _report(report_fd: int, fields: str) -> None:
    """One JSON line; a pipe write under PIPE_BUF is atomic, so lines never interleave."""
    os.write(report_fd, ("{" + fields + "}\n").encode())


def _quoted(text: str) -> str:
    """`text` as a JSON string (what json.dumps would write, non-ASCII left as it is)."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + "".join(c if ord(c) >= 0x20 else f"\\u{ord(c):04x}" for c in escaped) + '"'


if __name__ == "__main__":
    main()
