// skiplock dashboard: our own small script, as progressive enhancement.
// Without it every page reads and every action works as a plain link or
// form; with it: live updates of the overview (server-sent events, or
// polling where those fail), paused while the tab is hidden; confirmations
// in a dialog instead of a page; "select all"; the theme switch.
(function () {
  "use strict";
  var root = document.documentElement;
  var THEME_KEY = "skiplock-theme";
  function applyTheme(t) {
    if (t === "light" || t === "dark") root.setAttribute("data-theme", t);
    else root.removeAttribute("data-theme");
  }
  try { applyTheme(localStorage.getItem(THEME_KEY)); } catch (e) { /* storage off */ }

  function ready(fn) {
    if (document.readyState !== "loading") fn();
    else document.addEventListener("DOMContentLoaded", fn);
  }

  ready(function () {
    // Theme: system, light, dark, in turn.
    var toggle = document.querySelector("[data-theme-toggle]");
    if (toggle) {
      var label = function () {
        var t = root.getAttribute("data-theme") || "system";
        toggle.textContent = "Theme: " + t;
      };
      toggle.hidden = false;
      label();
      toggle.addEventListener("click", function () {
        var t = root.getAttribute("data-theme");
        var next = t === "light" ? "dark" : t === "dark" ? "" : "light";
        applyTheme(next);
        try { if (next) localStorage.setItem(THEME_KEY, next); else localStorage.removeItem(THEME_KEY); } catch (e) {}
        label();
      });
    }

    // Confirmations: a dialog, then the same form goes with confirmed=1.
    document.addEventListener("submit", function (ev) {
      var form = ev.target;
      var by = ev.submitter;
      var text = (by && by.getAttribute("data-confirm")) || form.getAttribute("data-confirm");
      if (!text || form.querySelector("input[name=confirmed]")) return;
      if (!window.confirm(text)) { ev.preventDefault(); return; }
      var c = document.createElement("input");
      c.type = "hidden"; c.name = "confirmed"; c.value = "1";
      form.appendChild(c);
    });

    // Select every job on the page.
    document.addEventListener("change", function (ev) {
      var all = ev.target;
      if (!all.matches || !all.matches("[data-select-all]")) return;
      var form = all.closest("form");
      form.querySelectorAll("input[name=ids]").forEach(function (b) { b.checked = all.checked; });
    });
    document.querySelectorAll("[data-select-all]").forEach(function (b) { b.hidden = false; });

    // The toast goes away by itself.
    document.querySelectorAll("[data-toast]").forEach(function (t) {
      setTimeout(function () { t.classList.add("gone"); }, 8000);
    });

    // Live updates of the overview.
    var live = document.querySelector("[data-live]");
    if (!live) return;
    var url = live.getAttribute("data-live");
    var source = null, timer = null;
    function replace(html) { live.innerHTML = html; live.setAttribute("data-updated", String(Date.now())); }
    function poll() {
      fetch(window.location.href, { headers: { "X-Skiplock-Fragment": "overview" }, credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.text() : null; })
        .then(function (html) { if (html !== null) replace(html); })
        .catch(function () {});
    }
    function start() {
      stop();
      if (window.EventSource) {
        source = new EventSource(url, { withCredentials: true });
        source.addEventListener("overview", function (ev) { replace(ev.data); });
        source.onerror = function () {
          // Closed for good (an error status): poll instead.
          if (source && source.readyState === 2) { source = null; timer = setInterval(poll, 5000); }
        };
      } else {
        poll();
        timer = setInterval(poll, 5000);
      }
    }
    function stop() {
      if (source) { source.close(); source = null; }
      if (timer) { clearInterval(timer); timer = null; }
    }
    document.addEventListener("visibilitychange", function () {
      if (document.hidden) stop(); else start();
    });
    if (!document.hidden) start();
  });
})();
