//! The console's page and assets: served without a key (also with keys on), each with its content type, the
//! strict content-security-policy and no-cache; every file the page loads is served; unknown assets and other
//! methods get the usual error envelope. (tests/browser drives the page itself in a browser.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{key, TestApp};
use serde_json::{json, Value};
use threadline::config::AuthMode;

const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; \
                   object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// threadline with keys on.
async fn server() -> TestApp {
    TestApp::builder()
        .upstream("echo")
        .config(|config| {
            config.auth.mode = Some(AuthMode::Keys);
            config.auth.keys = vec![key("team", "sk-team")];
        })
        .start()
        .await
        .unwrap()
}

/// GET `path` without a key: status, the console's headers, and the body.
async fn fetch(app: &TestApp, path: &str) -> (u16, [String; 5], String) {
    let response = app.client.get(format!("{}{path}", app.base)).send().await.unwrap();
    let header = |name: &str| response.headers().get(name).map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
    let headers =
        ["content-type", "cache-control", "content-security-policy", "x-content-type-options", "referrer-policy"]
            .map(header);
    (response.status().as_u16(), headers, response.text().await.unwrap())
}

fn headers(content_type: &str) -> [String; 5] {
    [content_type, "no-cache", CSP, "nosniff", "no-referrer"].map(String::from)
}

#[tokio::test]
async fn the_page_and_everything_it_loads_are_served_without_a_key() {
    let app = server().await;
    let (status, got, page) = fetch(&app, "/ui").await;
    assert_eq!((status, got), (200, headers("text/html; charset=utf-8")));
    assert_eq!(fetch(&app, "/ui/").await.2, page);
    assert!(!page.contains("<script>") && !page.contains("style="), "no inline script or style");

    // Every /ui/ file the page names, and every module those import, is served with its type.
    let mut pending: Vec<String> =
        page.split('"').filter(|part| part.starts_with("/ui/")).map(|part| part["/ui/".len()..].to_string()).collect();
    let mut seen = Vec::new();
    while let Some(name) = pending.pop() {
        if seen.contains(&name) {
            continue;
        }
        let (status, got, body) = fetch(&app, &format!("/ui/{name}")).await;
        let kind = match name.rsplit('.').next().unwrap() {
            "js" => "text/javascript; charset=utf-8",
            "css" => "text/css; charset=utf-8",
            "svg" => "image/svg+xml",
            other => panic!("unexpected asset type {other}"),
        };
        assert_eq!((status, got), (200, headers(kind)), "{name}");
        if name.ends_with(".js") {
            assert!(body.starts_with("// @ts-check\n"), "{name}");
            pending.extend(body.split('"').filter(|part| part.starts_with("./")).map(|part| part[2..].to_string()));
        }
        seen.push(name);
    }
    seen.sort();
    assert_eq!(seen, ["api.js", "app.js", "console.css", "export.js", "favicon.svg", "render.js", "tree.js"]);

    // The API itself still wants the key.
    let (status, _, _) = fetch(&app, "/v1/models").await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn unknown_assets_and_other_methods_get_the_error_envelope() {
    let app = server().await;
    let (status, _, body) = fetch(&app, "/ui/secret.js").await;
    let body: Value = serde_json::from_str(&body).unwrap();
    let envelope = |message: &str| json!({"error": {"message": message, "type": "invalid_request_error", "param": null, "code": null}});
    assert_eq!((status, body), (404, envelope("Invalid URL (GET /ui/secret.js)")));
    let response = app.client.post(format!("{}/ui", app.base)).send().await.unwrap();
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap();
    assert_eq!((status, body), (405, envelope("Method not allowed (POST /ui)")));
}
