//! GET /openapi.json against the router, both ways: every documented operation is served (a request does not reach
//! the no-route or wrong-method fallbacks), every route is documented, and no undocumented method is served; and the
//! documented body fields are all read by their parsers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::TestApp;
use reqwest::Method;
use serde_json::{json, Value};

/// The routes outside `caller_paths()`.
const PUBLIC_PATHS: [&str; 4] = ["/healthz", "/readyz", "/metrics", "/openapi.json"];
const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

async fn document(app: &TestApp) -> Value {
    let answer = app.client.get(format!("{}/openapi.json", app.base)).send().await.unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.headers()["content-type"], "application/json");
    answer.json().await.unwrap()
}

/// Each documented (method, path, operation).
fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut operations = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            assert!(METHODS.contains(&method.as_str()), "{method} {path}");
            operations.push((method.clone(), path.clone(), operation.clone()));
        }
    }
    operations
}

/// `path` with a dummy value for each `{param}`.
fn concrete(path: &str) -> String {
    path.split('/').map(|segment| if segment.starts_with('{') { "x_0" } else { segment }).collect::<Vec<_>>().join("/")
}

/// Sends `method path` (with `{}` as the body of a POST, and WebSocket upgrade headers when asked for), and returns
/// the status and body.
async fn send(app: &TestApp, method: &str, path: &str, upgrade: bool) -> (u16, String) {
    let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
    let mut request = app.client.request(method.clone(), format!("{}{}", app.base, concrete(path)));
    if method == Method::POST {
        request = request.json(&json!({}));
    }
    if upgrade {
        request = request
            .header("connection", "upgrade")
            .header("upgrade", "websocket")
            .header("sec-websocket-version", "13")
            .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==");
    }
    let answer = request.send().await.unwrap();
    let status = answer.status().as_u16();
    if status == 101 {
        return (status, String::new());
    }
    (status, answer.text().await.unwrap())
}

/// Whether an answer is the router's no-route or wrong-method fallback for `method path`.
fn is_fallback((status, body): &(u16, String), method: &str, path: &str) -> bool {
    let request = format!("{} {}", method.to_uppercase(), concrete(path));
    let Ok(body) = serde_json::from_str::<Value>(body) else { return false };
    let message = body["error"]["message"].as_str().unwrap_or_default();
    (*status == 404 && message == format!("Invalid URL ({request})"))
        || (*status == 405 && message == format!("Method not allowed ({request})"))
}

#[tokio::test]
async fn every_documented_operation_is_served_and_every_route_documented() {
    let app = TestApp::start("echo").await;
    let doc = document(&app).await;
    let operations = operations(&doc);
    for (method, path, operation) in &operations {
        // An operation that answers 101 is a WebSocket upgrade: a plain request is refused like a wrong method.
        let upgrade = operation["responses"].get("101").is_some();
        let answer = send(&app, method, path, upgrade).await;
        assert!(!is_fallback(&answer, method, path), "{method} {path} is documented but not served: {answer:?}");
        if upgrade {
            assert_eq!(answer.0, 101, "{method} {path}");
        }
    }
    let documented: Vec<&String> = doc["paths"].as_object().unwrap().keys().collect();
    for path in threadline::api::caller_paths().into_iter().chain(PUBLIC_PATHS) {
        assert!(documented.iter().any(|documented| *documented == path), "{path} is served but not documented");
    }
    for path in documented {
        for method in METHODS.into_iter().filter(|method| doc["paths"][path].get(method).is_none()) {
            let answer = send(&app, method, path, false).await;
            assert!(is_fallback(&answer, method, path), "{method} {path} is served but not documented: {answer:?}");
        }
    }
}

#[tokio::test]
async fn operations_are_named_tagged_and_extensions_marked() {
    let app = TestApp::start("echo").await;
    let doc = document(&app).await;
    assert_eq!(doc["openapi"], "3.1.0");
    let operations = operations(&doc);
    let mut ids: Vec<&str> =
        operations.iter().map(|(_, _, operation)| operation["operationId"].as_str().unwrap()).collect();
    ids.sort_unstable();
    let count = ids.len();
    ids.dedup();
    assert_eq!(ids.len(), count, "operation ids are unique: {ids:?}");
    for (method, path, operation) in &operations {
        assert!(operation["summary"].as_str().is_some_and(|summary| !summary.is_empty()), "{method} {path}");
        assert_eq!(operation["tags"].as_array().map(Vec::len), Some(1), "{method} {path}");
        // threadline's own routes are marked; OpenAI's and LM Studio's (tagged with its origin) are not.
        let own = PUBLIC_PATHS.contains(&path.as_str())
            || [("get", "/v1/responses"), ("get", "/v1/responses/{id}/tree"), ("post", "/mcp")]
                .contains(&(method.as_str(), path.as_str()));
        assert_eq!(operation.get("x-threadline-extension"), own.then_some(&json!(true)), "{method} {path}");
    }
    assert_eq!(doc["paths"]["/api/v1/chat"]["post"]["tags"], json!(["LM Studio"]));
    assert_eq!(doc["paths"]["/healthz"]["get"]["x-threadline-extension"], json!(true));
    // Every caller route takes the client's key and an admin's `tenant=`; the operations routes take neither.
    for (method, path, operation) in &operations {
        let caller = !PUBLIC_PATHS.contains(&path.as_str());
        let security = caller.then(|| json!([{"apiKey": []}]));
        assert_eq!(operation.get("security"), security.as_ref(), "{method} {path}");
        let tenant = operation["parameters"].as_array().into_iter().flatten().find(|param| param["name"] == "tenant");
        assert_eq!(tenant.map(|param| &param["in"]), caller.then_some(&json!("query")), "{method} {path}");
    }
    assert_eq!(doc["components"]["securitySchemes"]["apiKey"]["scheme"], "bearer");
    let tree = &doc["paths"]["/v1/responses/{id}/tree"]["get"]["responses"]["200"]["content"]["application/json"];
    assert_eq!(tree["schema"], json!({"$ref": "#/components/schemas/ResponseTree"}));
    let created = &doc["paths"]["/v1/responses"]["post"]["responses"]["200"]["content"];
    assert_eq!(created["application/json"]["schema"], json!({"$ref": "#/components/schemas/Response"}));
    assert_eq!(created["text/event-stream"]["schema"], json!({"type": "string"}));
    let limit = &doc["paths"]["/v1/responses/{id}/input_items"]["get"]["parameters"][2];
    assert_eq!(limit["name"], "limit");
    assert_eq!(
        limit["schema"],
        json!({"type": "integer", "format": "int32", "default": 20, "minimum": 1, "maximum": 100})
    );
}

