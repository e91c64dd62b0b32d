//! A chain of plugins run in order on one snapshot. Each sees the decisions proposed before
//! it; one that fails is recorded and skipped, and the rest still run.
//!
//! Wasm runs synchronously, for up to a plugin's deadline. In the daemon it must never run on
//! the async runtime's workers, beside the watches and the Lease renewal: [`PolicyChain::evaluate`]
//! moves the whole pass to a blocking thread, behind the host's evaluation slots (as
//! Kubewarden's policy-server does), with the caller's tracing span carried in.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ballast_sdk::SnapshotData;

use ballast_engine::policies::{Evaluation, Policies, PolicyCall, PolicyEntry};

use super::bindings::types as w;
use super::convert;
use super::input::{EvaluationInput, SharedSnapshot};
use super::plugin::{CallReport, Plugin};
use super::saved::{SavedState, SavedStates, StateFile};

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

pub use ballast_engine::policies::{PluginMode, Proposed};

/// A plugin in the chain: how it is used, where it came from, how its calls went.
#[derive(Clone)]
pub struct ChainEntry {
    pub plugin: Plugin,
    pub mode: PluginMode,
    /// Where it was loaded from: a path, `bundled:NAME`, `upload`.
    pub source: String,
    pub stats: Arc<Mutex<CallStats>>,
}

impl ChainEntry {
    pub fn new(plugin: Plugin, mode: PluginMode, source: impl Into<String>) -> Self {
        ChainEntry { plugin, mode, source: source.into(), stats: Arc::default() }
    }
}

/// How many latencies [`CallStats`] keeps for its percentiles.
const LATENCY_WINDOW: usize = 1024;

/// A plugin's calls since it was loaded.
#[derive(Clone, Debug, Default)]
pub struct CallStats {
    pub calls: u64,
    /// Failed calls by error kind.
    pub errors: std::collections::BTreeMap<&'static str, u64>,
    pub last_error: Option<String>,
    latencies: std::collections::VecDeque<u64>,
}

impl CallStats {
    fn add(&mut self, report: &CallReport) {
        self.calls += 1;
        if self.latencies.len() == LATENCY_WINDOW {
            self.latencies.pop_front();
        }
        self.latencies.push_back(report.elapsed.as_micros() as u64);
        if let Err(error) = &report.result {
            *self.errors.entry(error.kind()).or_default() += 1;
            self.last_error = Some(error.to_string());
        }
    }

    /// The latencies at quantiles `qs` (0..=1) of the last calls, in microseconds (nearest
    /// rank; 0 before the first call).
    pub fn latency_micros<const N: usize>(&self, qs: [f64; N]) -> [u64; N] {
        let mut sorted: Vec<u64> = self.latencies.iter().copied().collect();
        sorted.sort_unstable();
        qs.map(|q| {
            let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len().max(1));
            sorted.get(rank - 1).copied().unwrap_or(0)
        })
    }
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
    entries: Vec<ChainEntry>,
    states: HashMap<Arc<str>, Vec<u8>>,
    /// Snapshot time of the evaluation (or saved file) the states come from.
    states_at: Option<u64>,
    /// States older than this are not handed back ([`PolicyChain::with_state_max_age`]).
    state_max_age_millis: u64,
    /// Behind a lock so that the daemon writes it on a blocking thread.
    file: Option<Arc<Mutex<StateFile>>>,
}

impl PolicyChain {
    /// Every plugin enforced, in order.
    pub fn new(plugins: Vec<Plugin>) -> Self {
        let entries = plugins
            .into_iter()
            .map(|p| {
                let source = format!("loaded at start ({})", p.name());
                ChainEntry::new(p, PluginMode::Enforce, source)
            })
            .collect();
        Self::of(entries)
    }

    pub fn of(entries: Vec<ChainEntry>) -> Self {
        PolicyChain { entries, states: HashMap::new(), states_at: None, state_max_age_millis: u64::MAX, file: None }
    }

    /// Hands a policy's state back only if the evaluation that returned it was taken at most
    /// `max_age` before the snapshot being evaluated; otherwise every policy starts afresh.
    /// Without it, states are handed back however old (the simulator, tests).
    ///
    /// # Guarantees
    /// A replica that stopped evaluating for longer (a standby that regains leadership, a
    /// paused engine, a state file from long ago) never acts on timers and histories that
    /// missed what happened meanwhile: an idle timer restarts instead of firing at once.
    pub fn with_state_max_age(mut self, max_age: Duration) -> Self {
        self.state_max_age_millis = millis(max_age);
        self
    }

    /// Saves every policy's state to `file` after each evaluation ([`StateFile::store`]).
    /// Call [`PolicyChain::restore`] with what it held first.
    pub fn with_state_file(mut self, file: StateFile) -> Self {
        self.file = Some(Arc::new(Mutex::new(file)));
        self
    }

