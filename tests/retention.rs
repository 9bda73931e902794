//! Retention on both stores, with the store's clock moved forward instead of waiting: an expired response or
//! conversation is not found anywhere, exactly like a deleted one (the history cache included); a chain in use keeps
//! its old turns; the purge erases in small batches exactly what expired, leaving no orphan rows, also when two run at
//! once; `threadline purge` (also `--tenant`) and the periodic purge of `serve` run as processes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::db::TestDb;
use common::process::ServerProcess;
use common::{assert_error, msg, user_item, MockUpstream, Postgres, Sqlite, StoreKind, TestApp};
use rstest::rstest;
use serde_json::{json, Value};
use threadline::model::{Conversation, Metadata};
use threadline::store::{NewTurn, Purge, PurgeReport, Store, StoreError};

const TENANT: &str = "default";

fn days(n: u64) -> Duration {
    Duration::from_secs(n * 86_400)
}

/// The context the mock upstream should get: each earlier user text with its answer, then the new text.
fn context(answered: &[&str], new: &str) -> Vec<Value> {
    let earlier = answered.iter().flat_map(|text| [msg("user", text), msg("assistant", &format!("answer to {text}"))]);
    earlier.chain([msg("user", new)]).collect()
}

/// Answers with every occurrence of each `(id, placeholder)` replaced.
fn redacted(answers: Vec<(u16, Value)>, ids: &[(&str, &str)]) -> Vec<(u16, Value)> {
    let redact = |body: Value| {
        let text = ids.iter().fold(body.to_string(), |text, (id, placeholder)| text.replace(id, placeholder));
        serde_json::from_str(&text).unwrap()
    };
    answers.into_iter().map(|(status, body)| (status, redact(body))).collect()
}

/// Every answer about response `id`: GET, its replay, its input items, continuing it on `/v1/responses` and on
/// `/api/v1/chat`, and DELETE — with the id shown as `ID`.
async fn response_answers(app: &TestApp, id: &str) -> Vec<(u16, Value)> {
    let continued = json!({"model": "m", "input": "more", "previous_response_id": id});
    let answers = vec![
        app.get(&format!("/v1/responses/{id}")).await,
        app.get(&format!("/v1/responses/{id}?stream=true")).await,
        app.get(&format!("/v1/responses/{id}/input_items")).await,
        app.post("/v1/responses", continued.clone()).await,
        app.post("/api/v1/chat", continued).await,
        app.delete(&format!("/v1/responses/{id}")).await,
    ];
    redacted(answers, &[(id, "ID")])
}

/// Every answer about conversation `id` and its item `item`: retrieve, update, list and add items, get and remove the
/// item, a turn in it, and DELETE — with the ids shown as `ID` and `ITEM`.
async fn conversation_answers(app: &TestApp, id: &str, item: &str) -> Vec<(u16, Value)> {
    let path = format!("/v1/conversations/{id}");
    let answers = vec![
        app.get(&path).await,
        app.post(&path, json!({"metadata": {"a": "b"}})).await,
        app.get(&format!("{path}/items")).await,
        app.post(&format!("{path}/items"), json!({"items": [{"role": "user", "content": "x"}]})).await,
        app.get(&format!("{path}/items/{item}")).await,
        app.delete(&format!("{path}/items/{item}")).await,
        app.post("/v1/responses", json!({"model": "m", "input": "x", "conversation": id})).await,
        app.delete(&path).await,
    ];
    redacted(answers, &[(id, "ID"), (item, "ITEM")])
}

/// Creates a conversation holding a user message `text`; returns its id and that item's id.
async fn conversation(app: &TestApp, text: &str) -> (String, String) {
    let (status, created) = app.post("/v1/conversations", json!({"items": [{"role": "user", "content": text}]})).await;
    assert_eq!(status, 200, "{created}");
    let id = created["id"].as_str().unwrap().to_string();
    let (_, items) = app.get(&format!("/v1/conversations/{id}/items")).await;
    (id, items["data"][0]["id"].as_str().unwrap().to_string())
}

