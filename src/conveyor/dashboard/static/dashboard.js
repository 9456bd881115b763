// Live pages: every few seconds the page refetches itself and swaps #live's content,
// unless the visitor is typing, has boxes ticked, or the tab is hidden.
(function () {
  "use strict";
  var live = document.getElementById("live");
  if (!live) { return; }
  var seconds = parseFloat(live.getAttribute("data-live") || "0");
  if (!(seconds > 0)) { return; }
  function busy() {
    var active = document.activeElement;
    if (active && (active.tagName === "INPUT" || active.tagName === "SELECT" || active.tagName === "TEXTAREA")) { return true; }
    return live.querySelector("input[type=checkbox]:checked") !== null;
  }
  function refresh() {
    if (document.hidden || busy()) { return schedule(); }
    fetch(window.location.href, { headers: { "X-Conveyor-Live": "1" }, credentials: "same-origin" })
      .then(function (response) { return response.ok ? response.text() : null; })
      .then(function (html) {
        if (html) {
          var fresh = new DOMParser().parseFromString(html, "text/html").getElementById("live");
          if (fresh) {
            live.innerHTML = fresh.innerHTML;
            seconds = parseFloat(fresh.getAttribute("data-live") || "0");
          }
        }
      })
      .catch(function () {})
      .then(schedule);
  }
  function schedule() { if (seconds > 0) { window.setTimeout(refresh, seconds * 1000); } }
  schedule();
}());