    /// Takes back the states `saved` holds for policies of this chain whose component is the
    /// one that wrote them; the rest are dropped. Returns the names taken back.
    ///
    /// # Caveats
    /// Their age is judged at the next evaluation, against its snapshot's time.
    pub fn restore(&mut self, saved: SavedStates) -> Vec<String> {
        let mut restored = Vec::new();
        for (name, kept) in saved.policies {
            let entry = self.entries.iter().find(|e| e.plugin.name() == name);
            let why_not = match (entry, hex::decode(&kept.state)) {
                (None, _) => Some("not in the chain".to_string()),
                (Some(e), _) if e.plugin.info().digest != kept.digest => Some("another component".to_string()),
                (Some(_), Err(e)) => Some(format!("state is not hex: {e}")),
                (Some(e), Ok(bytes)) => {
                    self.states.insert(Arc::from(e.plugin.name()), bytes);
                    None
                }
            };
            match why_not {
                Some(why) => tracing::info!(plugin = %name, %why, "saved policy state not taken back"),
                None => restored.push(name),
            }
        }
        self.states_at = Some(saved.at_millis);
        restored
    }

    /// Every policy's state as it stands, for [`StateFile::store`].
    pub fn saved(&self) -> SavedStates {
        let policies = self
            .entries
            .iter()
            .filter_map(|e| {
                let state = self.states.get(e.plugin.name())?;
                let saved = SavedState { digest: e.plugin.info().digest.clone(), state: hex::encode(state) };
                Some((e.plugin.name().to_string(), saved))
            })
            .collect();
        SavedStates { at_millis: self.states_at.unwrap_or_default(), policies }
    }

    /// Drops every state older than the limit, before evaluating a snapshot taken at `now`.
    fn forget_stale(&mut self, now: u64) {
        let Some(at) = self.states_at else { return };
        let age = now.saturating_sub(at);
        if age > self.state_max_age_millis && !self.states.is_empty() {
            tracing::info!(age_seconds = age / 1000, "policy states too old to hand back; every policy starts afresh");
            self.states.clear();
        }
    }

    /// Records when the states were returned; what to save, when they are saved.
    fn evaluated(&mut self, now: u64) -> Option<(Arc<Mutex<StateFile>>, SavedStates)> {
        self.states_at = Some(now);
        Some((self.file.clone()?, self.saved()))
    }

    pub fn entries(&self) -> &[ChainEntry] {
        &self.entries
    }

    pub fn entry(&self, name: &str) -> Option<&ChainEntry> {
        self.entries.iter().find(|e| e.plugin.name() == name)
    }

    /// Adds a plugin at the end, or replaces the one of the same name in place (its state
    /// kept only when the component is the same). Returns the entry it replaced.
    pub fn insert(&mut self, entry: ChainEntry) -> Option<ChainEntry> {
        let name = entry.plugin.name();
        match self.entries.iter().position(|e| e.plugin.name() == name) {
            Some(i) => {
                if self.entries[i].plugin.info().digest != entry.plugin.info().digest {
                    self.states.remove(name);
                }
                Some(std::mem::replace(&mut self.entries[i], entry))
            }
            None => {
                self.entries.push(entry);
                None
            }
        }
    }

    /// Replaces the whole chain; a plugin keeps its state when its name and component are
    /// the same as before.
    pub fn replace_all(&mut self, entries: Vec<ChainEntry>) {
        let kept: HashMap<&str, &str> =
            entries.iter().map(|e| (e.plugin.name(), e.plugin.info().digest.as_str())).collect();
        let old = std::mem::take(&mut self.entries);
        let mut states = std::mem::take(&mut self.states);
        states.retain(|name, _| {
            old.iter()
                .any(|e| e.plugin.name() == &**name && kept.get(&**name) == Some(&e.plugin.info().digest.as_str()))
        });
        self.states = states;
        self.entries = entries;
    }

    /// Takes a plugin out of the chain, with its state.
    pub fn remove(&mut self, name: &str) -> Option<ChainEntry> {
        let i = self.entries.iter().position(|e| e.plugin.name() == name)?;
        self.states.remove(name);
        Some(self.entries.remove(i))
    }