/// Adds a user message `text` to conversation `id`.
async fn add_item(app: &TestApp, id: &str, text: &str) {
    let (status, added) =
        app.post(&format!("/v1/conversations/{id}/items"), json!({"items": [{"role": "user", "content": text}]})).await;
    assert_eq!(status, 200, "{added}");
}

/// The ids `query` reads, sorted.
async fn ids(db: &TestDb, query: &str) -> Vec<String> {
    let mut ids: Vec<String> = db.column(query).await;
    ids.sort();
    ids
}

fn sorted(ids: &[&String]) -> Vec<String> {
    let mut ids: Vec<String> = ids.iter().map(|&id| id.clone()).collect();
    ids.sort();
    ids
}

fn report(responses: u64, response_items: u64, conversations: u64, conversation_items: u64) -> PurgeReport {
    PurgeReport { responses, response_items, conversations, conversation_items }
}

#[rstest]
#[tokio::test]
async fn an_expired_response_is_gone_everywhere_like_a_deleted_one(#[values(Sqlite, Postgres)] kind: StoreKind) {
    let mock = MockUpstream::start().await;
    let Some(app) = TestApp::builder().store(kind).upstream(&mock.url).start().await else { return };
    let root = app.turn("u1", None).await;
    // Continuing the root caches it; the new tip joins the cache as it is stored.
    let tip = app.turn("u2", Some(&root)).await;
    assert!(app.store.history(TENANT, &tip, 100).await.unwrap().unwrap().cached);
    let deleted = app.turn("d", None).await;
    assert_eq!(app.delete(&format!("/v1/responses/{deleted}")).await.0, 200);
    let like_deleted = response_answers(&app, &deleted).await;
    let not_found = json!({"error": {
        "message": "Response with id 'ID' not found.", "type": "invalid_request_error", "param": null, "code": null,
    }});
    let not_continued = json!({"error": {
        "message": "Previous response with id 'ID' not found.", "type": "invalid_request_error",
        "param": "previous_response_id", "code": "previous_response_not_found",
    }});
    let lm_studio = json!({"error": {
        "type": "invalid_request", "message": "Previous response with id 'ID' not found.",
        "code": "previous_response_not_found", "param": "previous_response_id",
    }});
    let expected = [
        (404, not_found.clone()),
        (404, not_found.clone()),
        (404, not_found.clone()),
        (400, not_continued),
        (400, lm_studio),
        (404, not_found),
    ];
    assert_eq!(like_deleted, expected);

    app.clock.advance(days(29));
    let (status, kept) = app.get(&format!("/v1/responses/{root}")).await;
    assert_eq!((status, kept["output"][0]["content"][0]["text"].as_str()), (200, Some("answer to u1")));
    assert!(app.store.history(TENANT, &tip, 100).await.unwrap().unwrap().cached, "29 days old: still cached");
    app.clock.advance(days(2));
    assert!(app.store.history(TENANT, &tip, 100).await.unwrap().is_none(), "the cache does not serve it");
    mock.take();
    for expired in [&tip, &root] {
        assert_eq!(response_answers(&app, expired).await, expected, "{expired}");
    }
    assert!(mock.take().is_empty(), "nothing reached the upstream");
}

