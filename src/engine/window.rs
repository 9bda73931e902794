//! Fitting a turn's context into the model's window. The context is a plan over runs: the turn's instructions, the
//! system messages of dropped turns, a summary of compacted turns, the history turns kept, and the new input. Turns
//! are dropped whole and oldest first, never leaving a function call output without its call; instructions, system
//! and developer messages and the input are never dropped.

use super::context::ContextRun;
use crate::model::Item;

/// One turn of history: its number in its chain or conversation (from 1), its run and its items.
#[derive(Clone, Copy)]
pub struct HistoryRun<'a> {
    pub position: u32,
    pub run: &'a ContextRun,
    pub items: &'a [Item],
}

/// A context being fitted.
pub struct Plan<'a> {
    instructions: Option<&'a ContextRun>,
    /// System and developer messages of the dropped turns.
    pinned: Vec<&'a ContextRun>,
    /// The summary standing for the compacted turns, and its text.
    summary: Option<(&'a ContextRun, &'a str)>,
    history: Vec<HistoryRun<'a>>,
    input: &'a ContextRun,
    /// Tokens outside the messages: tool definitions and the reply priming.
    fixed: u64,
    /// Whether turns were dropped to fit (not counting those a compaction replaced).
    truncated: bool,
}

impl<'a> Plan<'a> {
    /// The whole context; the latest compaction in the history applies: the turns it replaces are dropped for its
    /// summary.
    pub fn new(
        instructions: Option<&'a ContextRun>,
        history: Vec<HistoryRun<'a>>,
        input: &'a ContextRun,
        fixed: u64,
    ) -> Self {
        let mut plan =
            Self { instructions, pinned: Vec::new(), summary: None, history, input, fixed, truncated: false };
        let latest = plan.history.iter().rev().find_map(|turn| turn.run.compaction.as_deref());
        if let Some(compacted) = latest {
            let replaced = plan.history.iter().take_while(|turn| turn.position <= compacted.through).count();
            plan.drop_oldest(replaced);
            plan.summary = Some((&compacted.run, &compacted.summary));
        }
        plan
    }

    /// Tokens of the whole context.
    pub fn tokens(&self) -> u64 {
        self.runs().iter().map(|run| run.tokens).sum::<u64>() + self.fixed
    }

    /// Tokens of the history in it (summary and kept turns).
    pub fn history_tokens(&self) -> u64 {
        self.summary.map_or(0, |(run, _)| run.tokens) + self.history.iter().map(|turn| turn.run.tokens).sum::<u64>()
    }

    /// Whether turns were dropped to fit (by `keep_last` or `fit`).
    pub fn truncated(&self) -> bool {
        self.truncated
    }

    /// How many turns of history it keeps.
    pub fn history_len(&self) -> usize {
        self.history.len()
    }

    /// The runs to send, in order.
    pub fn runs(&self) -> Vec<&'a ContextRun> {
        let mut runs: Vec<&ContextRun> = self.instructions.into_iter().chain(self.pinned.iter().copied()).collect();
        runs.extend(self.summary.map(|(run, _)| run));
        runs.extend(self.history.iter().map(|turn| turn.run));
        runs.push(self.input);
        runs
    }

    /// How many messages come before the input (instructions, pinned messages, summary and history): the stable
    /// prefix a backend may cache; 0 when there is no history.
    pub fn stable_prefix(&self) -> usize {
        if self.history.is_empty() && self.summary.is_none() {
            return 0;
        }
        let runs = self.runs();
        runs[..runs.len() - 1].iter().map(|run| run.message_count()).sum()
    }

    /// Keeps only the last `count` turns of history (or more, where a call's output needs its call).
    pub fn keep_last(&mut self, count: usize) {
        let cut = self.history.len().saturating_sub(count);
        let cut = self.cut_from(cut).unwrap_or(0);
        self.truncated |= cut > 0;
        self.drop_oldest(cut);
    }

    /// Drops the oldest whole turns of history until the context is at most `limit` tokens, then — if that is not
    /// enough — the summary of earlier turns, whose few tokens stand for the most history; false if it cannot get
    /// there.
    pub fn fit(&mut self, limit: u64) -> bool {
        let mut tokens = self.tokens();
        let mut needed = 0;
        for turn in &self.history {
            if tokens <= limit {
                break;
            }
            tokens -= turn.run.tokens.saturating_sub(turn.run.pinned.as_ref().map_or(0, |pinned| pinned.tokens));
            needed += 1;
        }
        if let Some(cut) = self.cut_from(needed) {
            self.truncated |= cut > 0;
            self.drop_oldest(cut);
        }
        if self.tokens() > limit && self.summary.is_some() {
            self.truncated = true;
            self.summary = None;
        }
        self.tokens() <= limit
    }

    /// Where to cut for a compaction that keeps the newest turns of at most `keep` tokens verbatim: the number of
    /// turns to summarize, if any.
    pub fn compaction_cut(&self, keep: u64) -> Option<usize> {
        let mut kept = 0;
        let newest = self.history.iter().rev().take_while(|turn| {
            kept += turn.run.tokens;
            kept <= keep
        });
        let cut = self.history.len() - newest.count();
        self.cut_from(cut).filter(|&cut| cut > 0)
    }

    /// The summary in force and the turns a compaction cut at `cut` summarizes.
    pub fn to_summarize(&self, cut: usize) -> (Option<&'a str>, &[HistoryRun<'a>]) {
        (self.summary.map(|(_, text)| text), &self.history[..cut])
    }

    /// The number of the last turn a compaction cut at `cut` replaces.
    pub fn position(&self, cut: usize) -> u32 {
        self.history[cut - 1].position
    }

    /// Replaces the first `cut` turns of history, and any summary before them, by `summary`.
    pub fn compact(&mut self, cut: usize, summary: (&'a ContextRun, &'a str)) {
        self.drop_oldest(cut);
        self.summary = Some(summary);
    }

    /// The first cut at or after `from` that leaves no kept function call output without its call.
    fn cut_from(&self, from: usize) -> Option<usize> {
        (from..=self.history.len()).find(|&cut| {
            let kept: Vec<&ContextRun> =
                self.history[cut..].iter().map(|turn| turn.run).chain(std::iter::once(self.input)).collect();
            kept.iter().enumerate().all(|(i, run)| !run.answers_missing_call(kept[..i].iter().copied()))
        })
    }

    /// Drops the oldest `count` turns of history, keeping their system and developer messages.
    fn drop_oldest(&mut self, count: usize) {
        let dropped = self.history.drain(..count.min(self.history.len()));
        self.pinned.extend(dropped.filter_map(|turn| turn.run.pinned.as_deref()));
    }
}
