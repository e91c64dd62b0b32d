//! Policies managed like configuration: components from files (a ConfigMap or a volume),
//! optionally pinned by SHA-256, loaded again when a file or the configuration changes
//! (including the symlink swap a ConfigMap update makes), the last good version kept when
//! a new one fails to load or validate. Each reload is recorded (a `control` record by
//! `policy-reload`) and counted in `ballast_policy_reloads_total{plugin,result}`. The
//! engine's guardrails are reloaded too (a `control` record by `config-reload` naming the
//! fields that changed); its other settings are read at start, and a change to them is
//! noted in the reload's record as waiting for a restart.
//!
//! Files are polled (`reload-interval`): a kubelet updates a mounted ConfigMap by swapping
//! a symlink, which a poll of the resolved path sees whatever the filesystem.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::{mpsc, oneshot, watch};

use crate::daemon_config::{DaemonConfig, PolicyEntry};
use crate::engine::EngineConfig;
use crate::engine::config::Guardrails;
use crate::engine::control::Asked;
use crate::engine::series::SeriesQuery;
use crate::metrics::{Metrics, ReloadLabels};
use crate::policy::{ChainEntry, LoadError, PluginSpec, PolicyHost};
use crate::policy::{Change, Live};
use crate::runner::Command;

/// A configured policy's component as read: once per load or reload.
struct Component {
    name: String,
    bytes: Arc<[u8]>,
    /// `bundled:NAME` or the path as configured.
    source: String,
    /// SHA-256 of the bytes, hex.
    digest: String,
}

impl Component {
    fn read(entry: &PolicyEntry) -> Result<Self, String> {
        let (name, bytes, source) = read(&entry.plugin).map_err(|e| format!("plugin: {e}"))?;
        let digest = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes));
        Ok(Component { name, bytes, source, digest })
    }
}

/// Reads and loads one configured policy: a component file or a bundled name, checked
/// against its pinned digest, compiled, linked, its settings validated.
///
/// # Errors
/// What is wrong, starting with the entry's field (`plugin: ...`, `sha256: ...`,
/// `settings: ...`, `limits: ...`) and naming the file and both digests where they matter.
pub fn load_entry(host: &PolicyHost, entry: &PolicyEntry) -> Result<ChainEntry, String> {
    load(host, entry, Component::read(entry)?)
}

fn load(host: &PolicyHost, entry: &PolicyEntry, component: Component) -> Result<ChainEntry, String> {
    if let Some(pin) = &entry.sha256
        && !component.digest.eq_ignore_ascii_case(pin)
    {
        return Err(format!("sha256: {} is {}, the configuration pins {pin}", entry.plugin, component.digest));
    }
    let Component { name, bytes, source, .. } = component;
    let spec = PluginSpec { name, bytes, settings: entry.settings.clone(), limits: entry.limits.clone() };
    let plugin = host.load(spec).map_err(|e| {
        let field = match e {
            LoadError::SettingsRejected { .. } | LoadError::SettingsCheck { .. } => "settings",
            LoadError::Limits { .. } => "limits",
            _ => "plugin",
        };
        format!("{field}: {}: {e}", entry.plugin)
    })?;
    Ok(ChainEntry::new(plugin, entry.mode, source))
}

/// The component's name, bytes and source (`bundled:NAME` or the path as configured).
///
/// # Errors
/// The file cannot be read, or the name is neither a file nor a bundled policy (the message
/// lists the bundled ones).
pub fn read(plugin: &str) -> Result<(String, Arc<[u8]>, String), String> {
    let path = Path::new(plugin);
    if path.exists() {
        let spec = PluginSpec::from_file(path).map_err(|e| e.to_string())?;
        return Ok((spec.name, spec.bytes, plugin.to_string()));
    }
    match crate::bundled::plugin(plugin) {
        Some(b) => Ok((b.name.to_string(), Arc::from(b.wasm), format!("bundled:{}", b.name))),
        None => {
            let names: Vec<&str> = crate::bundled::PLUGINS.iter().map(|p| p.name).collect();
            Err(format!("{plugin}: no such file, and not a bundled policy (bundled: {})", names.join(", ")))
        }
    }
}

/// What identifies a file's content without reading it: where its path resolves to (a
/// ConfigMap's symlink swap changes it), its size, time and inode.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Stamp {
    resolved: Option<PathBuf>,
    len: u64,
    modified: Option<SystemTime>,
    inode: u64,
}