#[rstest]
#[tokio::test]
async fn a_chain_in_use_keeps_its_old_turns_while_a_dead_branch_goes(#[values(Sqlite, Postgres)] kind: StoreKind) {
    let mock = MockUpstream::start().await;
    let Some(app) = TestApp::builder().store(kind).upstream(&mock.url).start().await else { return };
    let root = app.turn("u1", None).await;
    let dead = app.turn("b1", Some(&root)).await;
    let dead_tip = app.turn("b2", Some(&dead)).await;
    app.clock.advance(days(20));
    let child = app.turn("u2", Some(&root)).await;
    app.clock.advance(days(20));
    let grandchild = app.turn("u3", Some(&child)).await;
    // The root is 40 days old, and kept: a fresh turn continues it. The branch beside it is not.
    let (status, old) = app.get(&format!("/v1/responses/{root}")).await;
    assert_eq!((status, old["output"][0]["content"][0]["text"].as_str()), (200, Some("answer to u1")));
    let (status, input) = app.get(&format!("/v1/responses/{root}/input_items")).await;
    assert_eq!((status, input["data"][0]["content"][0]["text"].as_str()), (200, Some("u1")));
    for gone in [&dead, &dead_tip] {
        assert_error(&app.get(&format!("/v1/responses/{gone}")).await, 404, None, None);
    }
    let continued = app.post("/v1/responses", json!({"model": "m", "input": "b3", "previous_response_id": dead_tip}));
    assert_error(&continued.await, 400, Some("previous_response_not_found"), Some("previous_response_id"));
    mock.take();
    let newest = app.turn("u4", Some(&grandchild)).await;
    assert_eq!(mock.only_messages(), context(&["u1", "u2", "u3"], "u4"));
    let branch = app.turn("r2", Some(&root)).await;
    assert_eq!(mock.only_messages(), context(&["u1"], "r2"));

    assert_eq!(app.store.purge(Purge::Expired).await.unwrap(), report(2, 4, 0, 0), "the dead branch only");
    let kept = sorted(&[&root, &child, &grandchild, &newest, &branch]);
    assert_eq!(ids(&app.database, "SELECT id FROM responses").await, kept);
    assert_eq!(app.database.count("SELECT COUNT(*) FROM items").await, 10);

    // Once retention has passed the newest turns too, the whole chain is gone.
    app.clock.advance(days(31));
    for gone in [&root, &child, &grandchild, &newest, &branch] {
        assert_error(&app.get(&format!("/v1/responses/{gone}")).await, 404, None, None);
    }
    let continued = app.post("/v1/responses", json!({"model": "m", "input": "u5", "previous_response_id": newest}));
    assert_error(&continued.await, 400, Some("previous_response_not_found"), Some("previous_response_id"));
    assert_eq!(app.store.purge(Purge::Expired).await.unwrap(), report(5, 10, 0, 0));
    assert_eq!(app.database.count("SELECT COUNT(*) FROM responses").await, 0);
    assert_eq!(app.database.count("SELECT COUNT(*) FROM items").await, 0);
}

#[rstest]
#[tokio::test]
async fn conversations_expire_after_their_last_use(#[values(Sqlite, Postgres)] kind: StoreKind) {
    let mock = MockUpstream::start().await;
    let builder = TestApp::builder().store(kind).upstream(&mock.url);
    let Some(app) = builder.config(|config| config.retention.conversations = Some(days(10))).start().await else {
        return;
    };
    let (used, used_item) = conversation(&app, "hi").await;
    let (idle, idle_item) = conversation(&app, "hello").await;
    let (deleted, deleted_item) = conversation(&app, "bye").await;
    assert_eq!(app.delete(&format!("/v1/conversations/{deleted}")).await.0, 200);
    let like_deleted = conversation_answers(&app, &deleted, &deleted_item).await;
    let not_found = json!({"error": {
        "message": "Conversation with id 'ID' not found.", "type": "invalid_request_error", "param": null, "code": null,
    }});
    assert!(like_deleted.iter().all(|answer| *answer == (404, not_found.clone())), "{like_deleted:?}");

    // Each use keeps it ten more days: its metadata replaced (day 6), items added (day 12), a turn (day 20).
    app.clock.advance(days(6));
    assert_eq!(app.post(&format!("/v1/conversations/{used}"), json!({"metadata": {"k": "v"}})).await.0, 200);
    app.clock.advance(days(6));
    assert_eq!(conversation_answers(&app, &idle, &idle_item).await, like_deleted, "unused for 12 days");
    add_item(&app, &used, "u1").await;
    app.clock.advance(days(8));
    let turn = app.create(json!({"model": "m", "input": "u2", "conversation": used})).await;
    assert_eq!(turn["output"][0]["content"][0]["text"], "answer to u2");
    assert_eq!(mock.only_messages(), vec![msg("user", "hi"), msg("user", "u1"), msg("user", "u2")]);
    // Reading is no use: nine days after the turn it is still there, eleven days after it is gone.
    app.clock.advance(days(9));
    let (status, page) = app.get(&format!("/v1/conversations/{used}/items?order=asc")).await;
    assert_eq!((status, page["data"].as_array().unwrap().len()), (200, 4));
    assert_eq!(app.get(&format!("/v1/conversations/{used}")).await.1["metadata"], json!({"k": "v"}));
    app.clock.advance(days(2));
    assert_eq!(conversation_answers(&app, &used, &used_item).await, like_deleted, "eleven days after its last use");
    assert!(mock.take().is_empty(), "no turn ran in a gone conversation");

    // A turn stored into it is refused as for a deleted conversation.
    let (response, pieces) = app.store.response(TENANT, turn["id"].as_str().unwrap()).await.unwrap().unwrap();
    let response = threadline::model::Response { id: threadline::model::new_id("resp"), ..response };
    let input = [user_item("late")];
    let late = NewTurn {
        response: &response,
        input: &input,
        tokens: &[],
        pieces: &pieces,
        store_response: true,
        conversation: Some(&used),
    };
    assert!(matches!(app.store.save_turn(TENANT, late).await, Err(StoreError::ConversationNotFound(id)) if id == used));
    assert_eq!(app.store.response(TENANT, &response.id).await.unwrap(), None, "nothing of it was stored");
}