#[tokio::test]
async fn errors_share_the_openai_error_schema() {
    let app = TestApp::start("echo").await;
    let doc = document(&app).await;
    let schemas = &doc["components"]["schemas"];
    assert_eq!(
        schemas["Error"],
        json!({"type": "object", "description": "The body of every error answer: `{\"error\":{message,type,param,code}}`.",
            "required": ["error"], "properties": {"error": {"$ref": "#/components/schemas/ErrorBody"}}})
    );
    assert_eq!(schemas["ErrorBody"]["required"], json!(["message", "type", "param", "code"]));
    assert_eq!(
        schemas["ErrorKind"]["enum"],
        json!(["invalid_request_error", "upstream_error", "server_error", "requests"])
    );
    let error = json!({"$ref": "#/components/schemas/Error"});
    for (method, path, operation) in operations(&doc) {
        let expected = match path.as_str() {
            "/api/v1/chat" => json!({"$ref": "#/components/schemas/LmStudioError"}),
            "/healthz" | "/metrics" | "/openapi.json" => continue,
            _ => error.clone(),
        };
        for status in ["4XX", "5XX"] {
            let body = &operation["responses"][status]["content"]["application/json"]["schema"];
            assert_eq!(*body, expected, "{method} {path} {status}");
        }
    }
    // The schema names exactly the keys of a real error answer.
    let (status, body) = app.get("/v1/responses/resp_0").await;
    assert_eq!(status, 404);
    let keys: Vec<&String> = body["error"].as_object().unwrap().keys().collect();
    assert_eq!(keys, ["message", "type", "param", "code"]);
}

/// A value the body parsers accept for a field, where a body needs it to be read to its end.
fn sample(field: &str) -> Option<Value> {
    match field {
        "model" => Some(json!("echo")),
        "input" => Some(json!("hi")),
        "metadata" => Some(json!({})),
        "items" => Some(json!([{"type": "message", "role": "user", "content": "hi"}])),
        _ => None,
    }
}

/// The code and param of an error answer.
async fn refusal(app: &TestApp, path: &str, body: &Value) -> (Value, Value) {
    let answer = app.client.post(format!("{}{}", app.base, concrete(path))).json(body).send().await.unwrap();
    let body: Value = answer.json().await.unwrap_or_default();
    (body["error"]["code"].clone(), body["error"]["param"].clone())
}

#[tokio::test]
async fn documented_body_fields_are_those_the_parsers_read() {
    let app = TestApp::start("echo").await;
    let doc = document(&app).await;
    let mut checked = 0;
    for (method, path, operation) in operations(&doc) {
        let Some(reference) = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"].as_str() else {
            continue;
        };
        // Chat Completions passes the fields it does not read to the upstream.
        if operation["operationId"] == "createChatCompletion" {
            continue;
        }
        let schema = &doc["components"]["schemas"][reference.trim_start_matches("#/components/schemas/")];
        let fields = schema["properties"].as_object().unwrap();
        let minimal: serde_json::Map<String, Value> =
            fields.keys().filter_map(|field| Some((field.clone(), sample(field)?))).collect();
        // A field the parser does not know is refused by name (so the check below reaches the end of the parser)…
        let mut body = minimal.clone();
        body.insert("not_a_field".into(), json!(null));
        let unknown = (json!("unknown_parameter"), json!("not_a_field"));
        assert_eq!(refusal(&app, &path, &Value::Object(body)).await, unknown, "{method} {path}");
        // …and every documented one is known (null is read as absent).
        for field in fields.keys() {
            let mut body = minimal.clone();
            body.insert(field.clone(), json!(null));
            let unknown = (json!("unknown_parameter"), json!(field));
            assert_ne!(refusal(&app, &path, &Value::Object(body)).await, unknown, "{method} {path}: {field}");
        }
        checked += 1;
    }
    assert_eq!(checked, 7, "every parsed body but Chat Completions'");
}
