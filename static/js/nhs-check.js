// The NHS number checked as soon as the referrer leaves the field (modulus 11, as
// workflow/nhs_number.py checks it), with the server's own words next to the field.
// It only saves a round trip on a phone: the server checks again when the form is sent.
(function () {
  "use strict";

  function problem(text, input) {
    var digits = text.replace(/[\s-]/g, "");
    if (!digits) return "";  // empty: "Enter the NHS number" comes when the form is sent
    if (!/^[0-9]{10}$/.test(digits)) return input.dataset.msgLength;
    var total = 0;
    for (var i = 0; i < 9; i++) total += Number(digits[i]) * (10 - i);
    var check = 11 - (total % 11);
    if (check === 11) check = 0;
    return check === 10 || check !== Number(digits[9]) ? input.dataset.msgCheck : "";
  }

  document.querySelectorAll("input[data-nhs-check]").forEach(function (input) {
    var wrapper = input.closest(".field");
    var errorId = "e-" + input.id.replace(/^f-/, "");

    input.addEventListener("change", function () {
      var message = problem(input.value, input);
      var shown = document.getElementById(errorId);
      var described = (input.getAttribute("aria-describedby") || "").split(" ")
        .filter(function (id) { return id && id !== errorId; });
      if (!message) {
        if (shown) shown.remove();
        wrapper.classList.remove("invalid");
        input.removeAttribute("aria-invalid");
      } else {
        if (!shown) {
          shown = document.createElement("p");
          shown.className = "error";
          shown.id = errorId;
          shown.setAttribute("role", "alert");
          wrapper.appendChild(shown);
        }
        shown.textContent = message;
        wrapper.classList.add("invalid");
        input.setAttribute("aria-invalid", "true");
        described.push(errorId);
      }
      if (described.length) input.setAttribute("aria-describedby", described.join(" "));
      else input.removeAttribute("aria-describedby");
    });
  });
})();