#[rstest]
#[tokio::test]
async fn the_purge_erases_exactly_what_expired_in_small_batches(#[values(Sqlite, Postgres)] kind: StoreKind) {
    let mock = MockUpstream::start().await;
    let builder = TestApp::builder().store(kind).upstream(&mock.url).config(|config| {
        config.retention.conversations = Some(days(10));
        config.retention.purge_batch = 3;
    });
    let Some(app) = builder.start().await else { return };
    // To expire: a chain of three, five single turns, a deleted turn nothing continues; a conversation of two items
    // and a deleted one.
    let a1 = app.turn("a1", None).await;
    let a2 = app.turn("a2", Some(&a1)).await;
    app.turn("a3", Some(&a2)).await;
    for n in 0..5 {
        app.turn(&format!("single {n}"), None).await;
    }
    let tombstone = app.turn("t", None).await;
    assert_eq!(app.delete(&format!("/v1/responses/{tombstone}")).await.0, 200);
    let (expiring, _) = conversation(&app, "x1").await;
    add_item(&app, &expiring, "x2").await;
    let (deleted, _) = conversation(&app, "y").await;
    assert_eq!(app.delete(&format!("/v1/conversations/{deleted}")).await.0, 200);
    // To keep: a turn continued 25 days later, and a deleted turn between two turns, the last one 25 days later; a
    // conversation made then.
    let b1 = app.turn("b1", None).await;
    let c1 = app.turn("c1", None).await;
    let c2 = app.turn("c2", Some(&c1)).await;
    app.clock.advance(days(25));
    let b2 = app.turn("b2", Some(&b1)).await;
    let c3 = app.turn("c3", Some(&c2)).await;
    assert_eq!(app.delete(&format!("/v1/responses/{c2}")).await.0, 200);
    let (kept, _) = conversation(&app, "z").await;
    app.clock.advance(days(6));

    assert_eq!(app.store.purge(Purge::Expired).await.unwrap(), report(9, 16, 2, 2));
    let db = &app.database;
    assert_eq!(db.count("SELECT COUNT(*) FROM items WHERE response_id NOT IN (SELECT id FROM responses)").await, 0);
    let orphans = "SELECT COUNT(*) FROM conversation_items WHERE conversation_id NOT IN (SELECT id FROM conversations)";
    assert_eq!(db.count(orphans).await, 0);
    assert_eq!(ids(db, "SELECT id FROM responses").await, sorted(&[&b1, &b2, &c1, &c2, &c3]));
    assert_eq!(db.count("SELECT COUNT(*) FROM items").await, 8);
    assert_eq!(ids(db, "SELECT id FROM conversations").await, [kept]);
    assert_eq!(db.count("SELECT COUNT(*) FROM conversation_items").await, 1);
    // What is kept still works: the deleted turn is skipped, as before the purge.
    mock.take();
    app.turn("c4", Some(&c3)).await;
    assert_eq!(mock.only_messages(), context(&["c1", "c3"], "c4"));
    assert_eq!(app.store.purge(Purge::Expired).await.unwrap(), PurgeReport::default(), "nothing more to purge");
}

