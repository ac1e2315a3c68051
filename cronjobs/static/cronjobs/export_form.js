// The export page's "Select all" box (django-import-export wires it with an inline onchange
// attribute, which the Content-Security-Policy forbids: templates/admin/import_export/export.html).
(function () {
  "use strict";
  document.querySelectorAll("input.select-toggle").forEach(function (box) {
    box.addEventListener("change", function (event) {
      if (typeof window.onSelectToggleChange === "function") window.onSelectToggleChange(event);
    });
  });
})();
