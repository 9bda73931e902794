//! Browsing stored data over HTTP, on SQLite and Postgres: GET /v1/conversations, GET /v1/responses (paging,
//! metadata filters, search, branches, chain roots) and GET /v1/responses/{id}/tree, their 400s, tenant scoping and
//! an admin's `tenant=`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{key, MockUpstream, Postgres, Sqlite, StoreKind, TestApp};
use reqwest::Method;
use rstest::rstest;
use serde_json::{json, Value};
use threadline::config::AuthMode;
use threadline::model::new_id;

async fn server(store: StoreKind) -> Option<(MockUpstream, TestApp)> {
    let mock = MockUpstream::start().await;
    let server = TestApp::builder().store(store).upstream(&mock.url).start().await?;
    Some((mock, server))
}

/// Creates a response from `body` (model `m`) and returns it.
async fn create(server: &TestApp, body: Value) -> Value {
    let mut request = json!({"model": "m"});
    request.as_object_mut().unwrap().extend(body.as_object().unwrap().clone());
    server.create(request).await
}

/// A response's list entry, as its creation answered it.
fn node(response: &Value, preview: &str, children: u64) -> Value {
    let usage = &response["usage"];
    json!({
        "id": response["id"], "object": "response.node", "previous_response_id": response["previous_response_id"],
        "created_at": response["created_at"], "completed_at": response["completed_at"], "status": "completed",
        "model": response["model"], "background": false, "conversation_id": null, "metadata": response["metadata"],
        "usage": {"input_tokens": usage["input_tokens"], "output_tokens": usage["output_tokens"],
            "total_tokens": usage["total_tokens"]},
        "preview": preview, "output_preview": format!("answer to {preview}"), "children": children, "deleted": false,
    })
}

/// A list answer of these entries.
fn list(data: Vec<Value>, has_more: bool) -> Value {
    let first = data.first().map(|entry| entry["id"].clone()).unwrap_or(Value::Null);
    let last = data.last().map(|entry| entry["id"].clone()).unwrap_or(Value::Null);
    json!({"object": "list", "data": data, "first_id": first, "last_id": last, "has_more": has_more})
}

fn id(value: &Value) -> &str {
    value["id"].as_str().unwrap()
}

/// The ids of a list's or a tree's entries.
fn ids(answer: &(u16, Value)) -> Vec<String> {
    assert_eq!(answer.0, 200, "{}", answer.1);
    answer.1["data"].as_array().unwrap().iter().map(|entry| id(entry).to_string()).collect()
}

fn strings(values: &[&Value]) -> Vec<String> {
    values.iter().map(|value| id(value).to_string()).collect()
}

#[rstest]
#[tokio::test]
async fn responses_page_by_id_both_ways(#[values(Sqlite, Postgres)] store: StoreKind) {
    let Some((_mock, server)) = server(store).await else { return };
    let mut made = Vec::new();
    for text in ["one", "two", "three", "four", "five"] {
        made.push(create(&server, json!({"input": text})).await);
    }
    let (status, page) = server.get("/v1/responses?limit=2").await;
    assert_eq!((status, page), (200, list(vec![node(&made[4], "five", 0), node(&made[3], "four", 0)], true)));
    let next = server.get(&format!("/v1/responses?limit=2&after={}", id(&made[3]))).await;
    assert_eq!(ids(&next), strings(&[&made[2], &made[1]]));
    assert_eq!(next.1["has_more"], true);
    let last = server.get(&format!("/v1/responses?limit=2&after={}", id(&made[1]))).await;
    assert_eq!(last, (200, list(vec![node(&made[0], "one", 0)], false)));
    let asc = server.get("/v1/responses?limit=3&order=asc").await;
    assert_eq!(ids(&asc), strings(&[&made[0], &made[1], &made[2]]));
    assert_eq!((asc.1["has_more"].clone(), asc.1["last_id"].clone()), (json!(true), made[2]["id"].clone()));
    let rest = server.get(&format!("/v1/responses?order=asc&after={}", id(&made[2]))).await;
    assert_eq!(ids(&rest), strings(&[&made[3], &made[4]]));
    assert_eq!(rest.1["has_more"], false);
    // store:false is never stored; a deleted response never appears.
    create(&server, json!({"input": "unstored", "store": false})).await;
    server.delete(&format!("/v1/responses/{}", id(&made[4]))).await;
    assert_eq!(ids(&server.get("/v1/responses?limit=1").await), strings(&[&made[3]]));
    // A turn of a conversation names it.
    let conversation = server.post("/v1/conversations", json!({})).await.1;
    let turn = create(&server, json!({"input": "in it", "conversation": id(&conversation)})).await;
    let mut expected = node(&turn, "in it", 0);
    expected["conversation_id"] = conversation["id"].clone();
    assert_eq!(server.get("/v1/responses?limit=1").await, (200, list(vec![expected], true)));
}

