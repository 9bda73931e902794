//! Authentication and tenant isolation: API keys name tenants (401 without a right one; health and metrics need
//! none); another tenant's id answers exactly like an unknown id on every route that reads, lists, continues or
//! changes stored data, with as many store reads; only an admin acts for another tenant (`tenant=`); `passthrough`
//! sends each client's own key upstream and keeps each key's data apart.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{key, MockUpstream, Postgres, Sqlite, StoreKind, TestApp};
use reqwest::Method;
use rstest::rstest;
use serde_json::{json, Value};
use threadline::config::{AuthMode, Secret};
use threadline::model::new_id;

/// threadline in `mode` with the keys of alice and bob and an admin, in front of a mock upstream whose configured
/// key is `sk-server`.
async fn server(mode: AuthMode, store: StoreKind) -> Option<(MockUpstream, TestApp)> {
    let mock = MockUpstream::start().await;
    let server = TestApp::builder()
        .store(store)
        .upstream(&mock.url)
        .config(move |config| {
            config.upstreams[0].api_key = Some(Secret("sk-server".into()));
            config.auth.mode = Some(mode);
            config.auth.keys = vec![key("alice", "sk-alice"), key("bob", "sk-bob")];
            config.auth.admin_keys = vec![key("ops", "sk-admin")];
        })
        .start()
        .await?;
    Some((mock, server))
}

