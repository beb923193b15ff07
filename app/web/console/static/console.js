// Progressive enhancement only: every page works without it.
(function () {
  "use strict";
  document.querySelectorAll("select[data-autosubmit]").forEach(function (select) {
    select.addEventListener("change", function () { select.form.submit(); });
  });
  var rows = document.querySelector("[data-poll]");
  if (!rows) { return; }
  var url = rows.getAttribute("data-poll");
  function poll() {
    fetch(url, { headers: { "x-console-fragment": "1" }, credentials: "same-origin" })
      .then(function (response) {
        if (response.status === 401) {
          window.location = response.headers.get("x-console-sign-in") || "/console/sign-in";
          return null;
        }
        return response.ok ? response.text() : null;
      })
      .then(function (html) { if (html !== null) { rows.innerHTML = html; } })
      .catch(function () { /* the next poll tries again */ })
      .finally(function () { window.setTimeout(poll, 3000); });
  }
  window.setTimeout(poll, 3000);
})();