#[rstest]
#[tokio::test]
async fn conversations_page_with_their_first_message_as_preview(#[values(Sqlite, Postgres)] store: StoreKind) {
    let Some((_mock, server)) = server(store).await else { return };
    let mut made = Vec::new();
    let bodies = [
        json!({"items": [{"type": "function_call_output", "call_id": "c", "output": "x"},
            {"role": "user", "content": [{"type": "input_text", "text": "first"}, {"type": "input_text", "text": "part"}]},
            {"role": "user", "content": "later"}]}),
        json!({"metadata": {"k": "v"}}),
        json!({"items": [{"role": "user", "content": "é".repeat(250)}]}),
    ];
    for body in bodies {
        made.push(server.post("/v1/conversations", body).await.1);
    }
    // The second gets its preview from the first message added later, and keeps it.
    let second = id(&made[1]).to_string();
    server
        .post(&format!("/v1/conversations/{second}/items"), json!({"items": [{"role": "user", "content": "added"}]}))
        .await;
    server
        .post(&format!("/v1/conversations/{second}/items"), json!({"items": [{"role": "user", "content": "more"}]}))
        .await;
    let entry = |conversation: &Value, preview: Value| {
        let mut entry = conversation.clone();
        entry["preview"] = preview;
        entry
    };
    let page = server.get("/v1/conversations?limit=2").await;
    assert_eq!(page, (200, list(vec![entry(&made[2], json!("é".repeat(200))), entry(&made[1], json!("added"))], true)));
    let rest = server.get(&format!("/v1/conversations?limit=2&after={second}")).await;
    assert_eq!(rest, (200, list(vec![entry(&made[0], json!("first\npart"))], false)));
    let asc = server.get("/v1/conversations?order=asc&limit=2").await;
    assert_eq!(ids(&asc), strings(&[&made[0], &made[1]]));
    let asc_rest = server.get(&format!("/v1/conversations?order=asc&after={second}")).await;
    assert_eq!(ids(&asc_rest), strings(&[&made[2]]));
    assert_eq!(asc_rest.1["has_more"], false);
    // An empty conversation has no preview; a deleted one is gone.
    let empty = server.post("/v1/conversations", json!({})).await.1;
    assert_eq!(server.get("/v1/conversations?limit=1").await, (200, list(vec![entry(&empty, Value::Null)], true)));
    server.delete(&format!("/v1/conversations/{}", id(&empty))).await;
    assert_eq!(ids(&server.get("/v1/conversations?limit=1").await), strings(&[&made[2]]));
}

