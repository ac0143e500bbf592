/* Starts Swagger UI on /api/docs/ from a static file, so the page needs no inline script (CSP).
 * "Try it out" requests go to this origin with the session cookie, or with a Bearer key entered
 * under "Authorize"; state-changing requests carry X-Requested-With, which the CSRF policy
 * accepts from this origin. */
(function () {
  "use strict";
  var root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.dataset.schemaUrl,
    dom_id: "#swagger-ui",
    deepLinking: true,
    validatorUrl: null,
    // BaseLayout: no top bar; the standalone preset's logo is an SVG with an inline <style> (CSP).
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
    requestInterceptor: function (request) {
      request.headers["X-Requested-With"] = "XMLHttpRequest";
      return request;
    }
  });
}());
