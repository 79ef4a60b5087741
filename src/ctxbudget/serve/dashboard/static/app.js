// ctxbudget dashboard: refresh the page when new calls arrive (no external requests).
(function () {
  "use strict";
  var asof = document.getElementById("asof");
  var live = document.getElementById("live");
  if (!asof) { if (live) live.className = "off"; return; }
  var seen = asof.getAttribute("data-version");
  var editing = false;
  document.addEventListener("input", function () { editing = true; });
  function poll() {
    fetch("/api/version", { credentials: "same-origin", cache: "no-store" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (v) {
        if (live) live.className = v ? "" : "off";
        if (v && v.version && v.version !== seen && !editing) { window.location.reload(); }
      })
      .catch(function () { if (live) live.className = "off"; })
      .then(function () { window.setTimeout(poll, 3000); });
  }
  window.setTimeout(poll, 3000);
})();
