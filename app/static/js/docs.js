// Swagger UI for /openapi.json, from the bundled swagger-ui-bundle package (no CDN, no inline
// script: the page's CSP allows same-origin scripts only).
const root = document.getElementById("swagger-ui");
window.SwaggerUIBundle({ url: root.dataset.specUrl, dom_id: "#swagger-ui", deepLinking: true });
