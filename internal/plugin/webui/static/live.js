// Live updates without a framework: the server sends an event when a task in view changes,
// and every element with data-live="URL" is re-rendered by the server and swapped in. Bursts
// collapse into one refresh at a time.
(function () {
  "use strict";
  var parts = document.querySelectorAll("[data-live]");
  if (!parts.length || !window.EventSource) { return; }
  var busy = false, again = false;
  function refresh() {
    if (busy) { again = true; return; }
    busy = true;
    Promise.all(Array.prototype.map.call(parts, function (el) {
      return fetch(el.getAttribute("data-live"), { cache: "no-store" })
        .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
        .then(function (html) { el.innerHTML = html; });
    })).catch(function () { /* the next event retries */ }).then(function () {
      busy = false;
      document.body.setAttribute("data-refreshed", String(Date.now()));
      if (again) { again = false; refresh(); }
    });
  }
  var events = new EventSource(document.body.getAttribute("data-events"));
  events.onopen = function () { document.body.classList.add("connected"); };
  events.onerror = function () { document.body.classList.remove("connected"); };
  events.onmessage = refresh;
})();