#[rstest]
#[tokio::test]
async fn text_with_nul_characters_is_listed_and_filtered(#[values(Sqlite, Postgres)] store: StoreKind) {
    let Some((_mock, server)) = server(store).await else { return };
    let nul =
        create(&server, json!({"input": "a\u{0}b", "metadata": {"k": "x\u{0}y", "quote": "say \"hi\" \\ é"}})).await;
    let plain = create(&server, json!({"input": "plain", "metadata": {"k": "v"}})).await;
    let (status, listed) = server.get("/v1/responses").await;
    assert_eq!(status, 200, "{listed}");
    // A NUL cannot be stored as preview text: it is left out, and the rest listed as usual.
    assert_eq!(listed["data"][1]["preview"], "ab");
    assert_eq!(listed["data"][1]["output_preview"], "answer to ab");
    assert_eq!(ids(&server.get("/v1/responses?metadata[k]=v").await), strings(&[&plain]));
    let quoted = "/v1/responses?metadata[quote]=say%20%22hi%22%20%5C%20%C3%A9";
    assert_eq!(ids(&server.get(quoted).await), strings(&[&nul]));
    assert_eq!(ids(&server.get("/v1/responses?search=ab").await), strings(&[&nul]));
}

#[rstest]
#[tokio::test]
async fn metadata_filters_and_search(#[values(Sqlite, Postgres)] store: StoreKind) {
    let Some((_mock, server)) = server(store).await else { return };
    let both = create(&server, json!({"input": "Hello World", "metadata": {"a": "1", "b": "2"}})).await;
    let one = create(&server, json!({"input": "goodbye 100%", "metadata": {"a": "1"}})).await;
    let other = create(&server, json!({"input": "world peace", "metadata": {"a": "2"}})).await;
    let get = |query: &str| {
        let (server, path) = (&server, format!("/v1/responses?{query}"));
        async move { server.get(&path).await }
    };
    assert_eq!(ids(&get("metadata[a]=1").await), strings(&[&one, &both]));
    assert_eq!(ids(&get("metadata[a]=1&metadata[b]=2").await), strings(&[&both]));
    assert_eq!(ids(&get("metadata[a]=3").await), Vec::<String>::new());
    assert_eq!(ids(&get("metadata[c]=1").await), Vec::<String>::new());
    assert_eq!(ids(&get("search=WORLD").await), strings(&[&other, &both]));
    assert_eq!(ids(&get("search=world&metadata[a]=2").await), strings(&[&other]));
    assert_eq!(ids(&get("search=0%25").await), strings(&[&one]));
    assert_eq!(ids(&get("search=_").await), Vec::<String>::new());

    let conv = |metadata: Value, text: &str| {
        server.post("/v1/conversations", json!({"metadata": metadata, "items": [{"role": "user", "content": text}]}))
    };
    let first = conv(json!({"a": "1", "b": "2"}), "Plans for MONDAY").await.1;
    let second = conv(json!({"a": "1"}), "monday again").await.1;
    conv(json!({}), "tuesday").await;
    let get = |query: &str| {
        let (server, path) = (&server, format!("/v1/conversations?{query}"));
        async move { server.get(&path).await }
    };
    assert_eq!(ids(&get("metadata[a]=1").await), strings(&[&second, &first]));
    assert_eq!(ids(&get("metadata[a]=1&metadata[b]=2").await), strings(&[&first]));
    assert_eq!(ids(&get("search=Monday&order=asc").await), strings(&[&first, &second]));
    assert_eq!(ids(&get("search=Monday&metadata[b]=2").await), strings(&[&first]));
}

