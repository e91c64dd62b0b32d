//! A chain of plugins run in order on one snapshot. Each sees the decisions proposed before
//! it; one that fails is recorded and skipped, and the rest still run.
//!
//! Wasm runs synchronously, for up to a plugin's deadline. In the daemon it must never run on
//! the async runtime's workers, beside the watches and the Lease renewal: [`PolicyChain::evaluate`]
//! moves the whole pass to a blocking thread, behind the host's evaluation slots (as
//! Kubewarden's policy-server does), with the caller's tracing span carried in.

use std::collections::HashMap;
use std::sync::Arc;

use ballast_sdk::{Decision, SnapshotData};

use super::bindings::types as w;
use super::convert;
use super::input::{EvaluationInput, SharedSnapshot};
use super::plugin::{CallReport, Plugin};

/// A decision and the plugin that proposed it.
#[derive(Clone, Debug, PartialEq)]
pub struct Proposed {
    pub plugin: Arc<str>,
    pub decision: Decision,
}

/// What one pass of the chain produced.
#[derive(Debug, Default)]
pub struct ChainOutcome {
    /// Every valid decision, in chain order.
    pub proposals: Vec<Proposed>,
    /// One report per plugin, in chain order, errors included.
    pub reports: Vec<CallReport>,
}

/// Plugins in order, with the state each returned last.
pub struct PolicyChain {
    plugins: Vec<Plugin>,
    states: HashMap<Arc<str>, Vec<u8>>,
}

impl PolicyChain {
    pub fn new(plugins: Vec<Plugin>) -> Self {
        PolicyChain { plugins, states: HashMap::new() }
    }

    pub fn plugins(&self) -> &[Plugin] {
        &self.plugins
    }

    /// Runs every plugin on `snapshot`, in order, on a blocking thread.
    ///
    /// # Guarantees
    /// The calling task only awaits: watches, Lease renewals and timers on the same runtime
    /// keep running while a plugin computes. At most the host's `max-concurrent-evaluations`
    /// passes run at once. Whatever a plugin does, the outcome has one report per plugin.
    ///
    /// # Caveats
    /// Needs a Tokio runtime (either flavour). Cancelling the returned future does not stop the
    /// pass: it finishes on its thread (each plugin is bounded by its deadline), keeping its
    /// slot until then, and the plugins' states are lost with it.
    pub async fn evaluate(&mut self, snapshot: Arc<SnapshotData>) -> ChainOutcome {
        let Some(first) = self.plugins.first() else { return ChainOutcome::default() };
        let permits = first.host().evaluation_slots();
        let permit = permits.acquire_owned().await.ok();
        let plugins = self.plugins.clone();
        let states = std::mem::take(&mut self.states);
        let span = tracing::Span::current();
        let pass = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let _entered = span.enter();
            let mut states = states;
            let outcome = run(&plugins, &mut states, snapshot);
            (outcome, states)
        });
        match pass.await {
            Ok((outcome, states)) => {
                self.states = states;
                outcome
            }
            Err(error) => {
                tracing::error!(%error, "the policy pass failed on its thread; no proposals this tick");
                let message = format!("the evaluation thread failed: {error}");
                let reports = self.plugins.iter().map(|p| CallReport::failed(p, message.clone())).collect();
                ChainOutcome { proposals: Vec::new(), reports }
            }
        }
    }

    /// Runs every plugin on `snapshot`, in order, on this thread.
    ///
    /// # Caveats
    /// Blocks for up to the sum of the plugins' deadlines, and must not be called from an
    /// async task (WASI's blocking calls enter a runtime): for the CLI and tests.
    pub fn evaluate_blocking(&mut self, snapshot: Arc<SnapshotData>) -> ChainOutcome {
        run(&self.plugins, &mut self.states, snapshot)
    }
}

fn run(plugins: &[Plugin], states: &mut HashMap<Arc<str>, Vec<u8>>, snapshot: Arc<SnapshotData>) -> ChainOutcome {
    let shared = Arc::new(SharedSnapshot::new(snapshot));
    let mut proposals: Vec<Proposed> = Vec::new();
    let mut wit_proposals: Vec<w::Proposal> = Vec::new();
    let mut reports = Vec::with_capacity(plugins.len());
    for plugin in plugins {
        let span = tracing::info_span!("plugin", plugin = plugin.name());
        let _entered = span.enter();
        let input = EvaluationInput {
            snapshot: shared.clone(),
            settings: Arc::from(plugin.settings()),
            state: states.get(plugin.name()).cloned(),
            proposals: wit_proposals.clone(),
        };
        let report = plugin.evaluate(input);
        match &report.result {
            Ok(evaluated) => {
                if let Some(state) = &evaluated.state {
                    states.insert(report.plugin.clone(), state.clone());
                }
                for decision in &evaluated.decisions {
                    wit_proposals
                        .push(w::Proposal { plugin: plugin.name().to_string(), decision: convert::decision(decision) });
                    proposals.push(Proposed { plugin: report.plugin.clone(), decision: decision.clone() });
                }
                tracing::debug!(
                    decisions = evaluated.decisions.len(),
                    elapsed_us = report.elapsed.as_micros() as u64,
                    "evaluated"
                );
            }
            Err(error) => {
                tracing::warn!(kind = error.kind(), %error, "plugin failed; skipped this tick");
            }
        }
        reports.push(report);
    }
    ChainOutcome { proposals, reports }
}
