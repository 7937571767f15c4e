// Keep a page current without reloading it:
//   [data-live="10"] (with an id): every 10 s, fetch this page again and swap that region
//   [data-status-url]: every 10 s, update the state badge; say when the referral changed
// Polling pauses while the page is hidden (a phone in a pocket).
(function () {
  "use strict";
  var note = document.querySelector(".live-note");

  function say(text) {
    if (note) { note.textContent = text; note.hidden = !text; }
  }

  function every(seconds, poll) {
    var busy = false;
    setInterval(function () {
      if (document.hidden || busy) return;
      busy = true;
      poll().then(function () { say(""); }, function (err) {
        say(err && err.message === "signed out"
          ? "You have been signed out. Reload the page to sign in."
          : "Cannot reach goldenhour just now; trying again.");
      }).then(function () { busy = false; });
    }, seconds * 1000);
  }

  function get(url, accept) {
    return fetch(url, { credentials: "same-origin", headers: { "Accept": accept } })
      .then(function (response) {
        if (response.redirected || response.status === 401) throw new Error("signed out");
        if (!response.ok) throw new Error("HTTP " + response.status);
        return accept === "application/json" ? response.json() : response.text();
      });
  }

  document.querySelectorAll("[data-live][id]").forEach(function (region) {
    every(Number(region.dataset.live) || 10, function () {
      return get(location.href, "text/html").then(function (html) {
        var fresh = new DOMParser().parseFromString(html, "text/html").getElementById(region.id);
        if (fresh) region.innerHTML = fresh.innerHTML;
      });
    });
  });

  document.querySelectorAll("[data-status-url]").forEach(function (banner) {
    every(10, function () {
      return get(banner.dataset.statusUrl, "application/json").then(function (status) {
        var badge = banner.querySelector("[data-state-badge]");
        if (badge) {
          badge.textContent = status.label;
          badge.className = "badge state-" + status.state;
        }
        var changed = banner.querySelector(".changed");
        if (changed && String(status.version) !== banner.dataset.version) changed.hidden = false;
      });
    });
  });
})();
