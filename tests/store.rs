//! The store behaviours, run against both backends: SQLite and Postgres (a fresh database per test).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::db::TestDb;
use common::{Postgres, Sqlite, StoreKind};
use rstest::rstest;
use serde_json::json;
use threadline::config::DatabaseConfig;
use threadline::model::{
    new_id, ContentPart, Conversation, Item, ItemStatus, Message, Metadata, Response, ResponseStatus, Role,
};
use threadline::store::{ItemList, NewTurn, Order, Page, PageRequest, Store, StoreError};

const TENANT: &str = "default";

fn message(role: Role, text: &str) -> Item {
    let part = match role {
        Role::Assistant => ContentPart::output_text(text),
        _ => ContentPart::InputText { text: text.to_string() },
    };
    Item::Message(Message { id: new_id("msg"), status: ItemStatus::Completed, role, content: vec![part], phase: None })
}

fn texts<'a>(items: impl IntoIterator<Item = &'a Item>) -> Vec<String> {
    items.into_iter().map(Item::text).collect()
}

/// The store over `db`, with its history cache on or off.
async fn open(db: &TestDb, cached: bool) -> std::sync::Arc<dyn Store> {
    let cache = if cached { DatabaseConfig::default().history_cache_bytes } else { 0 };
    db.open_with(&DatabaseConfig { history_cache_bytes: cache, ..DatabaseConfig::default() }).await
}

/// The first page of at most 100 items in `order`.
fn all(order: Order) -> PageRequest {
    PageRequest { after: None, limit: 100, order }
}

/// The page holding `items`.
fn page(items: &[Item], has_more: bool) -> Page {
    Page { items: items.to_vec(), has_more }
}

/// A completed response continuing `previous`, answering `reply`.
fn response(previous: Option<&str>, reply: &str) -> Response {
    let mut response: Response = serde_json::from_value(json!({
        "id": new_id("resp"), "object": "response", "created_at": chrono::Utc::now().timestamp(), "status": "completed",
        "background": false,
        "completed_at": 1, "error": null, "frequency_penalty": 0.0, "incomplete_details": null, "instructions": null,
        "max_output_tokens": null, "max_tool_calls": null, "model": "m", "moderation": null, "output": [],
        "parallel_tool_calls": true, "presence_penalty": 0.0, "previous_response_id": previous,
        "prompt_cache_key": null, "prompt_cache_retention": null, "reasoning": {"effort": null, "summary": null},
        "safety_identifier": null, "service_tier": "default", "store": true, "temperature": 1.0,
        "text": {"format": {"type": "text"}, "verbosity": "medium"}, "tool_choice": "auto", "tools": [],
        "top_logprobs": 0, "top_p": 1.0, "truncation": "disabled", "usage": null, "user": null, "metadata": {"k": "v"},
    }))
    .unwrap();
    response.output = vec![message(Role::Assistant, reply)];
    response
}

/// Stores a turn with input `said` and output `reply`, returning its id.
async fn turn(store: &dyn Store, tenant: &str, previous: Option<&str>, said: &str, reply: &str) -> String {
    let response = response(previous, reply);
    common::save(store, tenant, &response, &[message(Role::User, said)], &vec![vec![reply.len().into()]]).await;
    response.id
}

#[rstest]
#[tokio::test]
async fn save_and_read_back(#[values(Sqlite, Postgres)] kind: StoreKind) {
    let Some(db) = TestDb::create(kind).await else { return };
    let store = db.open().await;
    let mut stored = response(None, "hello");
    stored.output.insert(0, message(Role::Assistant, "first"));
    let input = [message(Role::System, "rules"), message(Role::User, "hi")];
    let pieces = vec![vec![2.into(), 3.into()], vec![5.into()]];
    common::save(&*store, TENANT, &stored, &input, &pieces).await;
    assert_eq!(store.response(TENANT, &stored.id).await.unwrap(), Some((stored.clone(), pieces)));
    assert_eq!(
        store.items_page(TENANT, ItemList::ResponseInput(&stored.id), &all(Order::Asc)).await.unwrap(),
        Some(page(&input, false))
    );
    assert_eq!(store.response(TENANT, "resp_unknown").await.unwrap(), None);
    store.ping().await.unwrap();
}

