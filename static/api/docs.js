// Starts Swagger UI on the API's own document (a file, not an inline script: the page's policy allows no inline script).
(function () {
  var root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.getAttribute("data-spec-url"),
    domNode: root,
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis],
    validatorUrl: null,  // the public validator is on the internet: never call it
  });
})();
