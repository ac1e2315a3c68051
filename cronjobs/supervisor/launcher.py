"""Run a command task's argv and report its kernel memory high-water mark (docs/operations.md,
"Memory figures").

The worker is a fork of the loaded Django process, and Linux carries a process's peak RSS
across exec (signal->maxrss), so exec'ing the command straight from the worker would bill
every command for ~40 MiB of interpreter pages it never used. The worker therefore execs this
file with a bare interpreter (`python -I -S`, stdlib only, no Django); its fork of the command
starts from a small address space, and wait4's ru_maxrss for that child is the command's own,
except that it too carries what the fork copied from this launcher (about 8 MiB). So the figure
is reported only when it is above the launcher's own RSS at fork time: below that it says
nothing about the command, whose memory the supervisor's samples and VmHWM readings show.

    python -I -S launcher.py REPORT_FD ARGV...

Writes one JSON line to REPORT_FD ({"kind": "command", "maxrss": bytes} or an exec error) and
ends the way the command ended (same exit status, or the same signal).

Every start of a command pays for this file, so it imports nothing the bare interpreter has not
loaded already: `signal` would import `enum` and `json` would import `re`, which together
doubled its CPU (about 9 ms without them, 20 ms with, on the benchmark machine). `_signal` is
the C module under `signal`, and the report is written by hand.
"""

import _signal  # type: ignore[import-not-found]  # CPython's C module, no stub
import os
import sys

SIGTERM, SIGINT = 15, 2  # the same on every Linux architecture


def main() -> None:
    report_fd, argv = int(sys.argv[1]), sys.argv[2:]
    # Timeouts signal the whole process group: the command decides, and we follow its fate.
    _signal.signal(SIGTERM, _signal.SIG_IGN)
    _signal.signal(SIGINT, _signal.SIG_IGN)
    floor = _own_rss()
    child = os.fork()
    if child == 0:
        _exec(argv, report_fd)
    _, status, usage = os.wait4(child, 0)
    maxrss = usage.ru_maxrss * 1024  # Linux reports KiB
    report = f'{{"kind": "command", "maxrss": {maxrss if maxrss > floor else 0}}}\n'
    os.write(report_fd, report.encode())
    if os.WIFSIGNALED(status):
        signum = os.WTERMSIG(status)
        _signal.signal(signum, _signal.SIG_DFL)
        os.kill(os.getpid(), signum)
    os._exit(os.WEXITSTATUS(status))


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
        os.set_inheritable(report_fd, False)
        # The worker left only the report pipe (closed by the exec); be sure of it.
        os.closerange(3, report_fd)
        os.closerange(report_fd + 1, os.sysconf("SC_OPEN_MAX"))
        os.execvp(argv[0], argv)
    except OSError as exc:
        error = f"cannot run {argv[0]!r}: {exc.strerror or exc}"
        os.write(report_fd, f'{{"kind": "error", "error": {_quoted(error)}}}\n'.encode())
    os._exit(127)


def _quoted(text: str) -> str:
    """`text` as a JSON string (what json.dumps would write, non-ASCII left as it is)."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + "".join(c if ord(c) >= 0x20 else f"\\u{ord(c):04x}" for c in escaped) + '"'


if __name__ == "__main__":
    main()