#[rstest]
#[tokio::test]
async fn history_orders_turns_then_input_before_output(
    #[values(Sqlite, Postgres)] kind: StoreKind,
    #[values(true, false)] cached: bool,
) {
    let Some(db) = TestDb::create(kind).await else { return };
    let store = open(&db, cached).await;
    let r1 = turn(&*store, TENANT, None, "u1", "a1").await;
    let r2 = turn(&*store, TENANT, Some(&r1), "u2", "a2").await;
    let r3 = turn(&*store, TENANT, Some(&r2), "u3", "a3").await;
    let branch = turn(&*store, TENANT, Some(&r1), "b2", "ab2").await;
    let chain = store.history(TENANT, &r3, 100).await.unwrap().unwrap();
    assert_eq!(chain.status(), ResponseStatus::Completed);
    assert_eq!(texts(chain.items()), ["u1", "a1", "u2", "a2", "u3", "a3"]);
    let chain = store.history(TENANT, &branch, 100).await.unwrap().unwrap();
    assert_eq!(texts(chain.items()), ["u1", "a1", "b2", "ab2"]);
    assert!(store.history(TENANT, "resp_unknown", 100).await.unwrap().is_none());
}

#[rstest]
#[tokio::test]
async fn delete_leaves_a_tombstone(#[values(Sqlite, Postgres)] kind: StoreKind, #[values(true, false)] cached: bool) {
    let Some(db) = TestDb::create(kind).await else { return };
    let store = open(&db, cached).await;
    let r1 = turn(&*store, TENANT, None, "u1", "a1").await;
    let r2 = turn(&*store, TENANT, Some(&r1), "u2", "a2").await;
    let r3 = turn(&*store, TENANT, Some(&r2), "u3", "a3").await;
    assert!(store.delete_response(TENANT, &r2).await.unwrap());
    assert!(!store.delete_response(TENANT, &r2).await.unwrap());
    assert_eq!(store.response(TENANT, &r2).await.unwrap(), None);
    assert_eq!(store.items_page(TENANT, ItemList::ResponseInput(&r2), &all(Order::Asc)).await.unwrap(), None);
    assert!(store.history(TENANT, &r2, 100).await.unwrap().is_none());
    let chain = store.history(TENANT, &r3, 100).await.unwrap().unwrap();
    assert_eq!(texts(chain.items()), ["u1", "a1", "u3", "a3"]);
    // A turn added under the deleted one later still resolves.
    let r4 = turn(&*store, TENANT, Some(&r3), "u4", "a4").await;
    assert_eq!(
        texts(store.history(TENANT, &r4, 100).await.unwrap().unwrap().items()),
        ["u1", "a1", "u3", "a3", "u4", "a4"]
    );
}

#[rstest]
#[tokio::test]
async fn tenants_are_isolated(#[values(Sqlite, Postgres)] kind: StoreKind) {
    let Some(db) = TestDb::create(kind).await else { return };
    let store = db.open().await;
    let mine = turn(&*store, "alice", None, "private", "a").await;
    assert_eq!(store.response("bob", &mine).await.unwrap(), None);
    assert_eq!(store.items_page("bob", ItemList::ResponseInput(&mine), &all(Order::Asc)).await.unwrap(), None);
    assert!(store.history("bob", &mine, 100).await.unwrap().is_none());
    assert!(!store.delete_response("bob", &mine).await.unwrap());
    // Bob chaining onto Alice's id sees only his own turn.
    let theirs = turn(&*store, "bob", Some(&mine), "b", "bb").await;
    assert_eq!(texts(store.history("bob", &theirs, 100).await.unwrap().unwrap().items()), ["b", "bb"]);
    assert!(store.response("alice", &mine).await.unwrap().is_some());
}

#[rstest]
#[tokio::test]
async fn the_depth_limit_counts_turns(
    #[values(Sqlite, Postgres)] kind: StoreKind,
    #[values(true, false)] cached: bool,
) {
    let Some(db) = TestDb::create(kind).await else { return };
    let store = open(&db, cached).await;
    let r1 = turn(&*store, TENANT, None, "u1", "a1").await;
    let r2 = turn(&*store, TENANT, Some(&r1), "u2", "a2").await;
    let r3 = turn(&*store, TENANT, Some(&r2), "u3", "a3").await;
    assert_eq!(store.history(TENANT, &r3, 3).await.unwrap().unwrap().items().len(), 6);
    let err = store.history(TENANT, &r3, 2).await.unwrap_err();
    assert!(matches!(err, StoreError::ChainTooDeep(2)), "{err:?}");
}

