//! The policies a tick runs, as the engine sees them: a port, like the cluster and the
//! capacity. The wasm plugin host implements it (`PolicyChain`); the engine never sees a
//! component, a runtime or a WIT type, and its tests can drive it with plain Rust.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use ballast_sdk::{Decision, SnapshotData};

/// A decision and the plugin that proposed it.
#[derive(Clone, Debug, PartialEq)]
pub struct Proposed {
    pub plugin: Arc<str>,
    pub decision: Decision,
    /// Its plugin runs in shadow mode: guarded and recorded as if enforced, never acted on.
    pub shadow: bool,
}

/// How a plugin's decisions are used.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PluginMode {
    /// Guarded and acted on (in the engine's mode).
    #[default]
    Enforce,
    /// Evaluated, guarded and recorded as if enforced, never acted on. Later plugins of the
    /// chain do not see its proposals, so adding one changes nothing the chain does.
    Shadow,
}

impl std::fmt::Display for PluginMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PluginMode::Enforce => "enforce",
            PluginMode::Shadow => "shadow",
        })
    }
}

/// How one plugin's call went, as the tick records it.
#[derive(Clone, Debug, PartialEq)]
pub struct PolicyCall {
    pub plugin: Arc<str>,
    pub elapsed: Duration,
    /// Decisions it returned (0 when it failed).
    pub decisions: usize,
    /// `kind: message` when it failed and was skipped.
    pub error: Option<String>,
}

/// What one pass of the policies produced.
#[derive(Clone, Debug, Default)]
pub struct Evaluation {
    /// Every valid decision, in chain order.
    pub proposals: Vec<Proposed>,
    /// One call per plugin, in chain order, failures included.
    pub calls: Vec<PolicyCall>,
}

/// One plugin of the chain, as the engine and readers of [`super::live::Live`] see it.
pub trait PolicyEntry: Clone + Send + Sync + 'static {
    fn name(&self) -> &str;
    fn mode(&self) -> PluginMode;
    /// The component's sha256, hex.
    fn digest(&self) -> &str;
    /// Where it was loaded from: a path, `bundled:NAME`, `upload`.
    fn source(&self) -> &str;
}

/// The ordered plugins a tick evaluates.
pub trait Policies: Send + 'static {
    type Entry: PolicyEntry;

    /// Runs every plugin on `snapshot`, in order.
    ///
    /// # Guarantees
    /// One call per plugin whatever a plugin does; a failed plugin is reported and skipped.
    fn evaluate(&mut self, snapshot: Arc<SnapshotData>) -> impl Future<Output = Evaluation> + Send;

    fn entries(&self) -> &[Self::Entry];

    /// Adds a plugin at the end, or replaces the one of the same name in place; returns the
    /// entry it replaced.
    fn insert(&mut self, entry: Self::Entry) -> Option<Self::Entry>;

    /// Takes a plugin out, with what it remembered.
    fn remove(&mut self, name: &str) -> Option<Self::Entry>;

    /// Sets a plugin's mode; false when there is no such plugin.
    fn set_mode(&mut self, name: &str, mode: PluginMode) -> bool;

    /// Replaces the whole chain.
    fn replace_all(&mut self, entries: Vec<Self::Entry>);

    fn entry(&self, name: &str) -> Option<&Self::Entry> {
        self.entries().iter().find(|e| e.name() == name)
    }

    /// The policies' own states, for the next leader ([`super::handover`]); opaque to the
    /// engine. `None` when they keep none.
    fn hand_over(&self) -> Option<serde_json::Value> {
        None
    }

    /// Takes back the states another replica handed over, if they are newer than the ones
    /// held; returns the names of the policies that took theirs back.
    ///
    /// # Errors
    /// States that do not parse, naming what is wrong.
    fn take_over(&mut self, states: serde_json::Value) -> Result<Vec<String>, String> {
        let _ = states;
        Ok(Vec::new())
    }
}
