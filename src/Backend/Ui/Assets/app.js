// SP Trace View: theme, copy, auto-refresh and keyboard shortcuts. Pages work without it.
(function () {
  "use strict";
  var root = document.documentElement;
  try {
    var saved = localStorage.getItem("sp-theme");
    if (saved === "light" || saved === "dark") root.dataset.theme = saved;
  } catch (e) { /* storage disabled: follow the system theme */ }

  function currentTheme() {
    if (root.dataset.theme) return root.dataset.theme;
    return window.matchMedia && window.matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light";
  }

  function toggleTheme() {
    var next = currentTheme() === "dark" ? "light" : "dark";
    root.dataset.theme = next;
    try { localStorage.setItem("sp-theme", next); } catch (e) { /* not kept */ }
  }

  // Geometry computed on the server travels in data attributes and is applied here through the
  // CSSOM: the Content-Security-Policy forbids inline style attributes, not element.style.
  function applyGeometry(scope) {
    scope.querySelectorAll("[data-indent]").forEach(function (el) { el.style.paddingLeft = el.dataset.indent + "px"; });
    scope.querySelectorAll("[data-left]").forEach(function (el) {
      el.style.marginLeft = el.dataset.left + "%";
      el.style.width = el.dataset.width + "%";
    });
  }

  function setUpRefresh(box) {
    var target = document.getElementById(box.dataset.refreshTarget);
    var meta = document.getElementById(box.dataset.refreshMeta);
    var timer = null;
    function refresh() {
      // The rows are swapped in place: the page does not reload, so the scroll position stays.
      fetch(window.location.href, { credentials: "same-origin", headers: { "Accept": "text/html" } })
        .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
        .then(function (html) {
          var doc = new DOMParser().parseFromString(html, "text/html");
          var rows = doc.getElementById(target.id);
          if (rows) { target.innerHTML = rows.innerHTML; applyGeometry(target); }
          var m = meta && doc.getElementById(meta.id);
          if (m) meta.textContent = m.textContent;
        })
        .catch(function () { if (meta) meta.textContent = "auto-refresh failed; retrying"; });
    }
    function apply() {
      if (timer) { clearInterval(timer); timer = null; }
      if (box.checked) timer = setInterval(refresh, 10000);
      try { localStorage.setItem("sp-auto-refresh", box.checked ? "1" : "0"); } catch (e) { /* not kept */ }
    }
    try { box.checked = localStorage.getItem("sp-auto-refresh") === "1"; } catch (e) { /* default off */ }
    box.addEventListener("change", apply);
    apply();
  }

  document.addEventListener("DOMContentLoaded", function () {
    applyGeometry(document);
    var toggle = document.getElementById("theme-toggle");
    if (toggle) toggle.addEventListener("click", toggleTheme);

    document.querySelectorAll("[data-copy-from]").forEach(function (button) {
      button.addEventListener("click", function () {
        var source = document.getElementById(button.dataset.copyFrom);
        var done = function () { button.textContent = "Copied"; setTimeout(function () { button.textContent = "Copy to clipboard"; }, 1500); };
        if (navigator.clipboard && window.isSecureContext) {
          navigator.clipboard.writeText(source.value).then(done, function () { source.select(); document.execCommand("copy"); done(); });
        } else {
          source.select(); document.execCommand("copy"); done();
        }
      });
    });

    document.querySelectorAll("[data-refresh-target]").forEach(setUpRefresh);

    document.addEventListener("keydown", function (e) {
      var t = e.target;
      if (e.ctrlKey || e.metaKey || e.altKey || (t && (t.tagName === "INPUT" || t.tagName === "TEXTAREA" || t.tagName === "SELECT"))) return;
      if (e.key === "/") {
        var search = document.querySelector("[data-shortcut='/']");
        if (search) { e.preventDefault(); search.focus(); }
      } else if (e.key === "t") {
        toggleTheme();
      }
    });
  });
})();