fn stamp(path: &Path) -> Option<Stamp> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).ok()?;
    Some(Stamp {
        resolved: std::fs::canonicalize(path).ok(),
        len: meta.len(),
        modified: meta.modified().ok(),
        inode: meta.ino(),
    })
}

/// How one configured policy came out of a reload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A new component, settings or limits, now in the chain.
    Loaded,
    /// As it was (its mode may have changed).
    Unchanged,
    /// The new version failed; the running one stays.
    KeptPrevious(String),
    /// Failed, and nothing of that source was running.
    Failed(String),
    /// Running, but the configuration does not name it (loaded through the control API, or
    /// taken out of the configuration): no longer in the chain.
    Removed,
}

impl Outcome {
    fn label(&self) -> &'static str {
        match self {
            Outcome::Loaded => "loaded",
            Outcome::Unchanged => "unchanged",
            Outcome::KeptPrevious(_) => "kept-previous",
            Outcome::Failed(_) => "failed",
            Outcome::Removed => "removed",
        }
    }
}

/// The chain a reload arrived at, and how each policy fared.
pub struct Reload {
    pub entries: Vec<ChainEntry>,
    pub outcomes: Vec<(String, Outcome)>,
    /// The files that changed.
    pub changed: Vec<PathBuf>,
    /// The CloudWatch queries the configuration names now (as before when it could not be
    /// read).
    pub queries: Vec<SeriesQuery>,
    /// The engine's guardrails, when the configuration changed them.
    pub guardrails: Option<Guardrails>,
    /// Engine settings read at start only that the configuration changed (`engine.tick-interval`).
    pub restart_only: Vec<String>,
}

impl Reload {
    /// Changes nothing: every policy as it runs, in the same order and modes.
    pub fn is_noop(&self, running: &[ChainEntry]) -> bool {
        self.outcomes.iter().all(|(_, o)| *o == Outcome::Unchanged)
            && self.entries.len() == running.len()
            && self.entries.iter().zip(running).all(|(a, b)| a.plugin.name() == b.plugin.name() && a.mode == b.mode)
    }
}

/// Watches the configuration file and the policies' files.
pub struct Reloader {
    config_path: Option<PathBuf>,
    policies: Vec<PolicyEntry>,
    /// The engine settings as last read.
    engine: EngineConfig,
    /// What the last read of the configuration changed in them.
    engine_changes: (Option<Guardrails>, Vec<String>),
    host: PolicyHost,
    stamps: BTreeMap<PathBuf, Option<Stamp>>,
}

impl Reloader {
    /// Starts from the configuration the daemon started with.
    pub fn new(config_path: Option<PathBuf>, config: &DaemonConfig, host: PolicyHost) -> Self {
        let mut reloader = Reloader {
            config_path,
            policies: config.policies.clone(),
            engine: config.engine.clone(),
            engine_changes: (None, Vec::new()),
            host,
            stamps: BTreeMap::new(),
        };
        reloader.stamps = reloader.watched().into_iter().map(|p| (p.clone(), stamp(&p))).collect();
        reloader
    }

    fn watched(&self) -> Vec<PathBuf> {
        let files = self.policies.iter().map(|p| PathBuf::from(&p.plugin)).filter(|p| p.exists());
        self.config_path.iter().cloned().chain(files).collect()
    }

    /// Looks at the files; when one changed, works out the new chain from `running`.
    /// Blocking: reads files and compiles components.
    ///
    /// # Guarantees
    /// A policy whose new version fails keeps its running entry; an unreadable or invalid
    /// configuration file keeps the running chain whole (reported as one failure).
    pub fn poll(&mut self, running: &[ChainEntry]) -> Option<Reload> {
        let changed: Vec<PathBuf> =
            self.watched().into_iter().filter(|p| self.stamps.get(p).cloned().flatten() != stamp(p)).collect();
        if changed.is_empty() {
            return None;
        }
        let configured = self.reread_config();
        self.stamps = self.watched().into_iter().map(|p| (p.clone(), stamp(&p))).collect();
        let reload = match configured {
            Ok(()) => self.plan(running, changed),
            Err(error) => Reload {
                entries: running.to_vec(),
                outcomes: vec![("configuration".into(), Outcome::KeptPrevious(error))],
                changed,
                queries: self.queries(),
                guardrails: None,
                restart_only: Vec::new(),
            },
        };
        Some(reload)
    }