#[rstest]
#[tokio::test]
async fn branches_and_chain_roots(#[values(Sqlite, Postgres)] store: StoreKind) {
    let Some((_mock, server)) = server(store).await else { return };
    let root = create(&server, json!({"input": "root"})).await;
    let left = create(&server, json!({"input": "left", "previous_response_id": id(&root)})).await;
    let right = create(&server, json!({"input": "right", "previous_response_id": id(&root)})).await;
    let deeper = create(&server, json!({"input": "deeper", "previous_response_id": id(&left)})).await;
    let lone = create(&server, json!({"input": "lone"})).await;
    let children = server.get(&format!("/v1/responses?previous_response_id={}", id(&root))).await;
    assert_eq!(children, (200, list(vec![node(&right, "right", 0), node(&left, "left", 1)], false)));
    let roots = server.get("/v1/responses?root=true").await;
    assert_eq!(roots, (200, list(vec![node(&lone, "lone", 0), node(&root, "root", 2)], false)));
    assert_eq!(ids(&server.get("/v1/responses?root=false").await).len(), 5);
    // Deleting a root makes its children roots.
    server.delete(&format!("/v1/responses/{}", id(&root))).await;
    assert_eq!(ids(&server.get("/v1/responses?root=true").await), strings(&[&lone, &right, &left]));
    let children = server.get(&format!("/v1/responses?previous_response_id={}&order=asc", id(&root))).await;
    assert_eq!(ids(&children), strings(&[&left, &right]));
    assert_eq!(ids(&server.get(&format!("/v1/responses?previous_response_id={}", id(&deeper))).await).len(), 0);
}

#[rstest]
#[tokio::test]
async fn a_tree_holds_the_branches_under_a_response(#[values(Sqlite, Postgres)] store: StoreKind) {
    let Some((_mock, server)) = server(store).await else { return };
    let turn = |input: &str, previous: Option<&Value>| {
        create(&server, json!({"input": input, "previous_response_id": previous.map(id)}))
    };
    let r1 = turn("r1", None).await;
    let r2 = turn("r2", Some(&r1)).await;
    let r3 = turn("r3", Some(&r1)).await;
    let r4 = turn("r4", Some(&r2)).await;
    let r5 = turn("r5", Some(&r4)).await;
    let tree = |id: &str, query: &str| {
        let (server, path) = (&server, format!("/v1/responses/{id}/tree{query}"));
        async move { server.get(&path).await }
    };
    let answer = |of: &Value, path: Vec<&Value>, data: Vec<Value>, has_more: bool| {
        let path: Vec<Value> = path.iter().map(|response| response["id"].clone()).collect();
        json!({"object": "response.tree", "id": of["id"], "path": path, "data": data, "has_more": has_more})
    };
    let whole =
        vec![node(&r1, "r1", 2), node(&r2, "r2", 1), node(&r3, "r3", 0), node(&r4, "r4", 1), node(&r5, "r5", 0)];
    assert_eq!(tree(id(&r1), "").await, (200, answer(&r1, vec![], whole.clone(), false)));
    assert_eq!(tree(id(&r1), "?depth=1").await, (200, answer(&r1, vec![], whole[..3].to_vec(), true)));
    assert_eq!(tree(id(&r1), "?depth=3").await, (200, answer(&r1, vec![], whole.clone(), false)));
    assert_eq!(tree(id(&r1), "?limit=2").await, (200, answer(&r1, vec![], whole[..2].to_vec(), true)));
    assert_eq!(tree(id(&r1), "?limit=5").await, (200, answer(&r1, vec![], whole.clone(), false)));
    assert_eq!(tree(id(&r4), "").await, (200, answer(&r4, vec![&r1, &r2], whole[3..].to_vec(), false)));

    // A deleted response in the middle stays as a bare node; a deleted leaf goes.
    server.delete(&format!("/v1/responses/{}", id(&r2))).await;
    server.delete(&format!("/v1/responses/{}", id(&r3))).await;
    let deleted = json!({
        "id": r2["id"], "object": "response.node", "previous_response_id": r1["id"], "created_at": r2["created_at"],
        "completed_at": null, "status": null, "model": null, "background": false, "conversation_id": null,
        "metadata": {}, "usage": null, "preview": null, "output_preview": null, "children": 1, "deleted": true,
    });
    let data = vec![node(&r1, "r1", 2), deleted, whole[3].clone(), whole[4].clone()];
    assert_eq!(tree(id(&r1), "").await, (200, answer(&r1, vec![], data, false)));
    assert_eq!(tree(id(&r5), "").await, (200, answer(&r5, vec![&r1, &r2, &r4], vec![whole[4].clone()], false)));
    // A deleted or unknown id is the 404 of GET /v1/responses/{id}.
    for gone in [id(&r2).to_string(), new_id("resp")] {
        let got = tree(&gone, "").await;
        assert_eq!(got.0, 404);
        assert_eq!(got, server.get(&format!("/v1/responses/{gone}")).await);
    }
}

