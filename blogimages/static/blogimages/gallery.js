/* blogimages' gallery: a filter applies as soon as it is chosen (the Filter button does the
 * same without script); the images open in the viewer (viewer.js). */
(function () {
  "use strict";
  document.addEventListener("DOMContentLoaded", function () {
    var form = document.querySelector("[data-bi-gallery-filters]");
    if (!form) return;
    form.addEventListener("change", function (event) {
      if (event.target.tagName !== "SELECT") return;
      // Empty filters stay out of the address: it reads like the filters chosen.
      form.querySelectorAll("select").forEach(function (select) { select.disabled = !select.value; });
      form.submit();
    });
    window.addEventListener("pageshow", function () {
      form.querySelectorAll("select").forEach(function (select) { select.disabled = false; });
    });
  });
})();
