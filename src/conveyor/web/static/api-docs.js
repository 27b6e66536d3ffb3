// Starts Swagger UI on /api/docs from the spec URL the page names, without inline
// script (the Content Security Policy allows scripts from the app's files only).
window.addEventListener("DOMContentLoaded", function () {
  window.SwaggerUIBundle({
    url: document.body.dataset.openapiUrl,
    dom_id: "#swagger-ui",
    layout: "BaseLayout",
    deepLinking: true,
    presets: [window.SwaggerUIBundle.presets.apis],
  });
});
