//! A chain of plugins run in order on one snapshot. Each sees the decisions proposed before
//! it; one that fails is recorded and skipped, and the rest still run.

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
#[derive(Debug)]
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

    /// Runs every plugin on `snapshot`, in order.
    pub fn evaluate(&mut self, snapshot: Arc<SnapshotData>) -> ChainOutcome {
        let shared = Arc::new(SharedSnapshot::new(snapshot));
        let mut proposals: Vec<Proposed> = Vec::new();
        let mut wit_proposals: Vec<w::Proposal> = Vec::new();
        let mut reports = Vec::with_capacity(self.plugins.len());
        for plugin in &self.plugins {
            let span = tracing::info_span!("plugin", plugin = plugin.name());
            let _entered = span.enter();
            let input = EvaluationInput {
                snapshot: shared.clone(),
                settings: Arc::from(plugin.settings()),
                state: self.states.get(plugin.name()).cloned(),
                proposals: wit_proposals.clone(),
            };
            let report = plugin.evaluate(input);
            match &report.result {
                Ok(evaluated) => {
                    if let Some(state) = &evaluated.state {
                        self.states.insert(report.plugin.clone(), state.clone());
                    }
                    for decision in &evaluated.decisions {
                        wit_proposals.push(w::Proposal {
                            plugin: plugin.name().to_string(),
                            decision: convert::decision(decision),
                        });
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
}
