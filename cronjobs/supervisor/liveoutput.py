"""A running attempt's output for the live view (GET /api/runs/<run_id>/output/), carried
through the database so it reads the same from any host that shares it.

The supervisor decodes the output as it arrives (bytes that are not UTF-8 become U+FFFD) and
keeps the last `cap` bytes of that text; the runner writes them with the byte count on the
running row (`history.note_output`) at most once per OUTPUT_EVERY seconds, and only when
something new was printed. The cost is one UPDATE of at most `cap` bytes per second of output
per running attempt, whatever the job prints; a job printing faster than `cap` bytes a second
is followed as its latest `cap` bytes each second (every line is in the daily log,
cronjobs/supervisor/logs.py). Offsets count bytes of that UTF-8 text (`Execution.output_from`).
"""

from __future__ import annotations

import codecs

from cronjobs.models import CONTINUATION_BYTES

# Seconds between two writes of a running attempt's output tail.
OUTPUT_EVERY = 1.0


class LiveTail:
    """The output's last `cap` bytes as UTF-8 text, and how many bytes came in all."""

    def __init__(self, cap: int):
        self.cap = cap
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.buffer = bytearray()
        self.size = 0
        self.unsaved = False  # printed since the last `take`

    def feed(self, chunk: bytes, final: bool = False) -> None:
        data = self.decoder.decode(chunk, final).encode("utf-8")
        if not data:
            return
        self.size += len(data)
        self.buffer += data
        if len(self.buffer) > 2 * self.cap:
            del self.buffer[: len(self.buffer) - self.cap]
        self.unsaved = True

    def finish(self) -> None:
        """The output ended: a character cut at its end becomes U+FFFD."""
        self.feed(b"", final=True)

    def text(self) -> str:
        """The last `cap` bytes or fewer, starting on a whole character."""
        data = bytes(self.buffer[-self.cap :]).lstrip(CONTINUATION_BYTES)
        return data.decode("utf-8")

    def take(self) -> tuple[str, int] | None:
        """(text, size) if anything was printed since the last take, else None."""
        if not self.unsaved:
            return None
        self.unsaved = False
        return self.text(), self.size
