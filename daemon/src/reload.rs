//! Policies managed like configuration: components from files (a ConfigMap or a volume),
//! optionally pinned by SHA-256, loaded again when a file or the configuration changes
//! (including the symlink swap a ConfigMap update makes), the last good version kept when
//! a new one fails to load or validate. Each reload is recorded (a `control` record by
//! `policy-reload`) and counted in `ballast_policy_reloads_total{plugin,result}`.
//!
//! Files are polled (`reload-interval`): a kubelet updates a mounted ConfigMap by swapping
//! a symlink, which a poll of the resolved path sees whatever the filesystem.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::{mpsc, oneshot, watch};

use crate::daemon_config::{DaemonConfig, PolicyEntry};
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
    host: PolicyHost,
    stamps: BTreeMap<PathBuf, Option<Stamp>>,
}

impl Reloader {
    /// Starts from the configuration the daemon started with.
    pub fn new(config_path: Option<PathBuf>, policies: Vec<PolicyEntry>, host: PolicyHost) -> Self {
        let mut reloader = Reloader { config_path, policies, host, stamps: BTreeMap::new() };
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
            },
        };
        Some(reload)
    }

    fn reread_config(&mut self) -> Result<(), String> {
        let Some(path) = &self.config_path else { return Ok(()) };
        let config: DaemonConfig = crate::input_file::load(path).map_err(|e| format!("{e:#}"))?;
        config.validate_series().map_err(|e| format!("{}: {e}", path.display()))?;
        if config.policies != self.policies {
            tracing::info!(file = %path.display(), "the configuration's policies changed");
        }
        self.policies = config.policies;
        Ok(())
    }

    /// The configured chain, reusing running entries that did not change.
    fn plan(&self, running: &[ChainEntry], changed: Vec<PathBuf>) -> Reload {
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
        Reload { entries, outcomes, changed, queries: self.queries() }
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
        let Some(reload) = reload else { continue };
        let new_queries = *queries.borrow() != reload.queries;
        if reload.is_noop(&live.plugins()) && !new_queries {
            tracing::debug!("policy files touched, nothing changed");
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
mod tests {
    use super::*;
    use crate::policy::{HostConfig, PluginMode};

    fn host() -> PolicyHost {
        let cache = std::env::var_os("BALLAST_CACHE_DIR").map(PathBuf::from);
        PolicyHost::new(HostConfig { cache_dir: cache, ..HostConfig::default() }).unwrap()
    }

    fn wasm(name: &str) -> &'static [u8] {
        crate::bundled::plugin(name).unwrap().wasm
    }

    fn entry(path: &Path) -> PolicyEntry {
        PolicyEntry::named(&path.display().to_string())
    }

    fn digest(bytes: &[u8]) -> String {
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(bytes))
    }

    #[test]
    fn a_pin_that_does_not_match_refuses_the_file_naming_both_digests() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("policy.wasm");
        std::fs::write(&path, wasm("static-size")).unwrap();
        let pinned = PolicyEntry { sha256: Some("ab".repeat(32)), ..entry(&path) };
        let error = load_entry(&host(), &pinned).err().unwrap();
        assert!(error.contains(&digest(wasm("static-size"))) && error.contains(&"ab".repeat(32)), "{error}");
        let right = PolicyEntry { sha256: Some(digest(wasm("static-size")).to_uppercase()), ..entry(&path) };
        assert_eq!(load_entry(&host(), &right).unwrap().plugin.name(), "policy");
    }

    #[test]
    fn a_change_reloads_a_broken_file_keeps_the_running_version_and_no_change_is_quiet() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("policy.wasm");
        std::fs::write(&path, wasm("static-size")).unwrap();
        let host = host();
        let running = vec![load_entry(&host, &entry(&path)).unwrap()];
        let mut reloader = Reloader::new(None, vec![entry(&path)], host);
        assert!(reloader.poll(&running).is_none(), "nothing changed");

        std::fs::write(&path, wasm("binpack")).unwrap();
        let reload = reloader.poll(&running).expect("the file changed");
        assert_eq!(reload.outcomes, [("policy".to_string(), Outcome::Loaded)]);
        assert_eq!(reload.entries[0].plugin.info().digest, digest(wasm("binpack")));
        let running = reload.entries;

        std::fs::write(&path, b"not a component").unwrap();
        let reload = reloader.poll(&running).expect("the file changed");
        assert!(
            matches!(&reload.outcomes[0].1, Outcome::KeptPrevious(e) if e.contains("policy.wasm")),
            "{:?}",
            reload.outcomes
        );
        assert_eq!(reload.entries[0].plugin.info().digest, digest(wasm("binpack")), "binpack still runs");
        assert!(reloader.poll(&reload.entries).is_none(), "reported once");
    }

    #[test]
    fn the_configuration_file_changes_a_mode_without_loading_again_and_a_bad_one_keeps_the_chain() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("ballast.yaml");
        std::fs::write(&config, "policies: [{plugin: binpack}]\n").unwrap();
        let host = host();
        let running = vec![load_entry(&host, &PolicyEntry::named("binpack")).unwrap()];
        let mut reloader = Reloader::new(Some(config.clone()), vec![PolicyEntry::named("binpack")], host);

        std::fs::write(&config, "policies: [{plugin: binpack, mode: shadow}]\n").unwrap();
        let reload = reloader.poll(&running).expect("the configuration changed");
        assert_eq!(reload.outcomes, [("binpack".to_string(), Outcome::Unchanged)]);
        assert_eq!(reload.entries[0].mode, PluginMode::Shadow);
        assert!(!reload.is_noop(&running), "a mode change is a change");

        std::fs::write(&config, "policies: [{plugin: binpack, mode: loud}]\n").unwrap();
        let reload = reloader.poll(&running).expect("the configuration changed");
        assert!(
            matches!(&reload.outcomes[0], (what, Outcome::KeptPrevious(e)) if what == "configuration" && e.contains("loud"))
        );
        assert_eq!(reload.entries.len(), 1);
    }

    #[test]
    fn a_running_policy_the_configuration_does_not_name_is_reported_removed() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("ballast.yaml");
        std::fs::write(&config, "policies: [{plugin: binpack}]\n").unwrap();
        let host = host();
        // binpack from the configuration, static-size as the control API would have added it.
        let running = vec![
            load_entry(&host, &PolicyEntry::named("binpack")).unwrap(),
            load_entry(&host, &PolicyEntry::named("static-size")).unwrap(),
        ];
        let mut reloader = Reloader::new(Some(config.clone()), vec![PolicyEntry::named("binpack")], host);

        std::fs::write(&config, "policies: [{plugin: binpack, mode: shadow}]\n").unwrap();
        let reload = reloader.poll(&running).expect("the configuration changed");
        assert_eq!(
            reload.outcomes,
            [("binpack".to_string(), Outcome::Unchanged), ("static-size".to_string(), Outcome::Removed)]
        );
        assert_eq!(reload.entries.len(), 1);
        assert!(!reload.is_noop(&running));
    }

    #[test]
    fn a_change_of_queries_alone_is_carried_and_a_bad_query_keeps_the_old_ones() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("ballast.yaml");
        std::fs::write(&config, "policies: [{plugin: binpack}]\n").unwrap();
        let host = host();
        let running = vec![load_entry(&host, &PolicyEntry::named("binpack")).unwrap()];
        let mut reloader = Reloader::new(Some(config.clone()), vec![PolicyEntry::named("binpack")], host);

        let with = |metrics: &str| format!("policies: [{{plugin: binpack, metrics: [{metrics}]}}]\n");
        std::fs::write(&config, with("{name: depth, namespace: AWS/SQS, metric: ApproximateNumberOfMessagesVisible}"))
            .unwrap();
        let reload = reloader.poll(&running).expect("the configuration changed");
        assert_eq!(reload.outcomes, [("binpack".to_string(), Outcome::Unchanged)]);
        assert!(reload.is_noop(&running), "the chain is as it runs");
        let names: Vec<&str> = reload.queries.iter().map(|q| q.name.as_str()).collect();
        assert_eq!(names, ["depth"]);

        std::fs::write(&config, with("{name: depth, namespace: AWS/SQS, metric: Depth, period: 90s}")).unwrap();
        let reload = reloader.poll(&reload.entries).expect("the configuration changed");
        assert!(
            matches!(&reload.outcomes[0], (what, Outcome::KeptPrevious(e))
                if what == "configuration" && e.contains("policies[0].metrics[0].period") && e.contains("90s")),
            "{:?}",
            reload.outcomes
        );
        assert_eq!(reload.queries[0].metric, "ApproximateNumberOfMessagesVisible", "the last good queries stay");
    }
}
