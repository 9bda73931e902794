//! Context windows as the upstreams report them in their model lists: read from whichever field a backend uses for
//! the window its running server enforces, and cached per upstream so a turn asks no backend anything while its
//! listing is fresh. A listing holds a turn up for at most `DISCOVERY_WAIT`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use serde_json::Value;
use tokio::time::{Duration, Instant};

use super::{ModelInfo, Upstream, UpstreamError};

/// How long a successful listing is kept.
const LISTING_TTL: Duration = Duration::from_secs(5 * 60);

/// How long a failed listing is kept, so a down backend is not asked again on every turn.
const FAILURE_TTL: Duration = Duration::from_secs(30);

/// How long discovery may hold up a turn: a listing that takes longer is given up (and counts as failed), and the
/// turn goes on without the upstream's report.
pub const DISCOVERY_WAIT: Duration = Duration::from_secs(2);

/// Where backends report the context window a model is served with, as paths of fields (and array indices), first
/// found wins. Only the window the running server enforces counts: never the length a model was trained with, nor
/// the most it could be loaded with (llama.cpp's `meta.n_ctx_train`, LM Studio's `max_context_length`), which a
/// request longer than the loaded window still fails.
const WINDOW_FIELDS: [&[&str]; 8] = [
    // llama.cpp server: the context of one slot of the running server.
    &["meta", "n_ctx"],
    // vLLM.
    &["max_model_len"],
    // LM Studio's `/api/v0/models`, for a loaded model.
    &["loaded_context_length"],
    // LM Studio's native model list, for a loaded model: its first instance's configuration.
    &["loaded_instances", "0", "config", "context_length"],
    // OpenRouter, and lists in its shape.
    &["context_length"],
    // Groq.
    &["context_window"],
    &["n_ctx"],
    // OpenRouter: the length its top provider serves.
    &["top_provider", "context_length"],
];

/// The context length a backend reports for a model: the first of the known fields holding a positive integer.
pub fn reported_window(model: &ModelInfo) -> Option<u64> {
    WINDOW_FIELDS.iter().find_map(|path| {
        let (first, rest) = path.split_first()?;
        let value = rest.iter().try_fold(model.extra.get(*first)?, |value, segment| child(value, segment))?;
        value.as_u64().filter(|window| *window > 0)
    })
}

/// A field of an object, or an element of an array by its index.
fn child<'a>(value: &'a Value, segment: &str) -> Option<&'a Value> {
    match value {
        Value::Array(elements) => elements.get(segment.parse::<usize>().ok()?),
        _ => value.get(segment),
    }
}

/// The context windows each upstream's `/models` reports, fetched on first need and kept for a while.
#[derive(Default)]
pub struct ContextWindows {
    upstreams: Mutex<HashMap<String, UpstreamWindows>>,
}

/// The lock one upstream's listing is refreshed under, held across the listing.
type RefreshLock = Arc<tokio::sync::Mutex<()>>;

/// What is known of one upstream: its last listing, if any, and the lock its refresh runs under.
#[derive(Default)]
struct UpstreamWindows {
    listing: Option<Listing>,
    refresh: RefreshLock,
}

impl UpstreamWindows {
    /// `Ok` with the window of `model` if the listing is fresh, else `Err` with the refresh lock.
    fn fresh(&self, model: &str) -> Result<Option<u64>, RefreshLock> {
        match &self.listing {
            Some(listing) if Instant::now() < listing.expires => Ok(listing.windows.get(model).copied()),
            _ => Err(self.refresh.clone()),
        }
    }
}

/// The windows one listing reported, by model id, and until when they count.
struct Listing {
    windows: HashMap<String, u64>,
    expires: Instant,
}

impl ContextWindows {
    pub fn new() -> Self {
        Self::default()
    }

    /// The context window `upstream` reports for `model`, if it reports one. A fresh listing answers at once; else
    /// one caller lists the upstream's models while the others for that upstream wait for its listing.
    pub async fn reported(&self, upstream: &dyn Upstream, model: &str) -> Option<u64> {
        let name = upstream.name();
        let refresh = match self.fresh(name, model) {
            Ok(window) => return window,
            Err(refresh) => refresh,
        };
        let _refreshing = refresh.lock().await;
        if let Ok(window) = self.fresh(name, model) {
            return window;
        }
        let listing = list_windows(upstream).await;
        let window = listing.windows.get(model).copied();
        self.lock().entry(name.to_string()).or_default().listing = Some(listing);
        window
    }

    /// `Ok` with the window of `model` if the upstream's listing is fresh, else `Err` with the upstream's refresh lock.
    fn fresh(&self, upstream: &str, model: &str) -> Result<Option<u64>, RefreshLock> {
        let mut upstreams = self.lock();
        if let Some(cached) = upstreams.get(upstream) {
            return cached.fresh(model);
        }
        upstreams.entry(upstream.to_string()).or_default().fresh(model)
    }