/// A request with `Authorization: Bearer <key>` (none without a key): its status and its body (JSON, or the text
/// of an event stream as a string). It accepts JSON and event streams, as MCP clients must.
async fn call(server: &TestApp, key: Option<&str>, method: Method, path: &str, body: Option<&Value>) -> (u16, Value) {
    let mut request = server
        .client
        .request(method, format!("{}{path}", server.base))
        .header("accept", "application/json, text/event-stream");
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    if let Some(body) = body {
        request = request.json(body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

#[tokio::test]
async fn a_missing_or_wrong_key_is_a_401_and_health_and_metrics_need_none() {
    let (mock, server) = server(AuthMode::Keys, Sqlite).await.unwrap();
    let body = json!({"model": "m", "input": "hi"});
    for key in [None, Some("sk-eve"), Some("")] {
        let (status, answer) = call(&server, key, Method::POST, "/v1/responses", Some(&body)).await;
        assert_eq!(status, 401, "{answer}");
        assert_eq!(answer["error"]["code"], "invalid_api_key");
        assert_eq!(answer["error"]["type"], "invalid_request_error");
        assert_eq!(answer["error"].as_object().unwrap().len(), 4);
    }
    for path in ["/v1/models", "/v1/conversations/conv_x", "/v1/responses/resp_x"] {
        assert_eq!(call(&server, None, Method::GET, path, None).await.0, 401, "{path}");
    }
    assert_eq!(mock.take().len(), 0);
    for path in ["/healthz", "/readyz", "/metrics"] {
        assert_eq!(call(&server, None, Method::GET, path, None).await.0, 200, "{path}");
    }
    for key in ["sk-alice", "sk-bob", "sk-admin"] {
        assert_eq!(call(&server, Some(key), Method::POST, "/v1/responses", Some(&body)).await.0, 200, "{key}");
    }
    // The configured upstream key goes upstream, never the client's.
    assert_eq!(mock.take_authorizations(), vec![Some("Bearer sk-server".to_string()); 3]);
}

/// One request of the isolation matrix: a route, the ids it names, and the unknown ids of the same kinds.
struct Probe {
    method: Method,
    path: &'static str,
    /// The request path and body with `{resp}`, `{conv}`, `{item}` and `{cmp}` to fill in.
    url: &'static str,
    body: Option<Value>,
}

fn probe(method: Method, path: &'static str, url: &'static str, body: Option<Value>) -> Probe {
    Probe { method, path, url, body }
}

/// Every request that reads, continues or changes a tenant's stored data, by route.
fn probes() -> Vec<Probe> {
    let chain = |extra: Value| {
        let mut body = json!({"model": "m", "input": "more", "previous_response_id": "{resp}"});
        body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        body
    };
    vec![
        probe(Method::GET, "/v1/responses/{id}", "/v1/responses/{resp}", None),
        probe(Method::GET, "/v1/responses/{id}", "/v1/responses/{resp}?stream=true", None),
        probe(Method::GET, "/v1/responses/{id}/input_items", "/v1/responses/{resp}/input_items", None),
        probe(Method::POST, "/v1/responses/{id}/cancel", "/v1/responses/{resp}/cancel", None),
        probe(Method::POST, "/v1/responses", "/v1/responses", Some(chain(json!({"background": true})))),
        probe(Method::POST, "/v1/responses", "/v1/responses", Some(chain(json!({})))),
        probe(Method::POST, "/v1/responses", "/v1/responses", Some(chain(json!({"stream": true})))),
        probe(
            Method::POST,
            "/v1/responses",
            "/v1/responses",
            Some(json!({"model": "m", "input": "x", "conversation": "{conv}"})),
        ),
        probe(
            Method::POST,
            "/v1/responses",
            "/v1/responses",
            Some(
                json!({"model": "m", "input": [{"type": "compaction", "id": "cmp_probe", "encrypted_content": "{cmp}"}]}),
            ),
        ),
        probe(Method::POST, "/v1/responses/input_tokens", "/v1/responses/input_tokens", Some(chain(json!({})))),
        probe(
            Method::POST,
            "/v1/responses/compact",
            "/v1/responses/compact",
            Some(json!({"model": "m", "previous_response_id": "{resp}"})),
        ),
        probe(
            Method::POST,
            "/api/v1/chat",
            "/api/v1/chat",
            Some(json!({"model": "m", "input": "more", "previous_response_id": "{resp}"})),
        ),
        probe(
            Method::POST,
            "/mcp",
            "/mcp",
            Some(mcp_call("stateful_chat", json!({"prompt": "x", "model": "m", "response_id": "{resp}"}))),
        ),
        probe(Method::POST, "/mcp", "/mcp", Some(mcp_call("get_conversation", json!({"response_id": "{resp}"})))),
        probe(
            Method::POST,
            "/mcp",
            "/mcp",
            Some(mcp_call("delete_conversation_turn", json!({"response_id": "{resp}"}))),
        ),
        probe(Method::GET, "/v1/conversations/{id}", "/v1/conversations/{conv}", None),
        probe(
            Method::POST,
            "/v1/conversations/{id}",
            "/v1/conversations/{conv}",
            Some(json!({"metadata": {"k": "v"}})),
        ),
        probe(Method::GET, "/v1/conversations/{id}/items", "/v1/conversations/{conv}/items", None),
        probe(
            Method::POST,
            "/v1/conversations/{id}/items",
            "/v1/conversations/{conv}/items",
            Some(json!({"items": [{"role": "user", "content": "x"}]})),
        ),
        probe(Method::GET, "/v1/conversations/{id}/items/{item_id}", "/v1/conversations/{conv}/items/{item}", None),
        probe(Method::DELETE, "/v1/conversations/{id}/items/{item_id}", "/v1/conversations/{conv}/items/{item}", None),
        probe(Method::DELETE, "/v1/conversations/{id}", "/v1/conversations/{conv}", None),
        probe(Method::DELETE, "/v1/responses/{id}", "/v1/responses/{resp}", None),
        probe(Method::GET, "/v1/responses/{id}/tree", "/v1/responses/{resp}/tree", None),
        probe(Method::GET, "/v1/responses", "/v1/responses?previous_response_id={resp}", None),
        probe(Method::GET, "/v1/responses", "/v1/responses?search=mine", None),
        probe(Method::GET, "/v1/conversations", "/v1/conversations?search=secret", None),
    ]
}

/// A JSON-RPC request calling an MCP tool.
fn mcp_call(tool: &str, arguments: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": tool, "arguments": arguments}})
}

/// Routes that keep no tenant data: stateless.
const NO_STORED_IDS: [&str; 2] = ["/v1/chat/completions", "/v1/models"];

/// The ids a probe is filled with.
struct Ids {
    resp: String,
    conv: String,
    item: String,
    cmp: String,
}

impl Ids {
    fn fill(&self, text: &str) -> String {
        text.replace("{resp}", &self.resp)
            .replace("{conv}", &self.conv)
            .replace("{item}", &self.item)
            .replace("{cmp}", &self.cmp)
    }

    /// The same answer with these ids written as `other`'s.
    fn as_other(&self, answer: &Value, other: &Ids) -> Value {
        let text = answer.to_string();
        let text =
            text.replace(&self.resp, &other.resp).replace(&self.conv, &other.conv).replace(&self.item, &other.item);
        serde_json::from_str(&text).unwrap()
    }
}

#[rstest]
#[tokio::test]
async fn another_tenants_ids_answer_like_unknown_ids_on_every_route(#[values(Sqlite, Postgres)] store: StoreKind) {
    let Some((_mock, server)) = server(AuthMode::Keys, store).await else { return };
    let alice = Some("sk-alice");
    // Alice's data: a response, a conversation with an item, a compaction item.
    let (_, response) =
        call(&server, alice, Method::POST, "/v1/responses", Some(&json!({"model": "m", "input": "mine"}))).await;
    let items = json!({"items": [{"role": "user", "content": "secret"}]});
    let (_, conversation) = call(&server, alice, Method::POST, "/v1/conversations", Some(&items)).await;
    let conv = conversation["id"].as_str().unwrap().to_string();
    let (_, listed) = call(&server, alice, Method::GET, &format!("/v1/conversations/{conv}/items"), None).await;
    let compact = json!({"model": "m", "input": "keep this"});
    let (_, compacted) = call(&server, alice, Method::POST, "/v1/responses/compact", Some(&compact)).await;
    let alices = Ids {
        resp: response["id"].as_str().unwrap().into(),
        conv,
        item: listed["data"][0]["id"].as_str().unwrap().into(),
        cmp: compacted["output"][1]["encrypted_content"].as_str().unwrap().into(),
    };
    let unknown = Ids {
        resp: new_id("resp"),
        conv: new_id("conv"),
        item: new_id("msg"),
        cmp: "tl1.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".into(),
    };
    let before = call(&server, alice, Method::GET, &format!("/v1/responses/{}", alices.resp), None).await;
    for probe in probes() {
        let request = |ids: &Ids| {
            (
                ids.fill(probe.url),
                probe.body.as_ref().map(|body| serde_json::from_str::<Value>(&ids.fill(&body.to_string())).unwrap()),
            )
        };
        let (url, body) = request(&alices);
        let reads = server.store.reads();
        let others = call(&server, Some("sk-bob"), probe.method.clone(), &url, body.as_ref()).await;
        let other_reads = server.store.reads() - reads;
        let (url, body) = request(&unknown);
        let reads = server.store.reads();
        let unknowns = call(&server, Some("sk-bob"), probe.method.clone(), &url, body.as_ref()).await;
        let unknown_reads = server.store.reads() - reads;
        let what = format!("{} {}", probe.method, probe.url);
        // A list finds nothing of alice's; an MCP tool answers with an error.
        let refused = others.0 >= 400 || others.1["data"] == json!([]) || others.1["result"]["isError"] == json!(true);
        assert!(refused, "{what}: bob reached alice's data: {}", others.1);
        assert_eq!(others.0, unknowns.0, "{what}");
        assert_eq!(alices.as_other(&others.1, &unknown), unknowns.1, "{what}");
        assert_eq!(other_reads, unknown_reads, "{what}: store reads");
    }
    // Alice's data is as it was.
    let after = call(&server, alice, Method::GET, &format!("/v1/responses/{}", alices.resp), None).await;
    assert_eq!(before, after);
    assert_eq!(
        call(&server, alice, Method::GET, &format!("/v1/conversations/{}/items/{}", alices.conv, alices.item), None)
            .await
            .0,
        200
    );
    // Every route of the router that keeps tenant data is probed.
    let probed: Vec<&str> = probes().iter().map(|probe| probe.path).collect();
    for path in threadline::api::caller_paths() {
        assert!(probed.contains(&path) || NO_STORED_IDS.contains(&path), "{path} has no isolation probe");
    }
}

#[rstest]
#[tokio::test]
async fn only_an_admin_key_acts_for_another_tenant(#[values(Sqlite, Postgres)] store: StoreKind) {
    let Some((_mock, server)) = server(AuthMode::Keys, store).await else { return };
    let body = json!({"model": "m", "input": "hi"});
    let (status, made) = call(&server, Some("sk-admin"), Method::POST, "/v1/responses?tenant=alice", Some(&body)).await;
    assert_eq!(status, 200, "{made}");
    let path = format!("/v1/responses/{}", made["id"].as_str().unwrap());
    assert_eq!(call(&server, Some("sk-alice"), Method::GET, &path, None).await, (200, made.clone()));
    assert_eq!(call(&server, Some("sk-admin"), Method::GET, &format!("{path}?tenant=alice"), None).await.0, 200);
    assert_eq!(call(&server, Some("sk-admin"), Method::GET, &path, None).await.0, 404);
    assert_eq!(call(&server, Some("sk-admin"), Method::GET, &format!("{path}?tenant=bob"), None).await.0, 404);
    let deleted = call(&server, Some("sk-admin"), Method::DELETE, &format!("{path}?tenant=alice"), None).await;
    assert_eq!(deleted.0, 200, "{}", deleted.1);
    assert_eq!(call(&server, Some("sk-alice"), Method::GET, &path, None).await.0, 404);
    let refused = (
        403,
        json!({"error": {"message": "Only an admin key may act for another tenant ('tenant').",
            "type": "invalid_request_error", "param": "tenant", "code": "permission_denied"}}),
    );
    for key in ["sk-alice", "sk-bob"] {
        for tenant in ["alice", "bob", ""] {
            let refusal = call(&server, Some(key), Method::GET, &format!("/v1/models?tenant={tenant}"), None).await;
            assert_eq!(refusal, refused, "{key} {tenant}");
        }
    }
    let empty = call(&server, Some("sk-admin"), Method::GET, "/v1/models?tenant=", None).await;
    let expected = json!({"error": {"message": "Invalid 'tenant': expected a tenant name.",
        "type": "invalid_request_error", "param": "tenant", "code": "invalid_value"}});
    assert_eq!(empty, (400, expected));
    // With authentication off, there is no admin.
    let open = TestApp::builder().store(Sqlite).upstream("echo").start().await.unwrap();
    assert_eq!(call(&open, None, Method::GET, "/v1/conversations?tenant=default", None).await, refused);
}

#[rstest]
#[tokio::test]
async fn passthrough_sends_each_clients_key_upstream_and_keeps_each_keys_data_apart(
    #[values(Sqlite, Postgres)] store: StoreKind,
) {
    let Some((mock, server)) = server(AuthMode::Passthrough, store).await else { return };
    let body = json!({"model": "m", "input": "hi"});
    let (status, first) = call(&server, Some("sk-user-1"), Method::POST, "/v1/responses", Some(&body)).await;
    assert_eq!(status, 200, "{first}");
    let chat = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]});
    assert_eq!(call(&server, Some("sk-user-2"), Method::POST, "/v1/chat/completions", Some(&chat)).await.0, 200);
    assert_eq!(
        mock.take_authorizations(),
        vec![Some("Bearer sk-user-1".to_string()), Some("Bearer sk-user-2".to_string())]
    );
    let path = format!("/v1/responses/{}", first["id"].as_str().unwrap());
    assert_eq!(call(&server, Some("sk-user-1"), Method::GET, &path, None).await.0, 200);
    assert_eq!(call(&server, Some("sk-user-2"), Method::GET, &path, None).await.0, 404);
    assert_eq!(call(&server, None, Method::GET, &path, None).await.0, 401);
}