#[rstest]
#[tokio::test]
async fn the_status_of_the_last_turn_is_reported(#[values(Sqlite, Postgres)] kind: StoreKind) {
    let Some(db) = TestDb::create(kind).await else { return };
    let store = db.open().await;
    let mut failed = response(None, "partial");
    failed.status = ResponseStatus::Failed;
    common::save(&*store, TENANT, &failed, &[message(Role::User, "q")], &vec![vec![7.into()]]).await;
    assert_eq!(store.history(TENANT, &failed.id, 10).await.unwrap().unwrap().status(), ResponseStatus::Failed);
}

#[rstest]
#[tokio::test]
async fn large_turns_keep_their_order(#[values(Sqlite, Postgres)] kind: StoreKind) {
    let Some(db) = TestDb::create(kind).await else { return };
    let store = db.open().await;
    let input: Vec<Item> = (0..2500).map(|n| message(Role::User, &format!("m{n}"))).collect();
    let stored = response(None, "done");
    common::save(&*store, TENANT, &stored, &input, &vec![vec![4.into()]]).await;
    let first = store.items_page(TENANT, ItemList::ResponseInput(&stored.id), &all(Order::Asc)).await.unwrap().unwrap();
    assert_eq!(first, page(&input[..100], true));
    let chain = store.history(TENANT, &stored.id, 10).await.unwrap().unwrap();
    assert_eq!(chain.items().len(), 2501);
    assert_eq!(chain.items()[2500].text(), "done");
}

#[rstest]
#[tokio::test]
async fn concurrent_writers_branch_cleanly(#[values(Sqlite, Postgres)] kind: StoreKind) {
    let Some(db) = TestDb::create(kind).await else { return };
    let store = db.open().await;
    let root = turn(&*store, TENANT, None, "root", "r").await;
    let branches = futures::future::join_all((0..50).map(|n| {
        let (store, root) = (store.clone(), root.clone());
        async move { (n, turn(&*store, TENANT, Some(&root), &format!("b{n}"), &format!("a{n}")).await) }
    }))
    .await;
    for (n, id) in branches {
        let chain = store.history(TENANT, &id, 10).await.unwrap().unwrap();
        assert_eq!(texts(chain.items()), ["root".to_string(), "r".into(), format!("b{n}"), format!("a{n}")]);
    }
}

#[rstest]
#[tokio::test]
async fn concurrent_deletes_and_continuations_never_corrupt(
    #[values(Sqlite, Postgres)] kind: StoreKind,
    #[values(true, false)] cached: bool,
) {
    let Some(db) = TestDb::create(kind).await else { return };
    let store = open(&db, cached).await;
    let mut ids = vec![turn(&*store, TENANT, None, "u0", "a0").await];
    for n in 1..20 {
        let previous = ids[n - 1].clone();
        ids.push(turn(&*store, TENANT, Some(&previous), &format!("u{n}"), &format!("a{n}")).await);
    }
    let deletes = ids.iter().skip(1).step_by(2).cloned().map(|id| {
        let store = store.clone();
        tokio::spawn(async move { store.delete_response(TENANT, &id).await.unwrap() })
    });
    let continuations = ids.iter().cloned().map(|id| {
        let store = store.clone();
        tokio::spawn(async move { turn(&*store, TENANT, Some(&id), "more", "ok").await })
    });
    let deletes: Vec<_> = deletes.collect();
    let continuations: Vec<_> = continuations.collect();
    for delete in deletes {
        assert!(delete.await.unwrap());
    }
    for continuation in continuations {
        let id = continuation.await.unwrap();
        let chain = store.history(TENANT, &id, 100).await.unwrap().unwrap();
        // Surviving turns stay whole and in order: user/assistant pairs of even turns, then the new one.
        let texts = texts(chain.items());
        let (earlier, last) = texts.split_at(texts.len() - 2);
        assert_eq!(last, ["more", "ok"], "{texts:?}");
        for pair in earlier.chunks(2) {
            let n: usize = pair[0][1..].parse().unwrap();
            assert_eq!((n % 2, pair[1].clone()), (0, format!("a{n}")), "{texts:?}");
        }
    }
}

