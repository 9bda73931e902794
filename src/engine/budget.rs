//! The token budget of a turn's context: the model's window — the request's, the configured one, the one a
//! backend's overflow answer revealed, the one its model list reports, or none known — less what is kept for the
//! reply, in threadline's own count scaled by how the backend counted a context it refused.
//!
//! Nothing is refused on a guess: without a known window the context is sent whole and the backend decides. A
//! backend's overflow answer teaches its window and how its count compares with threadline's (per upstream and
//! model), so a turn is fitted again to the backend's own numbers and the turns after it fit the first time; the
//! usage a backend reports for a context that fills its window teaches the same comparison before any overflow, so
//! the reply keeps its share of the window in the backend's tokens.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use tokio::time::{Duration, Instant};

use super::Engine;
use crate::config::ModelSettings;
use crate::upstream::{Overflow, Upstream};

/// How long a window an overflow answer gave is believed: a backend restarted with a larger one is found again.
const LEARNED_WINDOW_TTL: Duration = Duration::from_secs(10 * 60);

/// The most models (per upstream and name) whose learning is kept.
const MAX_MODELS: usize = 10_000;

/// The window a summary is planned for when the model's is unknown.
pub const SUMMARY_WINDOW: u64 = 8192;

/// The bounds of a believable ratio of the backend's count to threadline's (tokenizers differ, not tenfold).
const RATIO_BOUNDS: (f64, f64) = (0.25, 4.0);

/// The token budget of one turn.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Budget {
    /// The model's window in the backend's tokens, where one is known.
    pub window: Option<u64>,
    /// The reply's share of the window: the request's `max_output_tokens`, else `context.output_share` of it.
    pub reserve: u64,
    /// The backend's tokens per token of threadline's count: 1 until a backend told its count.
    ratio: f64,
    /// What the reserve is made of, to make it again for another window.
    max_output_tokens: Option<u64>,
    output_share: f64,
}

impl Budget {
    pub fn new(window: Option<u64>, max_output_tokens: Option<u64>, output_share: f64, ratio: Option<f64>) -> Self {
        let reserve = window.map_or(0, |window| max_output_tokens.unwrap_or((window as f64 * output_share) as u64));
        Self { window, reserve, ratio: ratio.unwrap_or(1.0), max_output_tokens, output_share }
    }

    /// The most tokens (threadline's count) the context may have, where a window is known.
    pub fn limit(&self) -> Option<u64> {
        self.window.map(|window| (window.saturating_sub(self.reserve) as f64 / self.ratio).floor() as u64)
    }

    /// The window in threadline's count, where one is known.
    pub fn counted_window(&self) -> Option<u64> {
        self.window.map(|window| (window as f64 / self.ratio).floor() as u64)
    }

    /// The window a summary is planned for, in threadline's count: the model's, else `SUMMARY_WINDOW`.
    pub fn summary_window(&self) -> u64 {
        self.counted_window().unwrap_or(SUMMARY_WINDOW)
    }

    /// Threadline's count of a context, in the backend's tokens as far as they are known to compare.
    pub fn in_backend_tokens(&self, tokens: u64) -> u64 {
        (tokens as f64 * self.ratio).ceil() as u64
    }

    /// The budget the backend's numbers give, after it refused a context threadline counted `sent` tokens.
    pub fn after_overflow(&self, sent: u64, overflow: Overflow) -> Self {
        let ratio = overflow.prompt_tokens.and_then(|prompt| ratio(sent, prompt)).unwrap_or(self.ratio);
        Self::new(overflow.window.or(self.window), self.max_output_tokens, self.output_share, Some(ratio))
    }
}

