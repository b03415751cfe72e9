// Swagger UI from our own static files: no request leaves the server (no CDN, and no
// validator badge, which would call validator.swagger.io).
(function () {
  "use strict";
  var settings = JSON.parse(document.getElementById("swagger-settings").textContent);
  settings.dom_id = "#swagger-ui";
  settings.validatorUrl = null;
  settings.presets = [SwaggerUIBundle.presets.apis];
  window.ui = SwaggerUIBundle(settings);
})();
