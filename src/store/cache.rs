//! The history cache: resolved chains kept in memory so the next turn of a conversation reads nothing from the
//! database. Completed turns never change, so each cached turn holds its own items and a pointer to its parent's
//! cached turn: a child shares its parent's resolved history, and resolving depth D costs O(1) once its parent is
//! here. Deleting a turn flags it, and every chain through it skips its items from then on — also on other replicas,
//! which hear of deletions from the store (Postgres `NOTIFY`). Expiry needs no notice: the store serves a chain from
//! here only while its last turn is fresh, and a fresh turn keeps every turn above it.
//!
//! Memory is bounded by a byte budget over every cached turn alive (an evicted turn lives on while a cached child
//! needs it); turns are evicted in least-recently-used order (the clock algorithm).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use super::NewTurn;
use crate::engine::TurnRuns;
use crate::model::{Item, ResponseStatus};

/// A cached stored turn: its status, its own input and output items with their stored token counts, and its parent.
#[derive(Debug)]
pub struct CachedTurn {
    parent: Option<Arc<CachedTurn>>,
    /// Turns in the chain up to and including this one.
    depth: u32,
    status: ResponseStatus,
    /// When it was created (Unix seconds): a chain is served from here only while its last turn is fresh.
    created_at: i64,
    items: Vec<Item>,
    /// The token count stored with each of `items` (`None`: stored without one).
    tokens: Vec<Option<u32>>,
    deleted: AtomicBool,
    /// Used since the clock hand last passed.
    used: AtomicBool,
    /// What the engine makes of its items (its upstream messages, in each format), made once by the first chain that
    /// needs it; the cache only keeps it with the turn.
    runs: TurnRuns,
    /// What it weighs against the budget.
    bytes: usize,
    meter: Arc<AtomicUsize>,
}

impl CachedTurn {
    /// Turns in the chain up to and including this one.
    pub fn depth(&self) -> u32 {
        self.depth
    }

    pub fn status(&self) -> ResponseStatus {
        self.status
    }

    /// When it was created (Unix seconds).
    pub fn created_at(&self) -> i64 {
        self.created_at
    }

    /// The turns of the chain this turn ends, from the root down, without deleted ones.
    pub fn chain(&self) -> Vec<&CachedTurn> {
        let mut turns = Vec::with_capacity(self.depth as usize);
        let mut turn = Some(self);
        while let Some(current) = turn {
            turns.push(current);
            turn = current.parent.as_deref();
        }
        turns.retain(|turn| !turn.deleted.load(Ordering::Relaxed));
        turns.reverse();
        turns
    }

    /// The history this turn ends: every turn's items from the root down, skipping deleted turns.
    pub fn history(&self) -> Vec<&Item> {
        self.chain().into_iter().flat_map(|turn| &turn.items).collect()
    }

    /// Its own input, then output, items.
    pub fn items(&self) -> &[Item] {
        &self.items
    }

    /// The token count stored with each of its items, in their order (`None`: stored without one, to be counted).
    pub fn tokens(&self) -> &[Option<u32>] {
        &self.tokens
    }

    /// The engine's runs of its items, kept with the turn (and shared by every chain through it).
    pub fn runs(&self) -> &TurnRuns {
        &self.runs
    }
}

impl Drop for CachedTurn {
    /// Releases the chain above it one turn at a time: a long chain would overflow the stack dropped recursively.
    fn drop(&mut self) {
        self.meter.fetch_sub(self.bytes, Ordering::Relaxed);
        let mut parent = self.parent.take();
        while let Some(turn) = parent {
            parent = Arc::into_inner(turn).and_then(|mut turn| turn.parent.take());
        }
    }
}

type Key = (String, String);

/// A cached turn by tenant and id: held while in the cache, weakly known while a held child still needs it.
struct Slot {
    turn: Weak<CachedTurn>,
    held: Option<Arc<CachedTurn>>,
}

#[derive(Default)]
struct Slots {
    map: HashMap<Key, Slot>,
    /// Keys of held turns in the order the clock hand visits them.
    clock: VecDeque<Key>,
}

/// The cache of resolved histories (disabled when its budget is 0).
pub struct HistoryCache {
    slots: Mutex<Slots>,
    budget: usize,
    /// Bytes of every cached turn alive.
    meter: Arc<AtomicUsize>,
    /// Turns forgotten so far.
    epoch: AtomicU64,
}

/// A stored turn to cache.
pub struct TurnEntry {
    pub tenant: String,
    pub id: String,
    pub status: ResponseStatus,
    /// When it was created (Unix seconds).
    pub created_at: i64,
    /// Its input items, then its output items.
    pub items: Vec<Item>,
    /// The token count stored with each of `items` (`None`: stored without one).
    pub tokens: Vec<Option<u32>>,
    /// The size of their JSON: their weight against the budget.
    pub json_bytes: usize,
    /// Whether the turn is deleted (its items are gone; chains through it skip it).
    pub deleted: bool,
}

/// What a cached turn weighs beyond its items and messages.
const TURN_OVERHEAD: usize = 256;

impl HistoryCache {
    pub fn new(budget: usize) -> Self {
        Self { slots: Mutex::default(), budget, meter: Arc::default(), epoch: AtomicU64::new(0) }
    }

