// The "Running now" panel: ask /api/running/ every few seconds (while the tab is visible) and
// redraw the rows; the rest of the page is left alone.
(function () {
  "use strict";
  const panel = document.getElementById("fc-running");
  if (!panel) return;
  const rows = document.getElementById("fc-running-rows");
  const stamp = document.getElementById("fc-running-stamp");
  const seconds = parseInt(panel.dataset.refreshSeconds, 10) || 5;

  function cell(text, className) {
    const td = document.createElement("td");
    td.textContent = text;
    if (className) td.className = className;
    return td;
  }

  function mib(bytes) {
    return bytes === null || bytes === undefined ? "-" : (bytes / 1048576).toFixed(1) + " MiB";
  }

  function duration(total) {
    const s = Math.round(total);
    if (s < 120) return s + " s";
    if (s < 7200) return Math.floor(s / 60) + " min " + (s % 60) + " s";
    return Math.floor(s / 3600) + " h " + Math.floor((s % 3600) / 60) + " min";
  }

  function draw(running) {
    rows.replaceChildren();
    if (!running.length) {
      const empty = cell("Nothing is running.", "fc-muted");
      empty.colSpan = 8;
      rows.appendChild(document.createElement("tr")).appendChild(empty);
      return;
    }
    for (const run of running) {
      const tr = document.createElement("tr");
      tr.dataset.task = run.task;
      tr.append(
        cell(run.task),
        cell(run.host),
        cell(String(run.pid ?? "-"), "fc-num"),
        cell(run.attempt + " of " + run.max_attempts, "fc-num"),
        cell(new Date(run.started_at).toLocaleTimeString()),
        cell(duration(run.elapsed_seconds) + " / " + duration(run.timeout_seconds), "fc-num"),
        cell(mib(run.memory_bytes) + (run.memory_source === "live" ? "" : " (last written)"), "fc-num"),
        cell(run.stop_requested_by ? "stop requested by " + run.stop_requested_by : "-")
      );
      rows.appendChild(tr);
    }
  }

  async function refresh() {
    if (document.hidden) return;
    try {
      const response = await fetch(panel.dataset.url, { credentials: "same-origin" });
      if (!response.ok) throw new Error("HTTP " + response.status);
      draw((await response.json()).running);
      stamp.textContent = "updated " + new Date().toLocaleTimeString();
    } catch (error) {
      stamp.textContent = "refresh failed (" + error.message + "), retrying";
    }
  }

  refresh();
  setInterval(refresh, seconds * 1000);
  document.addEventListener("visibilitychange", function () {
    if (!document.hidden) refresh();
  });
})();
