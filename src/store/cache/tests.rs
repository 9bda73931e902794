//! The history cache on its own: sharing, deletion, the budget and the epoch guard.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use crate::model::{ContentPart, ItemStatus, Message, Role};

fn entry(id: &str, text: &str, json_bytes: usize) -> TurnEntry {
    let content = vec![ContentPart::InputText { text: text.into() }];
    let item = Item::Message(Message {
        id: format!("msg_{id}"),
        status: ItemStatus::Completed,
        role: Role::User,
        content,
        phase: None,
    });
    TurnEntry {
        tenant: "t".into(),
        id: id.into(),
        status: ResponseStatus::Completed,
        created_at: 0,
        items: vec![item],
        tokens: vec![Some(1)],
        json_bytes,
        deleted: false,
    }
}

fn texts(turn: &CachedTurn) -> Vec<String> {
    turn.history().into_iter().map(Item::text).collect()
}

#[test]
fn a_child_shares_its_parents_history_and_a_deletion_reaches_every_chain_through_it() {
    let cache = HistoryCache::new(1 << 20);
    let epoch = cache.epoch();
    let root = cache.insert(None, entry("r", "a", 10), epoch);
    let middle = cache.insert(Some(root), entry("m", "b", 10), epoch);
    let left = cache.insert(Some(middle.clone()), entry("l", "c", 10), epoch);
    let right = cache.insert(Some(middle), entry("x", "d", 10), epoch);
    assert_eq!((left.depth(), texts(&left)), (3, vec!["a".to_string(), "b".into(), "c".into()]));
    assert!(Arc::ptr_eq(&cache.get("t", "m").unwrap(), left.parent.as_ref().unwrap()));
    assert!(cache.get("other", "m").is_none());
    cache.remove("t", "m");
    assert!(cache.get("t", "m").is_none());
    assert_eq!(texts(&cache.get("t", "l").unwrap()), ["a", "c"]);
    assert_eq!(texts(&right), ["a", "d"]);
}

#[test]
fn a_turn_keeps_one_stored_count_per_item_and_one_memo_for_every_chain() {
    let cache = HistoryCache::new(1 << 20);
    let mut counted = entry("r", "a", 10);
    counted.items.push(counted.items[0].clone());
    counted.tokens = vec![Some(7)];
    let turn = cache.insert(None, counted, cache.epoch());
    // A count missing from the entry is a count not stored: the reader counts that item itself.
    assert_eq!(turn.tokens(), [Some(7), None]);
    let again = cache.get("t", "r").unwrap();
    assert!(std::ptr::eq(turn.runs(), again.runs()));
}

#[test]
fn a_turn_cached_already_is_reused_not_copied() {
    let cache = HistoryCache::new(1 << 20);
    let first = cache.insert(None, entry("r", "a", 10), cache.epoch());
    let again = cache.insert(None, entry("r", "a", 10), cache.epoch());
    assert!(Arc::ptr_eq(&first, &again));
    assert_eq!(cache.bytes(), 2 * 10 + TURN_OVERHEAD);
}

#[test]
fn a_chain_read_before_a_deletion_is_not_cached() {
    let cache = HistoryCache::new(1 << 20);
    let epoch = cache.epoch();
    cache.remove("t", "elsewhere");
    let turn = cache.insert(None, entry("r", "a", 10), epoch);
    assert_eq!(texts(&turn), ["a"]);
    assert!(cache.get("t", "r").is_none());
}

#[test]
fn the_budget_bounds_every_turn_alive_least_recently_used_first() {
    let weight = 2 * 1000 + TURN_OVERHEAD;
    let cache = HistoryCache::new(3 * weight);
    for id in ["a", "b", "c"] {
        cache.insert(None, entry(id, id, 1000), cache.epoch());
    }
    assert!(cache.get("t", "a").is_some());
    cache.insert(None, entry("d", "d", 1000), cache.epoch());
    assert_eq!(cache.bytes(), 3 * weight);
    assert!(cache.get("t", "b").is_none(), "b was the least recently used");
    assert!(cache.get("t", "a").is_some() && cache.get("t", "c").is_some() && cache.get("t", "d").is_some());
}

#[test]
fn an_evicted_turn_lives_on_while_a_chain_being_answered_needs_it() {
    let weight = 2 * 1000 + TURN_OVERHEAD;
    let cache = HistoryCache::new(2 * weight);
    let root = cache.insert(None, entry("r", "a", 1000), cache.epoch());
    let answering = cache.insert(Some(root), entry("c", "b", 1000), cache.epoch());
    cache.insert(None, entry("x", "x", 1000), cache.epoch());
    // Over budget, everything was released; the chain still being answered keeps its turns, which count and which
    // a deletion still reaches.
    assert_eq!(cache.bytes(), 2 * weight);
    assert_eq!(texts(&cache.get("t", "c").unwrap()), ["a", "b"]);
    cache.remove("t", "r");
    assert_eq!(texts(&answering), ["b"]);
    drop(answering);
    cache.clear();
    assert_eq!(cache.bytes(), 0);
}

#[test]
fn a_long_chain_is_released_without_recursion() {
    let cache = HistoryCache::new(usize::MAX);
    let mut tip = None;
    for n in 0..200_000 {
        tip = Some(cache.insert(tip, entry(&n.to_string(), "x", 1), cache.epoch()));
    }
    assert_eq!(tip.as_ref().unwrap().depth(), 200_000);
    drop(tip);
    cache.clear();
    assert_eq!(cache.bytes(), 0);
}

#[test]
fn a_cache_without_budget_resolves_chains_but_keeps_nothing() {
    let cache = HistoryCache::new(0);
    let root = cache.insert(None, entry("r", "a", 10), cache.epoch());
    let child = cache.insert(Some(root), entry("c", "b", 10), cache.epoch());
    assert_eq!(texts(&child), ["a", "b"]);
    assert!(cache.get("t", "r").is_none());
    drop(child);
    assert_eq!(cache.bytes(), 0);
}