    /// Sets a plugin's mode; false when there is no such plugin.
    pub fn set_mode(&mut self, name: &str, mode: PluginMode) -> bool {
        match self.entries.iter_mut().find(|e| e.plugin.name() == name) {
            Some(entry) => {
                entry.mode = mode;
                true
            }
            None => false,
        }
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
        let Some(first) = self.entries.first() else { return ChainOutcome::default() };
        let permits = first.plugin.host().evaluation_slots();
        let now = snapshot.taken_at_millis;
        self.forget_stale(now);
        let permit = permits.acquire_owned().await.ok();
        let plugins = self.entries.clone();
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
                if let Some((file, saved)) = self.evaluated(now) {
                    // A write and its fsync stay off the runtime's workers, as the pass does.
                    let _ = tokio::task::spawn_blocking(move || store(&file, &saved)).await;
                }
                outcome
            }
            Err(error) => {
                tracing::error!(%error, "the policy pass failed on its thread; no proposals this tick");
                let message = format!("the evaluation thread failed: {error}");
                let reports = self.entries.iter().map(|e| CallReport::failed(&e.plugin, message.clone())).collect();
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
        let now = snapshot.taken_at_millis;
        self.forget_stale(now);
        let outcome = run(&self.entries, &mut self.states, snapshot);
        if let Some((file, saved)) = self.evaluated(now) {
            store(&file, &saved);
        }
        outcome
    }
}

/// Saves `saved`; a failure is reported by the file and retried after the next evaluation.
fn store(file: &Mutex<StateFile>, saved: &SavedStates) {
    let _ = file.lock().unwrap_or_else(|p| p.into_inner()).store(saved);
}

fn run(entries: &[ChainEntry], states: &mut HashMap<Arc<str>, Vec<u8>>, snapshot: Arc<SnapshotData>) -> ChainOutcome {
    let shared = Arc::new(SharedSnapshot::new(snapshot));
    let mut proposals: Vec<Proposed> = Vec::new();
    let mut wit_proposals: Vec<w::Proposal> = Vec::new();
    let mut reports = Vec::with_capacity(entries.len());
    for entry in entries {
        let plugin = &entry.plugin;
        let shadow = entry.mode == PluginMode::Shadow;
        let span = tracing::info_span!("plugin", plugin = plugin.name());
        let _entered = span.enter();
        let input = EvaluationInput {
            snapshot: shared.clone(),
            settings: Arc::from(plugin.settings()),
            state: states.get(plugin.name()).cloned(),
            proposals: wit_proposals.clone(),
        };
        let report = plugin.evaluate(input);
        entry.stats.lock().unwrap_or_else(|p| p.into_inner()).add(&report);
        match &report.result {
            Ok(evaluated) => {
                if let Some(state) = &evaluated.state {
                    states.insert(report.plugin.clone(), state.clone());
                }
                for decision in &evaluated.decisions {
                    if !shadow {
                        wit_proposals.push(w::Proposal {
                            plugin: plugin.name().to_string(),
                            decision: convert::decision(decision),
                        });
                    }
                    proposals.push(Proposed { plugin: report.plugin.clone(), decision: decision.clone(), shadow });
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

impl PolicyEntry for ChainEntry {
    fn name(&self) -> &str {
        self.plugin.name()
    }
    fn mode(&self) -> PluginMode {
        self.mode
    }
    fn digest(&self) -> &str {
        &self.plugin.info().digest
    }
    fn source(&self) -> &str {
        &self.source
    }
}

/// The engine's port, served by wasm plugins.
impl Policies for PolicyChain {
    type Entry = ChainEntry;

    async fn evaluate(&mut self, snapshot: Arc<SnapshotData>) -> Evaluation {
        let ChainOutcome { proposals, reports } = PolicyChain::evaluate(self, snapshot).await;
        let calls = reports
            .into_iter()
            .map(|r| PolicyCall {
                decisions: r.result.as_ref().map_or(0, |e| e.decisions.len()),
                error: r.result.as_ref().err().map(|e| format!("{}: {e}", e.kind())),
                plugin: r.plugin,
                elapsed: r.elapsed,
            })
            .collect();
        Evaluation { proposals, calls }
    }
    fn entries(&self) -> &[ChainEntry] {
        PolicyChain::entries(self)
    }
    fn insert(&mut self, entry: ChainEntry) -> Option<ChainEntry> {
        PolicyChain::insert(self, entry)
    }
    fn remove(&mut self, name: &str) -> Option<ChainEntry> {
        PolicyChain::remove(self, name)
    }
    fn set_mode(&mut self, name: &str, mode: PluginMode) -> bool {
        PolicyChain::set_mode(self, name, mode)
    }
    fn replace_all(&mut self, entries: Vec<ChainEntry>) {
        PolicyChain::replace_all(self, entries)
    }
    /// [`PolicyChain::saved`], once there is anything to save.
    fn hand_over(&self) -> Option<serde_json::Value> {
        self.states_at?;
        serde_json::to_value(self.saved()).ok()
    }
    /// [`PolicyChain::restore`], when the states handed over are newer than those held.
    fn take_over(&mut self, states: serde_json::Value) -> Result<Vec<String>, String> {
        let saved: SavedStates = serde_json::from_value(states).map_err(|e| format!("policies: {e}"))?;
        if self.states_at.is_some_and(|at| at >= saved.at_millis) {
            return Ok(Vec::new());
        }
        self.states.clear();
        Ok(self.restore(saved))
    }
}