#[rstest]
#[tokio::test]
async fn previews_of_rows_stored_before_they_existed_are_filled_by_the_migration(
    #[values(Sqlite, Postgres)] store: StoreKind,
) {
    let Some((_mock, server)) = server(store).await else { return };
    let with_nul = create(&server, json!({"input": "n\u{0}ul"})).await;
    let response = create(
        &server,
        json!({"input": [{"role": "user", "content": "earlier"},
        {"role": "user", "content": [{"type": "input_text", "text": "a"}, {"type": "input_text", "text": "b"}]}]}),
    )
    .await;
    let items = json!({"items": [{"role": "user", "content": "x".repeat(300)}]});
    let conversation = server.post("/v1/conversations", items).await.1;
    let listed = (server.get("/v1/responses").await, server.get("/v1/conversations").await);
    assert_eq!(listed.0 .1["data"][0]["preview"], "a\nb");
    // As the rows were before the migration: no previews; its statements fill them.
    server.database.execute("UPDATE responses SET preview = NULL; UPDATE conversations SET preview = NULL").await;
    assert_eq!(server.get("/v1/responses").await.1["data"][0]["preview"], Value::Null);
    let migration = match store {
        Sqlite => include_str!("../migrations/sqlite/0007_previews.sql"),
        Postgres => include_str!("../migrations/postgres/0008_previews.sql"),
    };
    let backfill = &migration[migration.find("UPDATE").unwrap()..];
    server.database.execute(backfill).await;
    // Alike, but for the text with a NUL, which SQLite's JSON functions cut short: that one is left without.
    let mut expected = listed.clone();
    expected.0 .1["data"][1]["preview"] = if store == Sqlite { Value::Null } else { json!("nul") };
    assert_eq!((server.get("/v1/responses").await, server.get("/v1/conversations").await), expected);
    assert_eq!(listed.1 .1["data"][0]["id"], conversation["id"]);
    assert_eq!(listed.1 .1["data"][0]["preview"], "x".repeat(200));
    assert_eq!(listed.0 .1["data"][0]["id"], response["id"]);
    assert_eq!((&listed.0 .1["data"][1]["id"], &listed.0 .1["data"][1]["preview"]), (&with_nul["id"], &json!("nul")));
}