impl Engine {
    /// The budget of a context for `model` on `upstream`, its reply given `max_output_tokens`. The window, first
    /// found wins: the request's own (`requested`: LM Studio's `context_length`), the configured one, the one an
    /// overflow answer taught, the one the upstream reports, the configured default.
    pub(super) async fn budget(
        &self,
        upstream: &dyn Upstream,
        model: &str,
        requested: Option<u64>,
        max_output_tokens: Option<u64>,
        settings: &ModelSettings,
    ) -> Budget {
        let (learned, ratio) = self.calibrations.learned(upstream.name(), model);
        let mut window = requested.or(settings.window).or(learned);
        if window.is_none() {
            window = self.windows.reported(upstream, model).await.or(self.context.default_window);
        }
        Budget::new(window, max_output_tokens, self.context.output_share, ratio)
    }
}

/// The backend's count per token of threadline's, when believable.
fn ratio(ours: u64, theirs: u64) -> Option<f64> {
    let ratio = theirs as f64 / ours as f64;
    (ours > 0 && (RATIO_BOUNDS.0..=RATIO_BOUNDS.1).contains(&ratio)).then_some(ratio)
}

/// What backends' overflow answers taught of one model.
#[derive(Clone, Copy, Debug, Default)]
struct Learned {
    /// The window an answer gave, and until when it is believed.
    window: Option<(u64, Instant)>,
    /// The backend's tokens per token of threadline's count, from the latest answer that gave its count.
    ratio: Option<f64>,
}

/// What backends' overflow answers taught, per upstream and model.
#[derive(Default)]
pub struct Calibrations {
    models: Mutex<HashMap<(String, String), Learned>>,
}

impl Calibrations {
    /// The window learned for `model` on `upstream`, if one is believed, and the ratio of the counts, if known.
    pub fn learned(&self, upstream: &str, model: &str) -> (Option<u64>, Option<f64>) {
        let models = self.lock();
        let Some(learned) = models.get(&(upstream.to_string(), model.to_string())) else { return (None, None) };
        let window = learned.window.filter(|(_, until)| Instant::now() < *until).map(|(window, _)| window);
        (window, learned.ratio)
    }

    /// Records what `upstream`'s answer told when it refused a context of `sent` tokens (threadline's count).
    pub fn overflowed(&self, upstream: &str, model: &str, sent: u64, overflow: Overflow) {
        let mut models = self.lock();
        let learned = entry(&mut models, upstream, model);
        if let Some(window) = overflow.window {
            learned.window = Some((window, Instant::now() + LEARNED_WINDOW_TTL));
        }
        if let Some(ratio) = overflow.prompt_tokens.and_then(|prompt| ratio(sent, prompt)) {
            learned.ratio = Some(ratio);
        }
    }

    /// Records a backend's count of a context threadline counted `ours` tokens. Only a count above what was
    /// assumed is taken: one below leaves more room than needed, one above would cost the reply its share (an
    /// overflow answer, which comes with the backend's exact numbers, sets the ratio either way).
    pub fn counted(&self, upstream: &str, model: &str, ours: u64, theirs: u64) {
        let Some(observed) = ratio(ours, theirs) else { return };
        let mut models = self.lock();
        let learned = entry(&mut models, upstream, model);
        if observed > learned.ratio.unwrap_or(1.0) {
            learned.ratio = Some(observed);
        }
    }