#[rstest]
#[tokio::test]
async fn two_purges_at_once_remove_everything_exactly_once(#[values(Sqlite, Postgres)] kind: StoreKind) {
    let Some(db) = TestDb::create(kind).await else { return };
    let db = Arc::new(db);
    let replica = || {
        let builder = TestApp::builder().database(db.clone()).upstream("echo");
        builder.config(|config| config.retention.purge_batch = 3).start()
    };
    let (a, b) = (replica().await.unwrap(), replica().await.unwrap());
    for n in 0..15 {
        a.turn(&format!("a{n}"), None).await;
        b.turn(&format!("b{n}"), None).await;
    }
    let mut previous = None;
    for n in 0..10 {
        previous = Some(a.turn(&format!("c{n}"), previous.as_deref()).await);
    }
    a.clock.advance(days(31));
    b.clock.advance(days(31));
    let (first, second) = tokio::join!(a.store.purge(Purge::Expired), b.store.purge(Purge::Expired));
    let (first, second) = (first.unwrap(), second.unwrap());
    assert_eq!((first.responses + second.responses, first.response_items + second.response_items), (40, 80));
    assert_eq!(db.count("SELECT COUNT(*) FROM responses").await, 0);
    assert_eq!(db.count("SELECT COUNT(*) FROM items").await, 0);
}

/// Runs `threadline purge --database-url URL` with more `args` and `env`; returns its stdout, asserting success.
async fn purge_command(url: &str, args: &[&str], env: &[(&str, &str)]) -> String {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_threadline"));
    command.args(["purge", "--database-url", url]).args(args).envs(env.iter().copied()).env("RUST_LOG", "warn");
    let output = tokio::task::spawn_blocking(move || command.output().unwrap()).await.unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap()
}

#[rstest]
#[tokio::test]
async fn threadline_purge_erases_a_tenant_or_what_expired(#[values(Sqlite, Postgres)] kind: StoreKind) {
    let Some(app) = TestApp::builder().store(kind).upstream("echo").start().await else { return };
    let (store, db) = (&app.store, &app.database);
    // This app's tenant: a chain of two and a conversation.
    let mine = app.turn("u1", None).await;
    let mine_too = app.turn("u2", Some(&mine)).await;
    conversation(&app, "hi").await;
    // Another tenant: a chain of two whose first turn is deleted, a conversation of two items and a deleted one.
    let (template, pieces) = store.response(TENANT, &mine).await.unwrap().unwrap();
    let first = threadline::model::Response { id: threadline::model::new_id("resp"), ..template.clone() };
    let second = threadline::model::Response {
        id: threadline::model::new_id("resp"),
        previous_response_id: Some(first.id.clone()),
        ..template
    };
    common::save(&**store, "other", &first, &[user_item("o1")], &pieces).await;
    common::save(&**store, "other", &second, &[user_item("o2")], &pieces).await;
    assert!(store.delete_response("other", &first.id).await.unwrap());
    let theirs = Conversation::new(Metadata::new());
    store.create_conversation("other", &theirs, &[user_item("a"), user_item("b")], &[]).await.unwrap();
    let gone = Conversation::new(Metadata::new());
    store.create_conversation("other", &gone, &[user_item("c")], &[]).await.unwrap();
    assert!(store.delete_conversation("other", &gone.id).await.unwrap());

    let url = db.url().to_string();
    let erased = purge_command(&url, &["--tenant", "other"], &[]).await;
    assert_eq!(erased, "purged 2 responses (2 items), 2 conversations (2 items)\n");
    for table in ["responses", "items", "conversations", "conversation_items"] {
        let count = |tenant: &str| format!("SELECT COUNT(*) FROM {table} WHERE tenant = '{tenant}'");
        let expected = [("responses", 2), ("items", 4), ("conversations", 1), ("conversation_items", 1)];
        let mine = expected.iter().find(|(name, _)| *name == table).unwrap().1;
        assert_eq!((db.count(&count("other")).await, db.count(&count(TENANT)).await), (0, mine), "{table}");
    }
    let again = purge_command(&url, &["--tenant", "other"], &[]).await;
    assert_eq!(again, "purged 0 responses (0 items), 0 conversations (0 items)\n");

    // Expiry, by the real clock: the newest turn and the conversation made 40 days old (the root is still fresh).
    db.execute(&format!("UPDATE responses SET created_at = created_at - 3456000 WHERE id = '{mine_too}'")).await;
    db.execute("UPDATE conversations SET updated_at = updated_at - 3456000").await;
    let expired = purge_command(&url, &[], &[]).await;
    assert_eq!(expired, "purged 1 responses (2 items), 0 conversations (0 items)\n", "conversations kept forever");
    let expired = purge_command(&url, &[], &[("THREADLINE_RETENTION__CONVERSATIONS", "30d")]).await;
    assert_eq!(expired, "purged 0 responses (0 items), 1 conversations (1 items)\n");
    assert_eq!(ids(db, "SELECT id FROM responses").await, [mine]);
    assert_eq!(db.count("SELECT COUNT(*) FROM conversations").await, 0);
}

