// The on-call dashboard refreshes its live regions in place, without a full reload. The page works
// without this script: every form is a plain POST followed by a redirect.
(function () {
  "use strict";

  var EVERY_MS = 5000;
  var regions = Array.prototype.slice.call(document.querySelectorAll("[data-fragment]"));
  var live = document.getElementById("live");
  var state = document.getElementById("refresh-state");
  var seen = new Map();  // region id → its last HTML, CSRF tokens left out (they change on every render)

  // Set once per page load: a test (or a curious person) can tell a swap from a reload.
  window.oncallLoadedAt = Date.now();
  window.oncallRefreshes = 0;

  Array.prototype.forEach.call(document.querySelectorAll(".js-only"), function (el) { el.hidden = false; });

  function comparable(html) {
    return html.replace(/name="csrfmiddlewaretoken" value="[^"]*"/g, "");
  }

  function dirty(field) {
    if (field.type === "checkbox" || field.type === "radio") return field.checked !== field.defaultChecked;
    if (field.tagName === "SELECT") {
      return Array.prototype.some.call(field.options, function (o) { return o.selected !== o.defaultSelected; });
    }
    if (field.type === "hidden" || field.type === "submit") return false;
    return field.value !== field.defaultValue;
  }

  // A region someone is working in is left alone: a focused field, or one they have changed.
  function busy(region) {
    var active = document.activeElement;
    if (active && active !== document.body && region.contains(active) && active.closest("form")) return true;
    return Array.prototype.some.call(region.querySelectorAll("input, textarea, select"), dirty);
  }

  function summaries() {
    return regions.map(function (region) {
      var summary = region.querySelector(".summary");
      return summary ? summary.textContent.trim() : "";
    }).join(" ");
  }

  function refresh(region) {
    if (busy(region)) return Promise.resolve(false);
    return fetch(region.getAttribute("data-fragment"), {credentials: "same-origin", cache: "no-store"})
      .then(function (response) {
        // Signed out (or no longer staff): the fragment URL answers with the login page or 403.
        if (!response.ok || response.redirected) throw new Error("HTTP " + response.status);
        return response.text();
      })
      .then(function (html) {
        var key = comparable(html);
        if (busy(region) || seen.get(region.id) === key) return false;
        seen.set(region.id, key);
        region.innerHTML = html;
        return true;
      });
  }

  function tick() {
    if (document.hidden) { schedule(); return; }
    var before = summaries();
    Promise.all(regions.map(refresh))
      .then(function () {
        window.oncallRefreshes += 1;
        var after = summaries();
        if (live && after !== before) live.textContent = after;
        if (state) state.textContent = "Updated at " + new Date().toLocaleTimeString() + ".";
      })
      .catch(function (error) {
        if (state) state.textContent = "Refresh failed (" + error.message + "); retrying. Reload the page if it persists.";
      })
      .then(schedule);
  }

  function schedule() { window.setTimeout(tick, EVERY_MS); }

  regions.forEach(function (region) { seen.set(region.id, comparable(region.innerHTML)); });
  if (regions.length && window.fetch) schedule();
})();