    /// The cache; nothing holding it can panic half-way through a change, so a poisoned lock is used as it is.
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, UpstreamWindows>> {
        self.upstreams.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The windows an upstream's model list reports; a failure, or a listing that takes longer than `DISCOVERY_WAIT`, is
/// logged and yields none, kept for less long.
async fn list_windows(upstream: &dyn Upstream) -> Listing {
    let listed = tokio::time::timeout(DISCOVERY_WAIT, upstream.models()).await.unwrap_or_else(|_| {
        Err(UpstreamError::Timeout { upstream: upstream.name().to_string(), seconds: DISCOVERY_WAIT.as_secs_f64() })
    });
    match listed {
        Ok(models) => Listing {
            windows: models.iter().filter_map(|model| Some((model.id.clone(), reported_window(model)?))).collect(),
            expires: Instant::now() + LISTING_TTL,
        },
        Err(err) => {
            tracing::warn!(upstream = upstream.name(), error = %err, "listing models for their context windows failed");
            Listing { windows: HashMap::new(), expires: Instant::now() + FAILURE_TTL }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use async_trait::async_trait;
    use futures::future::join_all;
    use serde_json::json;
    use tokio::sync::Notify;

    use super::*;
    use crate::upstream::{ChatRequest, Completion, DeltaStream, UpstreamResult};

    fn model(json: Value) -> ModelInfo {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn reads_the_window_each_running_server_enforces() {
        // llama.cpp server b11434 started with `-c 512`, as it answered here: its slot's context, not the training
        // length.
        let llama_cpp = json!({"id": "smollm2", "aliases": ["smollm2"], "tags": [], "object": "model",
            "architecture": {"input_modalities": ["text"], "output_modalities": ["text"]}, "created": 1_796_679_231_u64,
            "owned_by": "llamacpp", "meta": {"vocab_type": 2, "n_vocab": 49152, "n_ctx": 512, "n_ctx_train": 8192,
            "n_embd": 576, "n_params": 134_515_008_u64, "size": 96_576_768_u64, "ftype": "Q4_1"}});
        assert_eq!(reported_window(&model(llama_cpp)), Some(512));
        // vLLM (a user's capture of `GET /v1/models`).
        let vllm = json!({"id": "meta-llama/Meta-Llama-3.1-8B-Instruct", "object": "model", "created": 1_723_770_563,
            "owned_by": "vllm", "root": "meta-llama/Meta-Llama-3.1-8B-Instruct", "parent": null, "max_model_len": 8096,
            "permission": [{"id": "modelperm-7c4c5de9b37b4f76800eb2d03b845b00", "object": "model_permission",
            "created": 1_723_770_563, "allow_sampling": true, "organization": "*", "group": null}]});
        assert_eq!(reported_window(&model(vllm)), Some(8096));
        let groq = json!({"id": "llama-3.3-70b-versatile", "object": "model", "created": 1_733_447_754,
            "owned_by": "Meta", "active": true, "context_window": 131_072, "public_apps": null});
        assert_eq!(reported_window(&model(groq)), Some(131_072));
        let openrouter = json!({"id": "openai/gpt-4o", "name": "OpenAI: GPT-4o", "created": 1_715_367_049,
            "context_length": 128_000, "architecture": {"modality": "text+image->text", "tokenizer": "GPT"},
            "top_provider": {"context_length": 128_000, "max_completion_tokens": 16384, "is_moderated": true}});
        assert_eq!(reported_window(&model(openrouter)), Some(128_000));
        let n_ctx = json!({"id": "local", "object": "model", "n_ctx": 4096});
        assert_eq!(reported_window(&model(n_ctx)), Some(4096));
    }

    #[test]
    fn only_the_loaded_window_counts_never_the_most_a_model_could_be_loaded_with() {
        // LM Studio's documented `/api/v0/models`: a model not loaded has no window yet (it is loaded with the
        // user's setting, not its maximum).
        let not_loaded = json!({"id": "qwen2-vl-7b-instruct", "object": "model", "type": "vlm",
            "publisher": "mlx-community", "arch": "qwen2_vl", "compatibility_type": "mlx", "quantization": "4bit",
            "state": "not-loaded", "max_context_length": 32768});
        assert_eq!(reported_window(&model(not_loaded)), None);
        let loaded = json!({"id": "meta-llama-3.1-8b-instruct", "object": "model", "type": "llm",
            "state": "loaded", "max_context_length": 131_072, "loaded_context_length": 4096});
        assert_eq!(reported_window(&model(loaded)), Some(4096));
        let native = json!({"id": "qwen/qwen3-8b", "type": "llm", "publisher": "qwen", "key": "qwen/qwen3-8b", "display_name": "Qwen3 8B",
            "max_context_length": 40960,
            "loaded_instances": [{"id": "qwen/qwen3-8b", "config": {"context_length": 8192, "eval_batch_size": 512}}]});
        assert_eq!(reported_window(&model(native)), Some(8192));
        // An older llama.cpp reports only the training length: no window.
        let older_llama_cpp = json!({"id": "model.gguf", "object": "model", "owned_by": "llamacpp",
            "meta": {"vocab_type": 2, "n_vocab": 152_064, "n_ctx_train": 32768}});
        assert_eq!(reported_window(&model(older_llama_cpp)), None);
    }

    #[test]
    fn only_positive_integers_count() {
        let unusable = json!({"id": "m", "context_length": 0, "max_model_len": "8192", "n_ctx": -1,
            "context_window": 4096.5, "meta": null, "loaded_instances": [], "top_provider": {"context_length": 2048}});
        assert_eq!(reported_window(&model(unusable)), Some(2048));
        assert_eq!(reported_window(&ModelInfo::named("gpt-4o", "openai")), None);
    }

    /// An upstream whose model list counts its calls, fails while told to, and waits for a signal if given one.
    struct FakeUpstream {
        listings: AtomicUsize,
        failing: bool,
        release: Option<Notify>,
    }

    impl FakeUpstream {
        fn new(failing: bool) -> Self {
            Self { listings: AtomicUsize::new(0), failing, release: None }
        }

        fn listings(&self) -> usize {
            self.listings.load(Ordering::SeqCst)
        }
    }

    #[async_trait]
    impl Upstream for FakeUpstream {
        fn name(&self) -> &str {
            "fake"
        }

        async fn complete(&self, _request: &ChatRequest) -> UpstreamResult<Completion> {
            Err(self.down())
        }

        async fn complete_stream(&self, _request: &ChatRequest) -> UpstreamResult<DeltaStream> {
            Err(self.down())
        }

        async fn models(&self) -> UpstreamResult<Vec<ModelInfo>> {
            self.listings.fetch_add(1, Ordering::SeqCst);
            if let Some(release) = &self.release {
                release.notified().await;
            }
            if self.failing {
                return Err(self.down());
            }
            Ok(vec![model(json!({"id": "small", "max_model_len": 4096})), ModelInfo::named("unknown", "fake")])
        }
    }

    impl FakeUpstream {
        fn down(&self) -> UpstreamError {
            UpstreamError::Unreachable { upstream: self.name().into(), reason: "it is down".into() }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_listing_is_kept_for_five_minutes() {
        let (windows, upstream) = (ContextWindows::new(), FakeUpstream::new(false));
        assert_eq!(windows.reported(&upstream, "small").await, Some(4096));
        assert_eq!(windows.reported(&upstream, "unknown").await, None);
        assert_eq!(windows.reported(&upstream, "unlisted").await, None);
        assert_eq!(upstream.listings(), 1);
        tokio::time::advance(LISTING_TTL - Duration::from_secs(1)).await;
        assert_eq!(windows.reported(&upstream, "small").await, Some(4096));
        assert_eq!(upstream.listings(), 1);
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(windows.reported(&upstream, "small").await, Some(4096));
        assert_eq!(upstream.listings(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_listing_is_kept_for_thirty_seconds() {
        let (windows, upstream) = (ContextWindows::new(), FakeUpstream::new(true));
        assert_eq!(windows.reported(&upstream, "small").await, None);
        tokio::time::advance(FAILURE_TTL - Duration::from_secs(1)).await;
        assert_eq!(windows.reported(&upstream, "small").await, None);
        assert_eq!(upstream.listings(), 1);
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(windows.reported(&upstream, "small").await, None);
        assert_eq!(upstream.listings(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_listing_that_does_not_answer_holds_a_turn_up_for_the_discovery_wait_at_most() {
        let windows = ContextWindows::new();
        let upstream = FakeUpstream { release: Some(Notify::new()), ..FakeUpstream::new(false) };
        let started = Instant::now();
        assert_eq!(windows.reported(&upstream, "small").await, None);
        assert_eq!(started.elapsed(), DISCOVERY_WAIT);
        // Given up like a failed listing: not asked again for a while.
        assert_eq!(windows.reported(&upstream, "small").await, None);
        assert_eq!(started.elapsed(), DISCOVERY_WAIT);
        assert_eq!(upstream.listings(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_callers_wait_for_one_listing() {
        let windows = ContextWindows::new();
        let upstream = FakeUpstream { release: Some(Notify::new()), ..FakeUpstream::new(false) };
        let callers = join_all((0..10).map(|_| windows.reported(&upstream, "small")));
        let release = async {
            // Every caller has been polled once when this runs: one lists, the others wait for its listing.
            assert_eq!(upstream.listings(), 1);
            upstream.release.as_ref().unwrap().notify_one();
        };
        let (windows_reported, ()) = tokio::join!(callers, release);
        assert_eq!(windows_reported, vec![Some(4096); 10]);
        assert_eq!(upstream.listings(), 1);
    }
}
