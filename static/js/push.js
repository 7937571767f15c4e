// "Page me on this device": registers the service worker (/sw.js) and, on the button's
// tap (browsers ask for notification permission only then), subscribes this browser
// to Web Push with the server's VAPID key and sends the subscription to
// POST /push/subscriptions (CSRF token in the X-CSRFToken header).
//   #push-pages[data-vapid-key][data-subscribe-url][data-csrf]  the button's box
(function () {
  "use strict";
  var box = document.getElementById("push-pages");
  if (!box || !("serviceWorker" in navigator) || !("PushManager" in window)) return;
  var button = box.querySelector("button"), note = box.querySelector("[data-push-note]");
  box.hidden = false;

  function key(base64url) {
    var raw = atob(base64url.replace(/-/g, "+").replace(/_/g, "/"));
    var bytes = new Uint8Array(raw.length);
    for (var i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
    return bytes;
  }

  function say(text) { note.textContent = text; }

  button.addEventListener("click", function () {
    button.disabled = true;
    navigator.serviceWorker.register("/sw.js", { scope: "/" })
      .then(function () { return navigator.serviceWorker.ready; })
      .then(function (registration) {
        return registration.pushManager.subscribe({
          userVisibleOnly: true, applicationServerKey: key(box.dataset.vapidKey) });
      })
      .then(function (subscription) {
        return fetch(box.dataset.subscribeUrl, {
          method: "POST", credentials: "same-origin",
          headers: { "Content-Type": "application/json", "X-CSRFToken": box.dataset.csrf },
          body: JSON.stringify(subscription.toJSON()) });
      })
      .then(function (response) {
        if (!response.ok) throw new Error("the server answered " + response.status);
        say("This device now gets pages as notifications.");
      })
      .catch(function (error) {
        button.disabled = false;
        say("Could not turn on notifications here: " + error.message);
      });
  });
})();
