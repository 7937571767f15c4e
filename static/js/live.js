// Keep a page current without reloading it (views/live.py sends the events):
//   #live-status[data-live-stream]  the page's event stream, the mark it starts from
//                                   (data-live-last, data-live-paging) and the server's
//                                   "now" (data-server-now), so clocks tick from its time
//   [data-live-part][id]            swapped for the same part of a fresh copy of the page
//                                   when the stream says something changed (left alone,
//                                   with a note, while the user is typing in it; a form
//                                   the user opened stays open)
//   [data-since] / [data-closes]    clocks counting up from / down to an ISO UTC instant
//   [data-countdown]                "in 3 min" to an instant (the next paging step)
//   [data-window-warning]           filled when a treatment window closes within 30 min
// The page says when it last heard from the server; after 30 s of silence it says the
// screen is out of date and turns its forms off until it hears again. The stream is
// closed while the page is hidden (a phone in a pocket, so its session can time out)
// and falls back to polling where EventSource fails.
(function () {
  "use strict";
  var status = document.getElementById("live-status");
  if (!status) return;
  var STALE_MS = (Number(status.dataset.staleAfter) || 30) * 1000, POLL_MS = 5000;
  var WARN_MINUTES = 30;
  var streamUrl = status.dataset.liveStream;
  var last = status.dataset.liveLast || "0", paging = status.dataset.livePaging || "";
  var offset = Date.parse(status.dataset.serverNow) - Date.now();
  var heardAt = Date.now(), isStale = false, signedOut = false;
  var source = null, poller = null, failures = 0, opened = false, retry = null;
  var refreshing = false, again = false, mode = "stream";
  var staleBox = document.querySelector("[data-live-stale]");
  var changedNote = document.querySelector("[data-live-changed]");
  var ukTime = new Intl.DateTimeFormat("en-GB", { timeZone: "Europe/London", hour: "2-digit",
    minute: "2-digit", second: "2-digit", hourCycle: "h23" });

  function serverNow() { return Date.now() + offset; }

  // As the server's duration filter: "47 min", "3 h 05 min", "-12 min".
  function duration(minutes) {
    var sign = minutes < 0 ? "-" : "", m = Math.abs(minutes);
    if (m < 60) return sign + m + " min";
    var rest = m % 60;
    return sign + Math.floor(m / 60) + " h " + (rest < 10 ? "0" : "") + rest + " min";
  }

  function tick() {
    var at = serverNow(), closing = [];
    document.querySelectorAll("[data-since]").forEach(function (el) {
      el.textContent = duration(Math.floor((at - Date.parse(el.dataset.since)) / 60000));
    });
    document.querySelectorAll("[data-closes]").forEach(function (el) {
      var left = Math.floor((Date.parse(el.dataset.closes) - at) / 60000);
      el.textContent = (el.dataset.prefix || "") + (left > 0 ? duration(left) : "closed");
      var row = el.closest("tr");
      if (row) { row.classList.toggle("open", left > 0); row.classList.toggle("shut", left <= 0); }
      if (el.classList.contains("clock")) {
        el.classList.toggle("closed", left <= 0);
        el.classList.toggle("short", left > 0 && left < 60);
      }
      if (el.dataset.label && left > 0 && left <= WARN_MINUTES) {
        closing.push(el.dataset.label + " window closes in " + duration(left) +
                     " (at " + el.dataset.closesLocal + ").");
      }
    });
    document.querySelectorAll("[data-countdown]").forEach(function (el) {
      var seconds = Math.round((Date.parse(el.dataset.countdown) - at) / 1000);
      el.textContent = seconds <= 0 ? "(now)" : seconds < 60 ? "(in " + seconds + " s)"
        : "(in " + duration(Math.floor(seconds / 60)) + ")";
    });
    var warning = document.querySelector("[data-window-warning]");
    if (warning) { warning.textContent = closing.join(" "); warning.hidden = !closing.length; }
    if (!document.hidden && !signedOut && Date.now() - heardAt > STALE_MS) stale(true);
  }

  // --- Out of date: say so, and turn the page's forms off until it hears again ------------
  function stale(on) {
    if (on === isStale || (signedOut && !on)) return;
    isStale = on;
    if (staleBox) staleBox.hidden = !on;
    status.classList.toggle("stale", on);
    document.body.classList.toggle("screen-stale", on);
    if (on) {
      document.querySelectorAll("main form button, main form input, main form select, " +
                                "main form textarea").forEach(function (el) {
        if (!el.disabled && el.type !== "hidden") { el.disabled = true; el.dataset.staleOff = "1"; }
      });
    } else {
      document.querySelectorAll("[data-stale-off]").forEach(function (el) {
        el.disabled = false; delete el.dataset.staleOff;
      });
    }
  }

  function heard(at) {
    heardAt = Date.now();
    var server = Date.parse(at);
    if (!isNaN(server)) offset = server - Date.now();
    var text = ukTime.format(new Date(serverNow()));
    var shown = status.querySelector("[data-live-heard]");
    if (shown) shown.textContent = text;
    var since = staleBox && staleBox.querySelector("[data-live-stale-since]");
    if (since) since.textContent = text;
    stale(false);
  }

  function sayOut(message) {
    stale(true);
    signedOut = true;  // stays out of date: reloading is the way back
    if (staleBox) staleBox.textContent = message;
  }

  // --- Swapping the changed parts in ------------------------------------------------------
  function dirty(part) {
    var active = document.activeElement;
    if (active && active !== document.body && part.contains(active) &&
        /^(INPUT|TEXTAREA|SELECT)$/.test(active.tagName)) return true;
    return Array.prototype.some.call(part.querySelectorAll("input, textarea, select"), function (el) {
      if (el.type === "hidden" || el.type === "submit") return false;
      if (el.type === "checkbox" || el.type === "radio") return el.checked !== el.defaultChecked;
      if (el.tagName === "SELECT") {
        // With no option marked selected, a single select shows its first one: that is
        // how it came, not a choice ("Choose…").
        var marked = Array.prototype.some.call(el.options, function (o) { return o.defaultSelected; });
        return Array.prototype.some.call(el.options, function (o, i) {
          return o.selected !== (marked ? o.defaultSelected : !el.multiple && i === 0);
        });
      }
      return el.value !== el.defaultValue;
    });
  }

  // A form the user opened or closed (a <details>) stays so in the fresh copy: a swap
  // must not shut the form under their finger. Matched by id, else by class (each
  // action's is its own), else by position; a new one comes as the server sends it.
  function keepOpen(old, node) {
    var was = {};
    function key(d, i) { return d.id || d.className || String(i); }
    old.querySelectorAll("details").forEach(function (d, i) { was[key(d, i)] = d.open; });
    node.querySelectorAll("details").forEach(function (d, i) {
      if (Object.prototype.hasOwnProperty.call(was, key(d, i))) d.open = was[key(d, i)];
    });
  }

  function refresh() {
    if (refreshing) { again = true; return; }
    refreshing = true;
    fetch(location.href, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (response) {
        if (response.redirected || response.status === 401) throw new Error("signed out");
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.text();
      })
      .then(function (html) {
        var fresh = new DOMParser().parseFromString(html, "text/html"), kept = false;
        document.querySelectorAll("[data-live-part][id]").forEach(function (part) {
          var next = fresh.getElementById(part.id);
          if (!next) return;
          if (dirty(part)) { kept = true; return; }
          var node = document.importNode(next, true);
          keepOpen(part, node);
          part.replaceWith(node);
          if (window.goldenhourShowIf) window.goldenhourShowIf(node);
        });
        if (changedNote) changedNote.hidden = !kept;
        var mark = fresh.getElementById("live-status");
        if (mark) { last = mark.dataset.liveLast || last; paging = mark.dataset.livePaging || ""; }
        tick();
      })
      .catch(function (err) {
        if (err && err.message === "signed out") sayOut("You have been signed out. Reload the page to sign in.");
        else again = true;  // try again shortly: the stream will not say it twice
      })
      .then(function () {
        refreshing = false;
        if (again) { again = false; setTimeout(refresh, 1000); }
      });
  }

  // --- Listening: the stream, or polling where it fails ------------------------------------
  function markQuery() {
    return "last=" + encodeURIComponent(last) + "&paging=" + encodeURIComponent(paging);
  }

  function connect() {
    clearTimeout(retry);
    if (signedOut || document.hidden || source || poller) return;
    if (!window.EventSource) { startPolling(); return; }
    source = new EventSource(streamUrl + "?" + markQuery());
    source.onopen = function () { opened = true; failures = 0; };
    source.addEventListener("heartbeat", function (e) { heard(JSON.parse(e.data).at); });
    source.addEventListener("change", function (e) {
      var data = JSON.parse(e.data);
      heard(data.at);
      refresh();
    });
    source.addEventListener("end", function () { disconnect(); connect(); });
    source.addEventListener("signed-out", function () {
      disconnect();
      sayOut("You have been signed out. Reload the page to sign in.");
    });
    source.onerror = function () {
      disconnect();
      failures += 1;
      if (!opened && failures >= 3) { startPolling(); return; }
      retry = setTimeout(connect, Math.min(2000 * failures, 10000));
    };
  }

  function disconnect() {
    if (source) { source.close(); source = null; }
    if (poller) { clearInterval(poller); poller = null; }
  }

  function poll() {
    if (document.hidden) return;
    fetch(streamUrl + "?once=1&" + markQuery(), { credentials: "same-origin",
                                                  headers: { "Accept": "application/json" } })
      .then(function (response) {
        if (response.status === 401 || response.redirected) throw new Error("signed out");
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.json();
      })
      .then(function (data) { heard(data.at); if (data.changed) refresh(); })
      .catch(function (err) {
        if (err && err.message === "signed out") { disconnect(); sayOut("You have been signed out. Reload the page to sign in."); }
      });
  }

  function startPolling() {
    mode = "poll";
    if (poller) return;
    poller = setInterval(poll, POLL_MS);
    poll();
  }

  document.addEventListener("visibilitychange", function () {
    if (document.hidden) { disconnect(); return; }
    tick();
    if (mode === "poll") startPolling(); else connect();
  });
  setInterval(tick, 1000);
  tick();
  connect();
})();
