//! Routing: the configured upstreams in order, the one serving a model name, and the model list of them all.

use std::sync::Arc;

use futures::future::join_all;

use super::{
    Anthropic, ChatCompletions, Echo, ModelInfo, Responses, Scrubber, Upstream, UpstreamError, UpstreamResult,
};
use crate::config::{ModelPattern, UpstreamConfig, UpstreamKind};

/// The configured upstreams in order; a model is served by the first whose patterns match it.
pub struct Upstreams {
    routes: Vec<(Vec<ModelPattern>, Arc<dyn Upstream>)>,
}

impl Upstreams {
    /// Builds every configured upstream (each with its own connection pool, reading answers of at most
    /// `max_reply_bytes`, scrubbing what they say with `scrubber`).
    pub fn from_config(
        configs: &[UpstreamConfig],
        max_reply_bytes: usize,
        scrubber: &Scrubber,
    ) -> anyhow::Result<Self> {
        let routes = configs
            .iter()
            .map(|config| {
                let upstream: Arc<dyn Upstream> = match config.kind {
                    UpstreamKind::ChatCompletions => Arc::new(ChatCompletions::new(config, max_reply_bytes, scrubber)?),
                    UpstreamKind::Anthropic => Arc::new(Anthropic::new(config, max_reply_bytes, scrubber)?),
                    UpstreamKind::Responses => Arc::new(Responses::new(config, max_reply_bytes, scrubber)?),
                    UpstreamKind::Echo => Arc::new(Echo::new(&config.name)),
                };
                Ok((config.models.clone(), upstream))
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(Self { routes })
    }

    /// The upstream serving `model`.
    pub fn route(&self, model: &str) -> UpstreamResult<Arc<dyn Upstream>> {
        self.routes
            .iter()
            .find(|(patterns, _)| patterns.iter().any(|p| p.matches(model)))
            .map(|(_, upstream)| upstream.clone())
            .ok_or_else(|| UpstreamError::ModelNotFound(model.to_string()))
    }

    /// Every model a request could be routed to, each listed once under the upstream that would serve it. An
    /// upstream that cannot list its models contributes the literal (wildcard-free) names configured for it.
    pub async fn models(&self) -> Vec<ModelInfo> {
        let listings = join_all(self.routes.iter().map(|(patterns, upstream)| async move {
            let listed = upstream.models().await.unwrap_or_else(|err| {
                tracing::warn!(upstream = upstream.name(), error = %err, "listing models failed; using configured names");
                let names = patterns.iter().filter_map(ModelPattern::literal);
                names.map(|id| ModelInfo::named(id, upstream.name())).collect()
            });
            (upstream, listed)
        }))
        .await;
        let mut models: Vec<ModelInfo> = Vec::new();
        for (upstream, listed) in listings {
            for model in listed {
                let served_here = self.route(&model.id).is_ok_and(|route| Arc::ptr_eq(&route, upstream));
                if served_here && !models.iter().any(|m| m.id == model.id) {
                    models.push(model);
                }
            }
        }
        models
    }
}