#[rstest]
#[tokio::test]
async fn conversations_append_concurrently_and_stay_private(#[values(Sqlite, Postgres)] kind: StoreKind) {
    let Some(db) = TestDb::create(kind).await else { return };
    let store = db.open().await;
    let conversation = Conversation::new(Metadata::from([("k".to_string(), "v".to_string())]));
    store.create_conversation(TENANT, &conversation, &[message(Role::User, "first")], &[]).await.unwrap();
    let id = conversation.id.clone();
    let appends = futures::future::join_all((0..20).map(|n| {
        let (store, id) = (store.clone(), id.clone());
        async move {
            let items = [message(Role::User, &format!("m{n}"))];
            store.add_conversation_items(TENANT, &id, &items, &[]).await.unwrap()
        }
    }))
    .await;
    assert!(appends.into_iter().all(|added| added));
    let items: Vec<Item> =
        store.conversation_items(TENANT, &id).await.unwrap().unwrap().into_iter().map(|(item, _)| item).collect();
    assert_eq!(items.len(), 21);
    assert_eq!(items[0].text(), "first");
    let mut rest = texts(&items[1..]);
    rest.sort();
    let mut expected: Vec<String> = (0..20).map(|n| format!("m{n}")).collect();
    expected.sort();
    assert_eq!(rest, expected);
    assert_eq!(store.conversation(TENANT, &id).await.unwrap(), Some(conversation));
    assert_eq!(store.conversation("other", &id).await.unwrap(), None);
    assert_eq!(store.conversation_items("other", &id).await.unwrap(), None);
    assert!(!store.add_conversation_items("other", &id, &[message(Role::User, "x")], &[]).await.unwrap());
    assert!(!store.delete_conversation("other", &id).await.unwrap());
    let duplicate = store.add_conversation_items(TENANT, &id, &[items[3].clone()], &[]).await.unwrap_err();
    assert!(matches!(duplicate, StoreError::DuplicateItem), "{duplicate:?}");
    assert!(store.delete_conversation(TENANT, &id).await.unwrap());
    assert_eq!(store.conversation_items(TENANT, &id).await.unwrap(), None);
}

#[rstest]
#[tokio::test]
async fn lists_page_by_key(#[values(Sqlite, Postgres)] kind: StoreKind) {
    let Some(db) = TestDb::create(kind).await else { return };
    let store = db.open().await;
    let input: Vec<Item> = (0..7).map(|n| message(Role::User, &format!("m{n}"))).collect();
    let stored = response(None, "done");
    common::save(&*store, TENANT, &stored, &input, &vec![vec![4.into()]]).await;
    let conversation = Conversation::new(Metadata::new());
    store.create_conversation(TENANT, &conversation, &input, &[]).await.unwrap();
    let id = |n: usize| Some(input[n].id().to_string());
    let pages = [
        (PageRequest { after: None, limit: 3, order: Order::Asc }, page(&input[0..3], true)),
        (PageRequest { after: id(2), limit: 3, order: Order::Asc }, page(&input[3..6], true)),
        (PageRequest { after: id(5), limit: 3, order: Order::Asc }, page(&input[6..7], false)),
        (PageRequest { after: id(6), limit: 3, order: Order::Asc }, page(&[], false)),
        (PageRequest { after: None, limit: 7, order: Order::Asc }, page(&input, false)),
        (PageRequest { after: id(3), limit: 2, order: Order::Desc }, page(&[input[2].clone(), input[1].clone()], true)),
        (PageRequest { after: id(1), limit: 2, order: Order::Desc }, page(&input[0..1], false)),
    ];
    for (request, expected) in &pages {
        assert_eq!(
            store.items_page(TENANT, ItemList::ResponseInput(&stored.id), request).await.unwrap().as_ref(),
            Some(expected),
            "{request:?}"
        );
        let listed = store.items_page(TENANT, ItemList::Conversation(&conversation.id), request).await.unwrap();
        assert_eq!(listed.as_ref(), Some(expected), "{request:?}");
    }
    let mut newest = input.clone();
    newest.reverse();
    let desc = store.items_page(TENANT, ItemList::ResponseInput(&stored.id), &all(Order::Desc)).await.unwrap().unwrap();
    assert_eq!(desc, page(&newest, false));
    let unknown = PageRequest { after: Some("msg_unknown".into()), limit: 3, order: Order::Asc };
    let err = store.items_page(TENANT, ItemList::ResponseInput(&stored.id), &unknown).await.unwrap_err();
    assert!(matches!(&err, StoreError::CursorNotFound(after) if after == "msg_unknown"), "{err:?}");
    let err = store.items_page(TENANT, ItemList::Conversation(&conversation.id), &unknown).await.unwrap_err();
    assert!(matches!(err, StoreError::CursorNotFound(_)), "{err:?}");
    assert_eq!(store.items_page("other", ItemList::ResponseInput(&stored.id), &all(Order::Asc)).await.unwrap(), None);
    assert_eq!(
        store.items_page("other", ItemList::Conversation(&conversation.id), &all(Order::Asc)).await.unwrap(),
        None
    );
    // One item by its key; an unknown item in a known conversation differs from an unknown conversation.
    let item = store.conversation_item(TENANT, &conversation.id, input[4].id()).await.unwrap();
    assert_eq!(item, Some(Some(input[4].clone())));
    assert_eq!(store.conversation_item(TENANT, &conversation.id, "msg_unknown").await.unwrap(), Some(None));
    assert_eq!(store.conversation_item("other", &conversation.id, input[4].id()).await.unwrap(), None);
    assert_eq!(store.conversation_item(TENANT, "conv_unknown", input[4].id()).await.unwrap(), None);
}