    /// Bytes of every cached turn alive.
    pub fn bytes(&self) -> usize {
        self.meter.load(Ordering::Relaxed)
    }

    fn slots(&self) -> MutexGuard<'_, Slots> {
        // A panic while holding the lock leaves only a stale cache entry at worst; keep using it.
        self.slots.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The cached turn `id` of `tenant`, unless unknown here or deleted.
    pub fn get(&self, tenant: &str, id: &str) -> Option<Arc<CachedTurn>> {
        let mut slots = self.slots();
        let key = (tenant.to_string(), id.to_string());
        let slot = slots.map.get_mut(&key)?;
        let turn = slot.turn.upgrade()?;
        if turn.deleted.load(Ordering::Relaxed) {
            return None;
        }
        turn.used.store(true, Ordering::Relaxed);
        if slot.held.is_none() {
            slot.held = Some(turn.clone());
            slots.clock.push_back(key);
        }
        Some(turn)
    }

    /// A number that changes whenever a turn is forgotten: a chain read from the database before the change may
    /// hold what was deleted since, so it is not cached (`insert` is given the number read before).
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// The turn `turn` after `parent` (None: it starts its chain), cached unless the cache is off, a turn was
    /// forgotten since `epoch` or it has not ended yet. A turn cached already is reused: a turn never changes, and every chain through it
    /// must share the one copy that a deletion flags.
    pub fn insert(&self, parent: Option<Arc<CachedTurn>>, turn: TurnEntry, epoch: u64) -> Arc<CachedTurn> {
        let key = (turn.tenant, turn.id);
        let mut slots = self.slots();
        if let Some(cached) = slots.map.get(&key).and_then(|slot| slot.turn.upgrade()) {
            return cached;
        }
        // Its items, and about as much again for the messages derived from them.
        let bytes = 2 * turn.json_bytes + TURN_OVERHEAD;
        self.meter.fetch_add(bytes, Ordering::Relaxed);
        let mut tokens = turn.tokens;
        tokens.resize(turn.items.len(), None);
        let cached = Arc::new(CachedTurn {
            depth: parent.as_ref().map_or(0, |parent| parent.depth) + 1,
            parent,
            status: turn.status,
            created_at: turn.created_at,
            items: turn.items,
            tokens,
            deleted: AtomicBool::new(turn.deleted),
            used: AtomicBool::new(false),
            runs: TurnRuns::default(),
            bytes,
            meter: self.meter.clone(),
        });
        // A background response still queued or running changes when it ends: only ended turns are cached.
        if self.budget > 0 && self.epoch() == epoch && turn.status.is_finished() {
            let held = (!turn.deleted).then(|| cached.clone());
            if held.is_some() {
                slots.clock.push_back(key.clone());
            }
            slots.map.insert(key, Slot { turn: Arc::downgrade(&cached), held });
            self.evict(&mut slots);
        }
        cached
    }

    /// Caches a turn just stored, after its parent — when that is cached; else the next turn reads the chain from
    /// the database.
    pub fn add(&self, tenant: &str, turn: &NewTurn<'_>, json_bytes: usize) {
        if self.budget == 0 || !turn.store_response {
            return;
        }
        let response = turn.response;
        let parent = match &response.previous_response_id {
            Some(previous) => match self.get(tenant, previous) {
                Some(parent) => Some(parent),
                None => return,
            },
            None => None,
        };
        let items: Vec<Item> = turn.input.iter().chain(&response.output).cloned().collect();
        let entry = TurnEntry {
            tenant: tenant.to_string(),
            id: response.id.clone(),
            status: response.status,
            created_at: response.created_at,
            tokens: turn.tokens.iter().copied().map(Some).take(items.len()).collect(),
            items,
            json_bytes,
            deleted: false,
        };
        self.insert(parent, entry, self.epoch());
    }

    /// Forgets turn `id` of `tenant`: deleted, so every chain through it skips its items from now on.
    pub fn remove(&self, tenant: &str, id: &str) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        let slot = self.slots().map.remove(&(tenant.to_string(), id.to_string()));
        if let Some(turn) = slot.and_then(|slot| slot.turn.upgrade()) {
            turn.deleted.store(true, Ordering::Relaxed);
        }
    }

    /// Forgets every turn (when deletions may have been missed): the next turn of each chain reads it afresh.
    pub fn clear(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        let old = std::mem::take(&mut *self.slots());
        drop(old);
    }

    /// Releases least recently used turns until every cached turn alive fits the budget.
    fn evict(&self, slots: &mut Slots) {
        while self.bytes() > self.budget {
            let Some(key) = slots.clock.pop_front() else { break };
            let Some(slot) = slots.map.get_mut(&key) else { continue };
            match &slot.held {
                Some(turn) if turn.used.swap(false, Ordering::Relaxed) => slots.clock.push_back(key),
                Some(_) => {
                    slot.held = None;
                }
                None => {}
            }
        }
        // Slots of turns gone entirely are dropped once they outnumber the held ones.
        if slots.map.len() > 2 * slots.clock.len() + 1024 {
            slots.map.retain(|_, slot| slot.turn.strong_count() > 0);
        }
    }
}

#[cfg(test)]
mod tests;