    /// The map; nothing holding it can panic half-way through a change, so a poisoned lock is used as it is.
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), Learned>> {
        self.models.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// What is learned of `model` on `upstream`, made if new. Model names come from clients, so the map is bounded: at
/// `MAX_MODELS` it starts again empty (what is forgotten is learned again from the next answers).
fn entry<'m>(models: &'m mut HashMap<(String, String), Learned>, upstream: &str, model: &str) -> &'m mut Learned {
    let key = (upstream.to_string(), model.to_string());
    if models.len() >= MAX_MODELS && !models.contains_key(&key) {
        models.clear();
    }
    models.entry(key).or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_learned_is_bounded_however_many_model_names_clients_send() {
        let calibrations = Calibrations::default();
        for n in 0..=MAX_MODELS {
            calibrations.counted("local", &format!("m{n}"), 100, 200);
        }
        assert_eq!(calibrations.lock().len(), 1);
        assert_eq!(calibrations.learned("local", &format!("m{MAX_MODELS}")), (None, Some(2.0)));
    }

    #[test]
    fn without_a_window_nothing_is_limited() {
        let budget = Budget::new(None, None, 0.25, None);
        assert_eq!((budget.limit(), budget.reserve), (None, 0));
    }

    #[test]
    fn the_reply_keeps_its_share_and_the_rest_is_counted_in_the_backends_tokens() {
        assert_eq!(Budget::new(Some(1000), None, 0.25, None).limit(), Some(750));
        assert_eq!(Budget::new(Some(1000), Some(100), 0.25, None).limit(), Some(900));
        let budget = Budget::new(Some(1000), Some(100), 0.25, Some(1.5));
        assert_eq!((budget.limit(), budget.in_backend_tokens(600)), (Some(600), 900));
    }

    #[test]
    fn an_overflow_gives_the_backends_window_and_how_its_count_compares() {
        // Sent 400 tokens by threadline's count into an unknown window; llama.cpp counted 950 against 512.
        let refused = Overflow { prompt_tokens: Some(950), window: Some(512) };
        let budget = Budget::new(None, Some(48), 0.25, None).after_overflow(400, refused);
        assert_eq!(budget.window, Some(512));
        // (512 - 48) backend tokens at 2.375 backend tokens a token.
        assert_eq!(budget.limit(), Some(195));
        // Only a window: the count compares as before.
        let budget =
            Budget::new(None, None, 0.25, None).after_overflow(400, Overflow { prompt_tokens: None, ..refused });
        assert_eq!(budget.limit(), Some(384));
        // An unbelievable count is not taken.
        let odd = Overflow { prompt_tokens: Some(10), window: Some(512) };
        assert_eq!(Budget::new(None, None, 0.25, None).after_overflow(400, odd).limit(), Some(384));
    }

    #[tokio::test(start_paused = true)]
    async fn a_learned_window_is_believed_for_ten_minutes_and_the_ratio_until_the_next_answer() {
        let calibrations = Calibrations::default();
        assert_eq!(calibrations.learned("local", "m"), (None, None));
        calibrations.overflowed("local", "m", 400, Overflow { prompt_tokens: Some(500), window: Some(512) });
        assert_eq!(calibrations.learned("local", "m"), (Some(512), Some(1.25)));
        assert_eq!(calibrations.learned("local", "other"), (None, None));
        assert_eq!(calibrations.learned("elsewhere", "m"), (None, None));
        tokio::time::advance(LEARNED_WINDOW_TTL).await;
        assert_eq!(calibrations.learned("local", "m"), (None, Some(1.25)));
        calibrations.overflowed("local", "m", 400, Overflow { prompt_tokens: Some(600), window: None });
        assert_eq!(calibrations.learned("local", "m"), (None, Some(1.5)));
    }

    #[test]
    fn a_reported_usage_only_raises_the_ratio() {
        let calibrations = Calibrations::default();
        calibrations.counted("local", "m", 400, 300);
        assert_eq!(calibrations.learned("local", "m"), (None, None));
        calibrations.counted("local", "m", 400, 440);
        assert_eq!(calibrations.learned("local", "m"), (None, Some(1.1)));
        calibrations.counted("local", "m", 400, 420);
        assert_eq!(calibrations.learned("local", "m"), (None, Some(1.1)));
        // An unbelievable count is not taken.
        calibrations.counted("local", "m", 400, 4000);
        assert_eq!(calibrations.learned("local", "m"), (None, Some(1.1)));
        calibrations.overflowed("local", "m", 400, Overflow { prompt_tokens: Some(400), window: None });
        assert_eq!(calibrations.learned("local", "m"), (None, Some(1.0)));
    }
}