#[rstest]
#[tokio::test]
async fn only_a_repeated_item_id_is_a_duplicate_item(#[values(Sqlite, Postgres)] kind: StoreKind) {
    let Some(db) = TestDb::create(kind).await else { return };
    let store = db.open().await;
    let conversation = Conversation::new(Metadata::new());
    let first = message(Role::User, "first");
    store.create_conversation(TENANT, &conversation, std::slice::from_ref(&first), &[]).await.unwrap();
    let err = store.add_conversation_items(TENANT, &conversation.id, &[first], &[]).await.unwrap_err();
    assert!(matches!(err, StoreError::DuplicateItem), "{err:?}");
    // Another unique key violated (a position taken behind the store's back) is not a duplicate item id.
    let squatter = format!(
        "INSERT INTO conversation_items (tenant, conversation_id, position, item_id, body) \
         VALUES ('{TENANT}', '{}', 1, 'msg_squatter', '{{}}')",
        conversation.id
    );
    db.execute(&squatter).await;
    let next = [message(Role::User, "next")];
    let err = store.add_conversation_items(TENANT, &conversation.id, &next, &[]).await.unwrap_err();
    assert!(matches!(err, StoreError::Database(_)), "{err:?}");
}

#[rstest]
#[tokio::test]
async fn a_chain_is_read_from_the_database_once_then_from_the_cache(#[values(Sqlite, Postgres)] kind: StoreKind) {
    let Some(db) = TestDb::create(kind).await else { return };
    let writer = db.open().await;
    let r1 = turn(&*writer, TENANT, None, "u1", "a1").await;
    let r2 = turn(&*writer, TENANT, Some(&r1), "u2", "a2").await;
    // The store that stored the turns has them cached already.
    assert!(writer.history(TENANT, &r2, 100).await.unwrap().unwrap().cached);
    let reader = db.open().await;
    let first = reader.history(TENANT, &r2, 100).await.unwrap().unwrap();
    let again = reader.history(TENANT, &r2, 100).await.unwrap().unwrap();
    let parent = reader.history(TENANT, &r1, 100).await.unwrap().unwrap();
    assert_eq!((first.cached, again.cached, parent.cached), (false, true, true));
    assert_eq!(texts(again.items()), ["u1", "a1", "u2", "a2"]);
    // A turn stored after a cached one joins its chain without a read; the depth limit still applies.
    let r3 = turn(&*reader, TENANT, Some(&r2), "u3", "a3").await;
    let chain = reader.history(TENANT, &r3, 100).await.unwrap().unwrap();
    assert!(chain.cached);
    assert_eq!(texts(chain.items()), ["u1", "a1", "u2", "a2", "u3", "a3"]);
    let err = reader.history(TENANT, &r3, 2).await.unwrap_err();
    assert!(matches!(err, StoreError::ChainTooDeep(2)), "{err:?}");
    assert!(reader.history("bob", &r3, 100).await.unwrap().is_none());
    assert!(reader.stats().cache_bytes > 0);
}

