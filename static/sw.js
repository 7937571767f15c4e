// The service worker (served at /sw.js, scope "/"): shows a page that arrives by Web
// Push and opens its link when tapped. A push names a referral's reference, its
// specialty and the link, never the patient (integrations/pager/webpush.py).
"use strict";

self.addEventListener("push", function (event) {
  var page = {};
  try { page = event.data ? event.data.json() : {}; } catch (e) { page = {}; }
  var title = page.title || "goldenhour page";
  event.waitUntil(self.registration.showNotification(title, {
    body: "Tap to open and accept.",
    tag: page.reference || "goldenhour-page",
    renotify: true,
    requireInteraction: true,
    icon: "/static/img/icon-192.png",
    data: { url: page.url || "/pager" }
  }));
});

self.addEventListener("notificationclick", function (event) {
  event.notification.close();
  var url = new URL((event.notification.data || {}).url || "/pager", self.location.origin);
  event.waitUntil(self.clients.matchAll({ type: "window", includeUncontrolled: true })
    .then(function (windows) {
      for (var i = 0; i < windows.length; i++) {
        if (windows[i].url === url.href && "focus" in windows[i]) return windows[i].focus();
      }
      return self.clients.openWindow(url.href);
    }));
});