    fn reread_config(&mut self) -> Result<(), String> {
        let Some(path) = &self.config_path else { return Ok(()) };
        let config: DaemonConfig = crate::input_file::load(path).map_err(|e| format!("{e:#}"))?;
        config.validate_series().map_err(|e| format!("{}: {e}", path.display()))?;
        config.engine.validate().map_err(|e| format!("{}: engine.{e}", path.display()))?;
        if config.policies != self.policies {
            tracing::info!(file = %path.display(), "the configuration's policies changed");
        }
        self.policies = config.policies;
        self.engine_changes = engine_changes(&self.engine, &config.engine);
        self.engine = config.engine;
        Ok(())
    }

    /// The configured chain, reusing running entries that did not change.
    fn plan(&mut self, running: &[ChainEntry], changed: Vec<PathBuf>) -> Reload {
        let mut entries = Vec::new();
        let mut outcomes = Vec::new();
        for configured in &self.policies {
            let (name, outcome, entry) = self.reload_one(running, configured);
            entries.extend(entry);
            outcomes.push((name, outcome));
        }
        let kept = |r: &ChainEntry| entries.iter().any(|e| e.source == r.source);
        let removed = running.iter().filter(|r| !kept(r)).map(|r| (r.plugin.name().to_string(), Outcome::Removed));
        outcomes.extend(removed.collect::<Vec<_>>());
        let (guardrails, restart_only) = std::mem::take(&mut self.engine_changes);
        Reload { entries, outcomes, changed, queries: self.queries(), guardrails, restart_only }
    }

    /// The CloudWatch queries of the configured policies.
    fn queries(&self) -> Vec<SeriesQuery> {
        self.policies.iter().flat_map(|p| p.metrics.iter().cloned()).collect()
    }

    fn reload_one(&self, running: &[ChainEntry], configured: &PolicyEntry) -> (String, Outcome, Option<ChainEntry>) {
        let component = Component::read(configured);
        let source = component.as_ref().map_or_else(|_| configured.plugin.clone(), |c| c.source.clone());
        let current = running.iter().find(|e| e.source == source);
        if let (Ok(c), Some(current)) = (&component, current)
            && same(current, configured, &c.digest)
        {
            let mut kept = current.clone();
            kept.mode = configured.mode;
            return (kept.plugin.name().to_string(), Outcome::Unchanged, Some(kept));
        }
        match (component.and_then(|c| load(&self.host, configured, c)), current) {
            (Ok(entry), _) => (entry.plugin.name().to_string(), Outcome::Loaded, Some(entry)),
            (Err(error), Some(current)) => {
                (current.plugin.name().to_string(), Outcome::KeptPrevious(error), Some(current.clone()))
            }
            (Err(error), None) => (configured.plugin.clone(), Outcome::Failed(error), None),
        }
    }
}

/// What changed from `was` to `now`: the guardrails (taken live), and the settings read at
/// start only, by their field.
fn engine_changes(was: &EngineConfig, now: &EngineConfig) -> (Option<Guardrails>, Vec<String>) {
    let guardrails = (was.guardrails != now.guardrails).then(|| now.guardrails.clone());
    let restart_only = [
        ("engine.mode", was.mode != now.mode),
        ("engine.tick-interval", was.tick_interval != now.tick_interval),
        ("engine.batching", was.batching != now.batching),
        ("engine.ring-size", was.ring_size != now.ring_size),
    ];
    (guardrails, restart_only.into_iter().filter(|(_, changed)| *changed).map(|(f, _)| f.to_string()).collect())
}

/// The running entry is what `configured` asks for: the same component (`digest`), settings
/// and limits, and a pin (if any) that the component matches.
fn same(current: &ChainEntry, configured: &PolicyEntry, digest: &str) -> bool {
    let settings = match &configured.settings {
        serde_json::Value::Null => String::new(),
        value => value.to_string(),
    };
    current.plugin.info().digest == digest
        && current.plugin.settings() == settings
        && *current.plugin.limits() == configured.limits
        && configured.sha256.as_ref().is_none_or(|pin| pin.eq_ignore_ascii_case(digest))
}