#[rstest]
#[tokio::test]
async fn bad_parameters_are_400s(#[values(Sqlite, Postgres)] store: StoreKind) {
    let Some((_mock, server)) = server(store).await else { return };
    let r1 = create(&server, json!({"input": "r1"})).await;
    let error = |message: &str, param: &str, code: &str| {
        (400, json!({"error": {"message": message, "type": "invalid_request_error", "param": param, "code": code}}))
    };
    let between = |param: &str, min: u64, max: u64, got: u64| {
        let code = if got < min { "integer_below_min_value" } else { "integer_above_max_value" };
        let message = format!("Invalid '{param}': expected a value between {min} and {max}, but got {got} instead.");
        error(&message, param, code)
    };
    for path in ["/v1/responses", "/v1/conversations"] {
        assert_eq!(server.get(&format!("{path}?limit=0")).await, between("limit", 1, 100, 0));
        assert_eq!(server.get(&format!("{path}?limit=101")).await, between("limit", 1, 100, 101));
        let got = server.get(&format!("{path}?limit=x")).await;
        assert_eq!(
            got,
            error("Invalid type for 'limit': expected an integer, but got a string instead.", "limit", "invalid_type")
        );
        let got = server.get(&format!("{path}?order=up")).await;
        assert_eq!(
            got,
            error("Invalid value: 'up'. Supported values are: 'asc' and 'desc'.", "order", "invalid_value")
        );
        assert_eq!(
            server.get(&format!("{path}?sort=asc")).await,
            error("Unknown parameter: 'sort'.", "sort", "unknown_parameter")
        );
        let got = server.get(&format!("{path}?metadata[]=x")).await;
        let message =
            "Invalid 'metadata[]': a metadata key is not empty, and neither it nor its value holds a control \
            character.";
        assert_eq!(got, error(message, "metadata[]", "invalid_value"));
    }
    let got = server.get("/v1/conversations?root=true").await;
    assert_eq!(got, error("Unknown parameter: 'root'.", "root", "unknown_parameter"));
    let got = server.get("/v1/responses?root=yes").await;
    assert_eq!(
        got,
        error("Invalid type for 'root': expected a boolean, but got a string instead.", "root", "invalid_type")
    );
    let tree = |query: &str| {
        let (server, path) = (&server, format!("/v1/responses/{}/tree?{query}", id(&r1)));
        async move { server.get(&path).await }
    };
    assert_eq!(tree("depth=0").await, between("depth", 1, 1000, 0));
    assert_eq!(tree("depth=1001").await, between("depth", 1, 1000, 1001));
    assert_eq!(tree("limit=0").await, between("limit", 1, 1000, 0));
    assert_eq!(tree("limit=1001").await, between("limit", 1, 1000, 1001));
    assert_eq!(tree("after=x").await, error("Unknown parameter: 'after'.", "after", "unknown_parameter"));
}

#[rstest]
#[tokio::test]
async fn lists_are_the_callers_tenants_and_an_admin_names_one(#[values(Sqlite, Postgres)] store: StoreKind) {
    let mock = MockUpstream::start().await;
    let Some(server) = TestApp::builder()
        .store(store)
        .upstream(&mock.url)
        .config(|config| {
            config.auth.mode = Some(AuthMode::Keys);
            config.auth.keys = vec![key("alice", "sk-alice"), key("bob", "sk-bob")];
            config.auth.admin_keys = vec![key("ops", "sk-admin")];
        })
        .start()
        .await
    else {
        return;
    };
    let call = |key: &'static str, method: Method, path: String, body: Option<Value>| {
        let mut request = server.client.request(method, format!("{}{path}", server.base)).bearer_auth(key);
        if let Some(body) = body {
            request = request.json(&body);
        }
        async move {
            let response = request.send().await.unwrap();
            (response.status().as_u16(), response.json::<Value>().await.unwrap())
        }
    };
    let body = json!({"model": "m", "input": "alice's"});
    let (_, mine) = call("sk-alice", Method::POST, "/v1/responses".into(), Some(body)).await;
    let items = json!({"items": [{"role": "user", "content": "alice's"}]});
    let (_, conversation) = call("sk-alice", Method::POST, "/v1/conversations".into(), Some(items)).await;
    let tree = format!("/v1/responses/{}/tree", id(&mine));
    for path in ["/v1/responses", "/v1/conversations"] {
        assert_eq!(call("sk-bob", Method::GET, path.into(), None).await, (200, list(vec![], false)), "{path}");
        assert_eq!(call("sk-admin", Method::GET, path.into(), None).await, (200, list(vec![], false)), "{path}");
    }
    assert_eq!(call("sk-bob", Method::GET, tree.clone(), None).await.0, 404);
    // An admin acts for the tenant it names: reads, lists and creates there.
    let as_alice = |path: &str| format!("{path}?tenant=alice");
    assert_eq!(ids(&call("sk-admin", Method::GET, as_alice("/v1/responses"), None).await), [id(&mine)]);
    assert_eq!(ids(&call("sk-admin", Method::GET, as_alice("/v1/conversations"), None).await), [id(&conversation)]);
    assert_eq!(ids(&call("sk-admin", Method::GET, as_alice(&tree), None).await), [id(&mine)]);
    let listed = call("sk-admin", Method::GET, "/v1/responses?limit=1&tenant=alice&order=asc".into(), None).await;
    assert_eq!(ids(&listed), [id(&mine)]);
    let (status, made) = call("sk-admin", Method::POST, as_alice("/v1/conversations"), Some(json!({}))).await;
    assert_eq!(status, 200);
    assert_eq!(call("sk-alice", Method::GET, format!("/v1/conversations/{}", id(&made)), None).await.0, 200);
    // Anyone else naming a tenant is refused.
    let refused = (
        403,
        json!({"error": {"message": "Only an admin key may act for another tenant ('tenant').",
            "type": "invalid_request_error", "param": "tenant", "code": "permission_denied"}}),
    );
    assert_eq!(call("sk-bob", Method::GET, as_alice("/v1/responses"), None).await, refused);
    assert_eq!(call("sk-alice", Method::GET, as_alice("/v1/conversations"), None).await, refused);
}

