// After a form comes back with errors, the keyboard and screen reader start at the
// summary of what to fix (the first .problems section), not at the top of the page.
(function () {
  "use strict";
  var summary = document.querySelector("section.problems");
  if (!summary) return;
  if (!summary.hasAttribute("tabindex")) summary.setAttribute("tabindex", "-1");
  summary.focus();
})();