#[rstest]
#[tokio::test]
async fn the_server_purges_expired_data_periodically_and_counts_it(#[values(Sqlite, Postgres)] kind: StoreKind) {
    let Some(app) = TestApp::builder().store(kind).upstream("echo").start().await else { return };
    let old = app.turn("old", None).await;
    let fresh = app.turn("fresh", None).await;
    let db = &app.database;
    db.execute(&format!("UPDATE responses SET created_at = created_at - 3456000 WHERE id = '{old}'")).await;
    let mut server = ServerProcess::start(&["--upstream", "echo", "--database-url", db.url()], &[]).await;
    // The first purge runs as the server starts.
    server.wait_for_log("purged 1 responses (2 items), 0 conversations (0 items)").await;
    assert_eq!(ids(db, "SELECT id FROM responses").await, [fresh]);
    let metrics = reqwest::get(format!("{}/metrics", server.base)).await.unwrap().text().await.unwrap();
    assert!(metrics.contains("threadline_purged_total{kind=\"responses\"} 1\n"), "{metrics}");
    assert!(metrics.contains("threadline_purged_total{kind=\"conversations\"} 0\n"), "{metrics}");
    server.terminate();
    assert!(server.wait_exit().await.0.success());
}

#[rstest]
#[tokio::test]
async fn erasing_a_tenant_leaves_no_chain_in_a_history_cache(#[values(Sqlite, Postgres)] kind: StoreKind) {
    let Some(db) = TestDb::create(kind).await else { return };
    let db = Arc::new(db);
    let replica = || TestApp::builder().database(db.clone()).upstream("echo").start();
    let (eraser, other) = (replica().await.unwrap(), replica().await.unwrap());
    let root = other.turn("u1", None).await;
    let tip = other.turn("u2", Some(&root)).await;
    eraser.turn("u3", Some(&tip)).await;
    for app in [&eraser, &other] {
        assert!(app.store.history(TENANT, &tip, 100).await.unwrap().unwrap().cached);
    }
    assert_eq!(eraser.store.purge(Purge::Tenant(TENANT)).await.unwrap(), report(3, 6, 0, 0));
    assert!(eraser.store.history(TENANT, &tip, 100).await.unwrap().is_none(), "its own cache");
    if kind == Postgres {
        // Another replica hears of it (and serves no chain of the tenant from its cache until it has).
        assert!(other.store.history(TENANT, &tip, 100).await.unwrap().is_none(), "another replica's cache");
    }
}