/// Polls every `interval` until `stop`, and hands each reload to the runner as one change;
/// once the runner has applied and recorded it, the CloudWatch queries it names go to
/// `queries`, which the series feed follows.
pub async fn run(
    mut reloader: Reloader,
    live: Arc<Live>,
    commands: mpsc::Sender<Command>,
    metrics: Arc<Metrics>,
    queries: watch::Sender<Vec<SeriesQuery>>,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let running = live.plugins();
        let polled = tokio::task::spawn_blocking(move || {
            let reload = reloader.poll(&running);
            (reloader, reload)
        })
        .await;
        let Ok((back, reload)) = polled else { return };
        reloader = back;
        let Some(mut reload) = reload else { continue };
        let new_queries = *queries.borrow() != reload.queries;
        let chain_changed = !reload.is_noop(&live.plugins()) || new_queries || !reload.restart_only.is_empty();
        if let Some(guardrails) = reload.guardrails.take()
            && !send_guardrails(&commands, guardrails, &reload.changed).await
        {
            return;
        }
        if !chain_changed {
            tracing::debug!("policy files touched, no policy changed");
            continue;
        }
        for (plugin, outcome) in &reload.outcomes {
            metrics
                .f
                .reloads
                .get_or_create(&ReloadLabels { plugin: plugin.clone(), result: outcome.label().into() })
                .inc();
            match outcome {
                Outcome::KeptPrevious(e) | Outcome::Failed(e) => {
                    tracing::error!(%plugin, error = %e, "policy reload failed")
                }
                _ => tracing::info!(%plugin, result = outcome.label(), "policy reloaded"),
            }
        }
        let wanted = new_queries.then(|| reload.queries.clone());
        if !send(&commands, reload, new_queries).await {
            return;
        }
        // After the reload's record: a decision made from the new series comes after it.
        if let Some(wanted) = wanted {
            let names: Vec<&str> = wanted.iter().map(|q| q.name.as_str()).collect();
            tracing::info!(queries = ?names, "the policies' CloudWatch queries changed");
            queries.send_replace(wanted);
        }
    }
}

/// Sends new guardrails to the runner and waits until they are applied; false when the
/// runner has stopped.
async fn send_guardrails(commands: &mpsc::Sender<Command>, guardrails: Guardrails, files: &[PathBuf]) -> bool {
    let files: Vec<String> = files.iter().map(|p| p.display().to_string()).collect();
    let asked = Asked { caller: "config-reload".into(), reason: format!("changed: {}", files.join(", ")) };
    let (reply, answer) = oneshot::channel();
    let change = Change::Guardrails(Box::new(guardrails));
    if commands.send(Command { change, asked, reply }).await.is_err() {
        return false;
    }
    match answer.await {
        Ok(Ok(done)) => tracing::info!(%done, "guardrails reloaded"),
        Ok(Err(error)) => tracing::error!(%error, "the new guardrails were refused; the running ones stay"),
        Err(_) => return false,
    }
    true
}

/// Sends the reload to the runner and waits until it is applied (its record names the
/// queries when `new_queries`); false when the runner has stopped.
async fn send(commands: &mpsc::Sender<Command>, reload: Reload, new_queries: bool) -> bool {
    let files: Vec<String> = reload.changed.iter().map(|p| p.display().to_string()).collect();
    let asked = Asked { caller: "policy-reload".into(), reason: format!("changed: {}", files.join(", ")) };
    let mut notes: Vec<String> = reload
        .outcomes
        .iter()
        .filter_map(|(plugin, o)| match o {
            Outcome::KeptPrevious(e) => Some(format!("{plugin}: kept the running version: {e}")),
            Outcome::Failed(e) => Some(format!("{plugin}: not loaded: {e}")),
            Outcome::Removed => Some(format!(
                "{plugin}: taken out of the chain: the configuration does not name it (a plugin loaded \
                 through the control API lasts until the files next change)"
            )),
            _ => None,
        })
        .collect();
    if !reload.restart_only.is_empty() {
        notes.push(format!(
            "{} changed: read at start only, applied at the next restart",
            reload.restart_only.join(", ")
        ));
    }
    if new_queries {
        let names: Vec<&str> = reload.queries.iter().map(|q| q.name.as_str()).collect();
        notes.push(format!(
            "CloudWatch queries now: {}",
            if names.is_empty() { "none".into() } else { names.join(", ") }
        ));
    }
    let (reply, answer) = oneshot::channel();
    let change = Change::Chain { entries: reload.entries, notes };
    if commands.send(Command { change, asked, reply }).await.is_err() {
        return false;
    }
    answer.await.is_ok()
}

#[cfg(test)]
mod tests;
