// Read receipts for the referral's thread (views/referrals.py read_messages): while the
// page is visible and the thread is on the screen, tell the server the newest message
// shown, once per new message. live.js swaps #thread for a fresh copy when the stream
// says something changed, so the thread is looked up again on every check.
(function () {
  "use strict";
  var reported = 0, sending = false;

  function onScreen(el) {
    var box = el.getBoundingClientRect();
    return box.bottom > 0 && box.top < (window.innerHeight || document.documentElement.clientHeight)
      && box.height > 0;
  }

  function check() {
    var thread = document.getElementById("thread");
    if (!thread || !thread.dataset.readUrl || sending || document.hidden || !onScreen(thread)) return;
    var newest = 0;
    thread.querySelectorAll("[data-event-id]").forEach(function (el) {
      if (onScreen(el)) newest = Math.max(newest, Number(el.dataset.eventId) || 0);
    });
    if (newest <= reported) return;
    sending = true;
    fetch(thread.dataset.readUrl, {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": thread.dataset.csrf },
      body: JSON.stringify({ through: newest })
    }).then(function (response) { if (response.ok) reported = newest; })
      .catch(function () { /* tried again on the next check */ })
      .then(function () { sending = false; });
  }

  document.addEventListener("visibilitychange", check);
  window.addEventListener("scroll", check, { passive: true });
  setInterval(check, 500);
  check();
})();
