//! The server's clock: real UTC time plus an offset that only moves forward, so that tests make stored data expire
//! without waiting. Every timestamp threadline stores, and every expiry decision, reads it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

/// Real time plus an offset; clones share the offset.
#[derive(Clone, Debug, Default)]
pub struct Clock {
    /// Milliseconds added to real time.
    offset: Arc<AtomicU64>,
}

impl Clock {
    /// The time now.
    pub fn now(&self) -> DateTime<Utc> {
        let offset = TimeDelta::milliseconds(i64::try_from(self.offset.load(Ordering::Relaxed)).unwrap_or(i64::MAX));
        Utc::now().checked_add_signed(offset).unwrap_or(DateTime::<Utc>::MAX_UTC)
    }

    /// The time now in whole seconds since the Unix epoch (as timestamps are stored).
    pub fn timestamp(&self) -> i64 {
        self.now().timestamp()
    }

    /// Moves this clock, and every clone of it, forward by `by`.
    pub fn advance(&self, by: Duration) {
        let millis = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
        let _ = self
            .offset
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |offset| Some(offset.saturating_add(millis)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advancing_a_clone_moves_every_clone() {
        let clock = Clock::default();
        let before = clock.timestamp();
        clock.clone().advance(Duration::from_secs(31 * 86_400));
        let moved = clock.timestamp() - before;
        assert!((31 * 86_400..31 * 86_400 + 5).contains(&moved), "{moved}");
    }
}