#[tokio::test]
async fn a_deletion_on_one_replica_reaches_the_cache_of_every_other() {
    let Some(db) = TestDb::create(Postgres).await else { return };
    let (this, other) = (db.open().await, db.open().await);
    let r1 = turn(&*this, TENANT, None, "u1", "a1").await;
    let r2 = turn(&*this, TENANT, Some(&r1), "u2", "a2").await;
    let r3 = turn(&*this, TENANT, Some(&r2), "u3", "a3").await;
    assert!(this.history(TENANT, &r3, 100).await.unwrap().unwrap().cached);
    assert!(other.delete_response(TENANT, &r2).await.unwrap());
    // At once — whether or not the notice has arrived yet — no chain through r2 has it any more.
    assert!(this.history(TENANT, &r2, 100).await.unwrap().is_none());
    assert_eq!(texts(this.history(TENANT, &r3, 100).await.unwrap().unwrap().items()), ["u1", "a1", "u3", "a3"]);
    // Another tenant's deletions do not keep this tenant's chains out of the cache.
    let theirs = turn(&*other, "bob", None, "b", "bb").await;
    assert!(other.delete_response("bob", &theirs).await.unwrap());
    let r4 = turn(&*this, TENANT, Some(&r3), "u4", "a4").await;
    assert!(this.history(TENANT, &r4, 100).await.unwrap().unwrap().cached);
}

#[rstest]
#[tokio::test]
async fn turns_committed_together_fail_alone(#[values(Sqlite, Postgres)] kind: StoreKind) {
    let Some(db) = TestDb::create(kind).await else { return };
    let store = db.open().await;
    let live = Conversation::new(Metadata::new());
    store.create_conversation(TENANT, &live, &[], &[]).await.unwrap();
    let gone = Conversation::new(Metadata::new());
    store.create_conversation(TENANT, &gone, &[], &[]).await.unwrap();
    assert!(store.delete_conversation(TENANT, &gone.id).await.unwrap());
    // Sixty turns at once, so the writer commits many together; every third goes to the deleted conversation.
    let saves = futures::future::join_all((0..60).map(|n| {
        let (store, live, gone) = (store.clone(), live.id.clone(), gone.id.clone());
        async move {
            let response = response(None, &format!("a{n}"));
            let input = [message(Role::User, &format!("u{n}"))];
            let conversation = Some(if n % 3 == 0 { gone.as_str() } else { live.as_str() });
            let turn = NewTurn {
                response: &response,
                input: &input,
                tokens: &[],
                pieces: &vec![vec![2.into()]],
                store_response: true,
                conversation,
            };
            (n, response.id.clone(), store.save_turn(TENANT, turn).await)
        }
    }))
    .await;
    for (n, id, saved) in saves {
        let stored = store.response(TENANT, &id).await.unwrap();
        match saved {
            Err(StoreError::ConversationNotFound(conversation)) if n % 3 == 0 => {
                assert_eq!((conversation, stored), (gone.id.clone(), None));
            }
            Ok(()) if n % 3 != 0 => assert!(stored.is_some()),
            other => panic!("turn {n}: {other:?}"),
        }
    }
    let items = store.conversation_items(TENANT, &live.id).await.unwrap().unwrap();
    assert_eq!(items.len(), 80);
}

/// Stores a turn of `input` answered by `output`, with these token counts, in `conversation` if any; returns its id.
async fn counted_turn(
    store: &dyn Store,
    previous: Option<&str>,
    (input, output): (&[&str], &[&str]),
    tokens: &[u32],
    conversation: Option<&str>,
) -> String {
    let mut response = response(previous, "");
    response.output = output.iter().map(|text| message(Role::Assistant, text)).collect();
    let input: Vec<Item> = input.iter().map(|text| message(Role::User, text)).collect();
    let turn = NewTurn {
        response: &response,
        input: &input,
        tokens,
        pieces: &vec![vec![1.into()]],
        store_response: true,
        conversation,
    };
    store.save_turn(TENANT, turn).await.unwrap();
    response.id
}

