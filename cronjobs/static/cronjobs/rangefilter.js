// The date range filter's behaviour (django-admin-rangefilter's inline script, moved here so the
// Content-Security-Policy needs no inline script: templates/rangefilter/date_filter.html).
// Search and Reset keep the changelist's other filters; the calendar's scripts load once.
(function () {
  "use strict";

  function go(filter, withForm) {
    const form = filter.querySelector("form");
    const query = form.querySelector("input[id$='-query-string']").value;
    const data = withForm ? new URLSearchParams(new FormData(form)).toString() : "";
    const amp = query === "?" || !data ? "" : "&"; // no leading ?& combination
    window.location = window.location.pathname + query + amp + data;
  }

  function loadScript(url) {
    return new Promise(function (resolve) {
      const script = document.createElement("script");
      script.src = url;
      script.onload = resolve;
      script.onerror = resolve;
      document.head.appendChild(script);
    });
  }

  document.querySelectorAll(".admindatefilter").forEach(function (filter) {
    filter.querySelector("input[type=submit]").addEventListener("click", function (event) {
      event.preventDefault();
      go(filter, true);
    });
    filter.querySelector("input[type=reset]").addEventListener("click", function (event) {
      event.preventDefault();
      go(filter, false);
    });
  });

  window.addEventListener("load", function () {
    if ("DateTimeShortcuts" in window) return;
    const filter = document.querySelector(".admindatefilter");
    const urls = filter ? filter.dataset.scripts.split(" ").filter(Boolean) : [];
    urls.reduce(function (chain, url) {
      return chain.then(function () { return loadScript(url); });
    }, Promise.resolve()).then(function () {
      document.querySelectorAll(".admindatefilter .datetimeshortcuts").forEach(function (el) {
        el.remove();
      });
      if ("DateTimeShortcuts" in window) window.DateTimeShortcuts.init();
    });
  });
})();
