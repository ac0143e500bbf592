/* Progressive enhancement for the staff pages; every page works without it.
   Loaded as a static file (CSP script-src 'self'): no inline handlers anywhere. */
(function () {
  "use strict";

  function copyButtons() {
    document.querySelectorAll("[data-copy]").forEach(function (button) {
      button.addEventListener("click", function () {
        var source = document.getElementById(button.getAttribute("data-copy"));
        if (!source) { return; }
        var done = function () { button.textContent = "Copied"; };
        if (navigator.clipboard && window.isSecureContext) {
          navigator.clipboard.writeText(source.textContent.trim()).then(done, function () { selectText(source); });
        } else {
          selectText(source);
          button.textContent = "Selected: press Ctrl+C";
        }
      });
    });
  }

  function selectText(element) {
    var range = document.createRange();
    range.selectNodeContents(element);
    var selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
  }

  /* The issuance form: show the CSR fields or the server-key fields, as chosen. */
  function issuanceForm() {
    var form = document.getElementById("issue-form");
    if (!form) { return; }
    var csrOnly = ["field-csr", "field-csr_file"];
    var serverOnly = ["field-key_type"];
    function update() {
      var chosen = form.querySelector("input[name=key_source]:checked");
      var server = chosen && chosen.value === "server";
      csrOnly.forEach(function (id) { toggle(id, server); });
      serverOnly.forEach(function (id) { toggle(id, !server); });
    }
    function toggle(id, hide) {
      var element = document.getElementById(id);
      if (element) { element.classList.toggle("is-hidden", hide); }
    }
    form.querySelectorAll("input[name=key_source]").forEach(function (radio) {
      radio.addEventListener("change", update);
    });
    update();
  }

  /* Forms whose action cannot be undone ask first (data-confirm holds the question). */
  function confirmations() {
    document.querySelectorAll("form[data-confirm]").forEach(function (form) {
      form.addEventListener("submit", function (event) {
        if (!window.confirm(form.getAttribute("data-confirm"))) { event.preventDefault(); }
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    copyButtons();
    confirmations();
    issuanceForm();
  });
}());
