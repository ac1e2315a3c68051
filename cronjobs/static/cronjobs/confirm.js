// A form with data-confirm asks before it is sent (the buttons of a task's page): no inline
// handlers, so the pages keep to a Content-Security-Policy without 'unsafe-inline'.
(function () {
  "use strict";
  document.addEventListener("submit", function (event) {
    const question = event.target.dataset && event.target.dataset.confirm;
    if (question && !window.confirm(question)) event.preventDefault();
  });
})();
