//! Context windows as the upstreams report them in their model lists: read from whichever field a backend uses,
//! and cached per upstream so a turn asks no backend anything while its listing is fresh.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use serde_json::Value;
use tokio::time::{Duration, Instant};

use super::{ModelInfo, Upstream};

/// How long a successful listing is kept.
const LISTING_TTL: Duration = Duration::from_secs(5 * 60);

/// How long a failed listing is kept, so a down backend is not asked again on every turn.
const FAILURE_TTL: Duration = Duration::from_secs(30);

/// Where backends report a model's context length, as paths of fields (and array indices), first found wins. The
/// length a model is loaded with, where reported, comes before the most it could be loaded with: a request longer
/// than the loaded length fails.
const WINDOW_FIELDS: [&[&str]; 9] = [
    // LM Studio, OpenRouter.
    &["context_length"],
    // vLLM.
    &["max_model_len"],
    // LM Studio's `/api/v0/models`, for a loaded model.
    &["loaded_context_length"],
    // LM Studio's native model list, for a loaded model: its first instance's configuration.
    &["loaded_instances", "0", "config", "context_length"],
    // LM Studio's `/api/v0/models` and native list: the most the model can be loaded with.
    &["max_context_length"],
    &["context_window"],
    &["n_ctx"],
    // llama.cpp server: the length the model was trained with.
    &["meta", "n_ctx_train"],
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

/// The windows an upstream's model list reports; a failure is logged and yields none, kept for less long.
async fn list_windows(upstream: &dyn Upstream) -> Listing {
    match upstream.models().await {
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
    use crate::upstream::{ChatRequest, Completion, DeltaStream, UpstreamError, UpstreamResult};

    fn model(json: Value) -> ModelInfo {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn reads_the_window_each_backend_reports() {
        let lm_studio_v1 = json!({"id": "qwen2.5-7b-instruct", "object": "model", "owned_by": "organization_owner",
            "context_length": 32768});
        assert_eq!(reported_window(&model(lm_studio_v1)), Some(32768));
        let vllm = json!({"id": "meta-llama/Llama-3.1-8B-Instruct", "object": "model", "created": 1_736_000_000,
            "owned_by": "vllm", "root": "meta-llama/Llama-3.1-8B-Instruct", "parent": null, "max_model_len": 8192,
            "permission": [{"id": "modelperm-1", "object": "model_permission", "allow_sampling": true}]});
        assert_eq!(reported_window(&model(vllm)), Some(8192));
        let lm_studio_v0 = json!({"id": "qwen2-vl-7b-instruct", "object": "model", "type": "vlm",
            "publisher": "mlx-community", "arch": "qwen2_vl", "compatibility_type": "mlx", "quantization": "4bit",
            "state": "not-loaded", "max_context_length": 32768});
        assert_eq!(reported_window(&model(lm_studio_v0)), Some(32768));
        let groq = json!({"id": "llama-3.3-70b-versatile", "object": "model", "created": 1_733_447_754,
            "owned_by": "Meta", "active": true, "context_window": 131_072, "public_apps": null});
        assert_eq!(reported_window(&model(groq)), Some(131_072));
        let n_ctx = json!({"id": "local", "object": "model", "n_ctx": 4096});
        assert_eq!(reported_window(&model(n_ctx)), Some(4096));
        let llama_cpp = json!({"id": "qwen2.5-7b-instruct-q4_k_m.gguf", "object": "model", "created": 1_736_000_000,
            "owned_by": "llamacpp", "meta": {"vocab_type": 2, "n_vocab": 152_064, "n_ctx_train": 32768,
            "n_embd": 3584, "n_params": 7_615_616_512_u64, "size": 4_677_120_000_u64}});
        assert_eq!(reported_window(&model(llama_cpp)), Some(32768));
        let openrouter_top_provider = json!({"id": "openai/gpt-4o", "name": "OpenAI: GPT-4o", "created": 1_715_367_049,
            "architecture": {"modality": "text+image->text", "tokenizer": "GPT"},
            "top_provider": {"context_length": 128_000, "max_completion_tokens": 16384, "is_moderated": true}});
        assert_eq!(reported_window(&model(openrouter_top_provider)), Some(128_000));
    }

    #[test]
    fn the_loaded_length_comes_before_the_most_a_model_could_be_loaded_with() {
        let lm_studio_native = json!({"id": "qwen/qwen3-8b", "type": "llm", "publisher": "qwen",
            "key": "qwen/qwen3-8b", "display_name": "Qwen3 8B", "max_context_length": 40960,
            "loaded_instances": [{"id": "qwen/qwen3-8b", "config": {"context_length": 8192, "eval_batch_size": 512}}]});
        assert_eq!(reported_window(&model(lm_studio_native)), Some(8192));
        let lm_studio_v0_loaded = json!({"id": "meta-llama-3.1-8b-instruct", "object": "model", "type": "llm",
            "state": "loaded", "max_context_length": 131_072, "loaded_context_length": 4096});
        assert_eq!(reported_window(&model(lm_studio_v0_loaded)), Some(4096));
        let openrouter = json!({"id": "anthropic/claude-sonnet-4", "context_length": 200_000,
            "top_provider": {"context_length": 1_000_000, "max_completion_tokens": 64000}});
        assert_eq!(reported_window(&model(openrouter)), Some(200_000));
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