/// The stored token counts of each turn of the chain ending at `id`, from the root down.
async fn chain_tokens(store: &dyn Store, id: &str) -> (bool, Vec<Vec<Option<u32>>>) {
    let chain = store.history(TENANT, id, 100).await.unwrap().unwrap();
    let tokens = chain.tip.chain().into_iter().map(|turn| turn.tokens().to_vec()).collect();
    (chain.cached, tokens)
}

#[rstest]
#[tokio::test]
async fn token_counts_stored_with_a_turn_come_back_with_its_history(
    #[values(Sqlite, Postgres)] kind: StoreKind,
    #[values(true, false)] cached: bool,
) {
    let Some(db) = TestDb::create(kind).await else { return };
    let store = open(&db, cached).await;
    let r1 = counted_turn(&*store, None, (&["u1"], &["a1", "a1b"]), &[3, 5, 8], None).await;
    let r2 = counted_turn(&*store, Some(&r1), (&["u2", "u2b"], &["a2"]), &[11, 13, 17], None).await;
    // Fewer counts than items: the rest are stored without one.
    let r3 = counted_turn(&*store, Some(&r2), (&["u3"], &["a3"]), &[19], None).await;
    let expected = vec![vec![Some(3), Some(5), Some(8)], vec![Some(11), Some(13), Some(17)], vec![Some(19), None]];
    // With the cache on, the turns just stored are cached (a hit); with it off, they are read (a miss).
    assert_eq!(chain_tokens(&*store, &r3).await, (cached, expected.clone()));
    // Read afresh from the database by another store, then again from its cache.
    let reader = open(&db, cached).await;
    assert_eq!(chain_tokens(&*reader, &r3).await, (false, expected.clone()));
    assert_eq!(chain_tokens(&*reader, &r3).await, (cached, expected));
}

#[rstest]
#[tokio::test]
async fn an_item_stored_without_a_count_reads_back_as_none(#[values(Sqlite, Postgres)] kind: StoreKind) {
    let Some(db) = TestDb::create(kind).await else { return };
    let store = open(&db, false).await;
    let r1 = counted_turn(&*store, None, (&["u1"], &["a1"]), &[3, 5], None).await;
    let r2 = counted_turn(&*store, Some(&r1), (&["u2"], &["a2"]), &[7, 9], None).await;
    // As stored before the column existed.
    db.execute(&format!("UPDATE items SET tokens = NULL WHERE response_id = '{r1}'")).await;
    assert_eq!(chain_tokens(&*store, &r2).await, (false, vec![vec![None, None], vec![Some(7), Some(9)]]));
}

#[rstest]
#[tokio::test]
async fn conversation_items_keep_their_token_counts(#[values(Sqlite, Postgres)] kind: StoreKind) {
    let Some(db) = TestDb::create(kind).await else { return };
    let store = db.open().await;
    let conversation = Conversation::new(Metadata::new());
    let first = [message(Role::User, "m1"), message(Role::User, "m2")];
    store.create_conversation(TENANT, &conversation, &first, &[4, 6]).await.unwrap();
    let added = [message(Role::User, "m3"), message(Role::User, "m4")];
    assert!(store.add_conversation_items(TENANT, &conversation.id, &added, &[9]).await.unwrap());
    counted_turn(&*store, None, (&["u1"], &["a1"]), &[2, 12], Some(&conversation.id)).await;
    let counted = |items: Vec<(Item, Option<u32>)>| -> Vec<(String, Option<u32>)> {
        items.into_iter().map(|(item, tokens)| (item.text(), tokens)).collect()
    };
    let items = store.conversation_items(TENANT, &conversation.id).await.unwrap().unwrap();
    assert_eq!(
        counted(items),
        [("m1", Some(4)), ("m2", Some(6)), ("m3", Some(9)), ("m4", None), ("u1", Some(2)), ("a1", Some(12))]
            .map(|(text, tokens)| (text.to_string(), tokens))
    );
    // As stored before the column existed.
    db.execute(&format!("UPDATE conversation_items SET tokens = NULL WHERE item_id = '{}'", first[0].id())).await;
    let items = store.conversation_items(TENANT, &conversation.id).await.unwrap().unwrap();
    assert_eq!(items[0], (first[0].clone(), None));
}
