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
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
    plugins: [SwaggerUIBundle.plugins.DownloadUrl],
    layout: "StandaloneLayout",
    requestInterceptor: function (request) {
      request.headers["X-Requested-With"] = "XMLHttpRequest";
      return request;
    }
  });
}());
