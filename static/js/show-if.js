// Show a part of a form only when another control has a given value:
//   data-show-if="specialty=stroke"           shown when specialty is stroke
//   data-show-if="stroke.anticoagulant!=,none" shown unless it is empty or none
// Hidden parts are disabled so they are not sent. Without JavaScript everything shows,
// and the server checks every field either way.
(function () {
  "use strict";

  function parse(rule) {
    var match = /^([^!=]+)(!?=)(.*)$/.exec(rule);
    return match && { name: match[1], negate: match[2] === "!=", values: match[3].split(",") };
  }

  function update(form) {
    form.querySelectorAll("[data-show-if]").forEach(function (part) {
      var rule = parse(part.dataset.showIf);
      if (!rule) return;
      var control = form.elements.namedItem(rule.name);
      var value = control && !control.disabled ? control.value : "";
      var show = (rule.values.indexOf(value) !== -1) !== rule.negate;
      // Document order: a part inside a hidden part stays hidden.
      var parent = part.parentElement && part.parentElement.closest("[data-show-if]");
      if (parent && parent.hidden) show = false;
      part.hidden = !show;
      part.querySelectorAll("input, select, textarea").forEach(function (c) {
        c.disabled = !show;
      });
    });
  }

  function bind(root) {
    root.querySelectorAll("form").forEach(function (form) {
      if (!form.querySelector("[data-show-if]")) return;
      form.addEventListener("change", function () { update(form); });
      update(form);
    });
  }
  bind(document);
  window.goldenhourShowIf = bind;  // live.js: a part of the page swapped in afresh
})();
