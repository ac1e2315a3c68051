// A running attempt's page follows its output live: poll GET /api/runs/<run_id>/output/ for
// the bytes after what the page holds, append them without reloading, and stop once the
// attempt has ended and everything it printed is shown (docs/admin.md, "Live output").
document.addEventListener("DOMContentLoaded", function () {
  "use strict";
  const pre = document.getElementById("fc-live-output");
  const note = document.getElementById("fc-live-note");
  if (!pre || !note) return;
  const EVERY_MS = 1000;
  const RETRY_MS = 5000;
  const KEEP_CHARS = 1000000; // the page keeps the latest million characters
  let offset = parseInt(pre.dataset.offset, 10) || 0;

  function append(text) {
    if (!text) return;
    const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
    pre.appendChild(document.createTextNode(text));
    if (pre.textContent.length > KEEP_CHARS) {
      pre.textContent = "…" + pre.textContent.slice(-KEEP_CHARS / 2);
    }
    if (atBottom) pre.scrollTop = pre.scrollHeight;
  }

  function ended(body) {
    note.textContent = "attempt " + body.attempt + " ended: " + body.status + ". ";
    const link = document.createElement("a");
    link.href = pre.dataset.runUrl;
    link.textContent = body.running ? "the run goes on: its attempts" : "the run's attempts";
    note.appendChild(link);
    note.dataset.state = "ended";
  }

  async function poll() {
    let body;
    try {
      const response = await fetch(pre.dataset.url + "&offset=" + offset, {
        credentials: "same-origin",
        headers: { Accept: "application/json" },
      });
      body = await response.json();
      if (!response.ok) throw new Error(body.error || "HTTP " + response.status);
    } catch (error) {
      note.textContent = "update failed (" + error.message + "), retrying";
      setTimeout(poll, RETRY_MS);
      return;
    }
    if (body.skipped > 0) {
      append("\n[… " + body.skipped + " bytes not shown here: the daily log has every line …]\n");
    }
    append(body.text);
    offset = body.offset;
    if (offset < body.size) {
      setTimeout(poll, 0); // more is held than one answer carries: read on at once
    } else if (body.status !== "running") {
      ended(body);
    } else {
      note.textContent = "following the output live, " + offset + " bytes so far";
      setTimeout(poll, EVERY_MS);
    }
  }

  setTimeout(poll, EVERY_MS);
});
