// The "Running now" panel: ask /api/running/ every few seconds (while the tab is visible) and
// redraw the rows; the rest of the page is left alone. For users who may change tasks, each
// row has a Stop button: a POST form (with the CSRF token) to the task's stop action, after a
// confirmation naming the task, run and host.
(function () {
  "use strict";
  const panel = document.getElementById("fc-running");
  if (!panel) return;
  const rows = document.getElementById("fc-running-rows");
  const stamp = document.getElementById("fc-running-stamp");
  const seconds = parseInt(panel.dataset.refreshSeconds, 10) || 5;
  const zone = panel.dataset.timeZone || undefined;

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

  // The pages' one format: 2026-12-06 21:31 UTC, in the project's time zone.
  function when(iso) {
    const options = {
      timeZone: zone, year: "numeric", month: "2-digit", day: "2-digit",
      hour: "2-digit", minute: "2-digit", hourCycle: "h23", timeZoneName: "short",
    };
    let parts;
    try {
      parts = new Intl.DateTimeFormat("en-GB", options).formatToParts(new Date(iso));
    } catch (error) {  // a zone this browser does not know: its own
      delete options.timeZone;
      parts = new Intl.DateTimeFormat("en-GB", options).formatToParts(new Date(iso));
    }
    const p = Object.fromEntries(parts.map((part) => [part.type, part.value]));
    return p.year + "-" + p.month + "-" + p.day + " " + p.hour + ":" + p.minute + " " + p.timeZoneName;
  }

  function stopCell(run) {
    const td = document.createElement("td");
    if (run.stop_requested_by) {
      td.textContent = "stop requested by " + run.stop_requested_by;
      return td;
    }
    if (!panel.dataset.stopUrl) {
      td.textContent = "-";
      return td;
    }
    const form = document.createElement("form");
    form.method = "post";
    form.action = panel.dataset.stopUrl.replace("__task__", encodeURIComponent(run.task));
    form.className = "fc-stop-form";
    for (const [name, value] of [["csrfmiddlewaretoken", panel.dataset.csrf], ["next", panel.dataset.next]]) {
      const input = document.createElement("input");
      input.type = "hidden";
      input.name = name;
      input.value = value || "";
      form.appendChild(input);
    }
    const button = document.createElement("button");
    button.type = "submit";
    button.className = "button fc-stop";
    button.textContent = "Stop";
    button.title = "Stop " + run.task + " (run " + run.run_id.slice(0, 8) + ")";
    form.appendChild(button);
    form.addEventListener("submit", function (event) {
      const question = "Stop " + run.task + ", run " + run.run_id.slice(0, 8) + " (attempt " +
        run.attempt + ") on " + run.host + "? The job gets SIGTERM, then SIGKILL after its grace.";
      if (!window.confirm(question)) event.preventDefault();
    });
    td.appendChild(form);
    return td;
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
        cell(run.task, "fc-task"),
        cell(run.host),
        cell(String(run.pid ?? "-"), "fc-num"),
        cell(run.attempt + " of " + run.max_attempts, "fc-num"),
        cell(when(run.started_at)),
        cell(duration(run.elapsed_seconds) + " / " + duration(run.timeout_seconds), "fc-num"),
        cell(mib(run.memory_bytes) + (run.memory_source === "live" ? "" : " (last written)"), "fc-num"),
        stopCell(run)
      );
      rows.appendChild(tr);
    }
  }

  async function refresh() {
    if (document.hidden) return;
    try {
      const response = await fetch(panel.dataset.url, { credentials: "same-origin" });
      if (!response.ok) throw new Error("HTTP " + response.status);
      const body = await response.json();
      draw(body.running);
      stamp.textContent = "updated " + when(body.generated_at) + ", every " + seconds + " s";
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
