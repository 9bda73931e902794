//! The console: a browser page at `/ui` to browse, inspect and manage stored responses and conversations. Its
//! assets (plain JavaScript modules, no build step) are embedded in the binary and served without authentication:
//! they hold no data, and the page itself calls the API with the key its user enters.

use axum::extract::Path;
use axum::http::header::{HeaderName, CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{HeaderValue, Method, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::error::ApiError;
use super::AppState;

/// The page: only its own scripts, styles and API; no inline script, nothing from elsewhere, never framed.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; \
     connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const SVG: &str = "image/svg+xml";

/// Every asset under `/ui/`: its name, content type and bytes.
const ASSETS: [(&str, &str, &str); 8] = [
    ("index.html", HTML, include_str!("../../ui/index.html")),
    ("console.css", CSS, include_str!("../../ui/console.css")),
    ("app.js", JS, include_str!("../../ui/app.js")),
    ("api.js", JS, include_str!("../../ui/api.js")),
    ("render.js", JS, include_str!("../../ui/render.js")),
    ("tree.js", JS, include_str!("../../ui/tree.js")),
    ("export.js", JS, include_str!("../../ui/export.js")),
    ("favicon.svg", SVG, include_str!("../../ui/favicon.svg")),
];

/// The console's routes: `/ui` and `/ui/` (the page) and `/ui/{asset}`.
pub fn routes() -> Router<AppState> {
    Router::new().route("/ui", get(page)).route("/ui/", get(page)).route("/ui/{asset}", get(asset))
}

/// GET /ui
async fn page() -> Response {
    serve("index.html").unwrap_or_else(|| ApiError::internal("the console page is missing").into_response())
}

/// GET /ui/{asset}
async fn asset(Path(name): Path<String>, method: Method, uri: Uri) -> Response {
    serve(&name)
        .unwrap_or_else(|| ApiError::no_route(false, format!("Invalid URL ({method} {})", uri.path())).into_response())
}

/// The asset `name` with its content type and the console's headers, if there is one.
fn serve(name: &str) -> Option<Response> {
    let (_, content_type, body) = ASSETS.iter().find(|(asset, _, _)| *asset == name)?;
    let headers = [
        (CONTENT_TYPE, HeaderValue::from_static(content_type)),
        // Embedded in the binary: a new server version may change them, so browsers revalidate.
        (CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        (HeaderName::from_static("content-security-policy"), HeaderValue::from_static(CONTENT_SECURITY_POLICY)),
        (HeaderName::from_static("x-content-type-options"), HeaderValue::from_static("nosniff")),
        (HeaderName::from_static("referrer-policy"), HeaderValue::from_static("no-referrer")),
    ];
    Some((headers, *body).into_response())
}
