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

  // Each step's failure, said as what it means for the person and what still works.
  var STILL = " Pages still reach you by SMS and calls.";
  function failed(step, error) {
    var why = error && error.message ? " (" + error.message + ")" : "";
    var what = {
      register: "This browser could not install the app's service worker" + why + ".",
      permission: "Notifications are blocked for this site: allow them in the browser's " +
        "site settings, then try again.",
      subscribe: "This browser could not subscribe to its push service" + why + ": " +
        "it may be offline, in private mode, or without a push service.",
      server: "goldenhour could not save this device" + why + ": try again shortly."
    }[step];
    return { step: step, message: what + STILL };
  }

  function at(step) {
    return function (error) { throw error && error.step ? error : failed(step, error); };
  }

  button.addEventListener("click", function () {
    button.disabled = true;
    navigator.serviceWorker.register("/sw.js", { scope: "/" })
      .then(function () { return navigator.serviceWorker.ready; })
      .catch(at("register"))
      .then(function (registration) {
        return Promise.resolve(Notification.permission === "granted" ? "granted"
                               : Notification.requestPermission())
          .then(function (answer) {
            if (answer !== "granted") throw failed("permission");
            return registration;
          });
      })
      .then(function (registration) {
        return registration.pushManager.subscribe({
          userVisibleOnly: true, applicationServerKey: key(box.dataset.vapidKey) })
          .catch(at("subscribe"));
      })
      .then(function (subscription) {
        return fetch(box.dataset.subscribeUrl, {
          method: "POST", credentials: "same-origin",
          headers: { "Content-Type": "application/json", "X-CSRFToken": box.dataset.csrf },
          body: JSON.stringify(subscription.toJSON()) })
          .then(function (response) {
            if (!response.ok) throw new Error("the server answered " + response.status);
          })
          .catch(at("server"));
      })
      .then(function () {
        say("This device now gets pages as notifications.");
      })
      .catch(function (error) {
        button.disabled = false;
        say(error && error.step ? error.message : failed("subscribe", error).message);
      });
  });
})();
