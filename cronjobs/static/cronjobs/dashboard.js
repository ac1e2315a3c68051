// Refresh the dashboard's content in place every minute, without reloading the page; skip
// while the tab is hidden, and keep the old content (with a note) if a refresh fails.
(function () {
  "use strict";
  const root = document.getElementById("fc-dashboard-root");
  const stamp = document.getElementById("fc-refresh");
  if (!root) return;
  const seconds = parseInt(root.dataset.refreshSeconds, 10) || 60;

  async function refresh() {
    if (document.hidden) return;
    try {
      const response = await fetch(root.dataset.partialUrl, {
        credentials: "same-origin",
        headers: { "X-Requested-With": "fetch" },
      });
      if (!response.ok || response.redirected) throw new Error("HTTP " + response.status);
      root.innerHTML = await response.text();
      stamp.textContent = "updated " + new Date().toLocaleTimeString();
    } catch (error) {
      stamp.textContent = "refresh failed (" + error.message + "), retrying";
    }
  }

  setInterval(refresh, seconds * 1000);
  document.addEventListener("visibilitychange", function () {
    if (!document.hidden) refresh();
  });
})();