#[rstest]
#[tokio::test]
async fn expired_data_is_never_listed(#[values(Sqlite, Postgres)] store: StoreKind) {
    let mock = MockUpstream::start().await;
    let day = std::time::Duration::from_secs(86_400);
    let builder = TestApp::builder().store(store).upstream(&mock.url);
    let Some(server) = builder.config(move |config| config.retention.conversations = Some(day * 10)).start().await
    else {
        return;
    };
    let root = create(&server, json!({"input": "root"})).await;
    let dead = create(&server, json!({"input": "dead", "previous_response_id": id(&root)})).await;
    let old = server.post("/v1/conversations", json!({})).await.1;
    server.clock.advance(day * 20);
    let child = create(&server, json!({"input": "child", "previous_response_id": id(&root)})).await;
    let kept = server.post("/v1/conversations", json!({})).await.1;
    assert_eq!(ids(&server.get("/v1/responses").await), strings(&[&child, &dead, &root]));
    assert_eq!(ids(&server.get("/v1/conversations").await), strings(&[&kept]));
    server.clock.advance(day * 20);
    // The root is 40 days old and kept, for a fresh response continues it; the branch beside it is not.
    assert_eq!(ids(&server.get("/v1/responses").await), strings(&[&child, &root]));
    assert_eq!(ids(&server.get("/v1/responses?root=true").await), strings(&[&root]));
    assert_eq!(ids(&server.get(&format!("/v1/responses/{}/tree", id(&root))).await), strings(&[&root, &child]));
    assert_eq!(server.get(&format!("/v1/responses/{}/tree", id(&dead))).await.0, 404);
    assert_eq!(ids(&server.get("/v1/conversations").await), Vec::<String>::new());
    assert_eq!(server.get(&format!("/v1/conversations/{}", id(&old))).await.0, 404);
}

#[rstest]
#[tokio::test]
async fn a_background_response_is_listed_when_done(#[values(Sqlite, Postgres)] store: StoreKind) {
    let mock = MockUpstream::start().await;
    let builder = TestApp::builder().store(store).upstream(&mock.url);
    let quick = |config: &mut threadline::config::Config| {
        config.background.poll_interval = std::time::Duration::from_millis(50);
    };
    let Some(server) = builder.config(quick).start().await else { return };
    let queued = create(&server, json!({"input": "later", "background": true})).await;
    let listed = server.get("/v1/responses").await.1;
    assert_eq!(
        (listed["data"][0]["preview"].as_str(), listed["data"][0]["background"].as_bool()),
        (Some("later"), Some(true))
    );
    assert_eq!(server.next_saved().await, id(&queued));
    let done = server.get(&format!("/v1/responses/{}", id(&queued))).await.1;
    let mut expected = node(&done, "later", 0);
    expected["background"] = json!(true);
    assert_eq!(server.get("/v1/responses").await, (200, list(vec![expected], false)));
}
