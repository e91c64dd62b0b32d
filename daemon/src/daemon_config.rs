//! The daemon's configuration file (`ballast run --config FILE`): the engine and its
//! guardrails, the policy chain, and both adapters. Every section has documented defaults;
//! an unknown or wrong field is an error naming the file, the field and the value.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::aws::AwsSettings;
use crate::engine::EngineConfig;
use crate::kubernetes::KubeSettings;

/// One policy of the chain: a bundled name or a component file, with its settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct PolicyEntry {
    pub plugin: String,
    #[serde(default)]
    pub settings: serde_json::Value,
    /// Deadline, memory, output and log bounds of each call; defaults as `PluginLimits`.
    #[serde(default)]
    pub limits: crate::policy::PluginLimits,
    /// The component's SHA-256 (hex): a file with another digest is refused at start, and
    /// on a reload the running version is kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// `enforce`, or `shadow`: evaluated, guarded and recorded, never acted on.
    #[serde(default)]
    pub mode: crate::policy::PluginMode,
    /// CloudWatch series the policy reads (`snapshot.metrics`), each read on its own
    /// schedule. Changes take effect at the next restart.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<crate::engine::series::SeriesQuery>,
}

impl PolicyEntry {
    /// A bundled policy or a file, enforced, with its defaults.
    pub fn named(plugin: &str) -> Self {
        PolicyEntry {
            plugin: plugin.into(),
            settings: serde_json::Value::Null,
            limits: Default::default(),
            sha256: None,
            mode: Default::default(),
            metrics: Vec::new(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default, rename_all = "kebab-case")]
pub struct DaemonConfig {
    pub engine: EngineConfig,
    /// In order; each sees the proposals of those before it.
    pub policies: Vec<PolicyEntry>,
    /// The cluster has a Fargate profile selecting `kubernetes.placement-label`.
    pub fargate: bool,
    pub kubernetes: KubeSettings,
    pub aws: AwsSettings,
    /// Decision records on disk (JSON lines); the last `engine.ring-size` are read back at
    /// start, so a restart keeps its history.
    pub journal: Option<PathBuf>,
    /// Where the policies' own state (idle timers, learnt bursts, replica histories) is
    /// saved after every evaluation and read back at start, so a restart does not forget
    /// it. Beside the journal; without it every policy starts afresh after a restart.
    pub policy_state: Option<PathBuf>,
    /// A policy's state older than this is not handed back (from the file, or kept in
    /// memory by a replica that regains leadership): the policy starts afresh instead of
    /// acting on timers that missed what happened meanwhile. More than
    /// `engine.tick-interval`.
    #[serde(with = "crate::duration")]
    pub policy_state_max_age: std::time::Duration,
    /// Campaign for the Lease before acting (on unless a single replica is guaranteed).
    pub leader_election: bool,
    /// On SIGTERM: finish the tick in progress, release the Lease, exit; past this the
    /// process exits anyway (drains in progress stay marked on their nodes for the next
    /// leader). Keep it under the pod's `terminationGracePeriodSeconds`.
    #[serde(with = "crate::duration")]
    pub shutdown_grace: std::time::Duration,
    /// The gRPC control API (`ballast ctl`, other tools).
    pub control: crate::control::ControlSettings,
    /// `/metrics`, `/healthz`, `/readyz`.
    pub admin: crate::metrics::admin::AdminSettings,
    /// How often the configuration file and the policies' component files are looked at;
    /// a change reloads the policies and the engine's guardrails (other settings need a
    /// restart). `0s` turns it off.
    #[serde(with = "crate::duration")]
    pub reload_interval: std::time::Duration,
}

impl Default for DaemonConfig {
    fn default() -> Self {
        DaemonConfig {
            engine: EngineConfig::default(),
            policies: crate::bundled::DEFAULT_CHAIN
                .iter()
                .map(|name| PolicyEntry {
                    settings: crate::bundled::default_settings(name),
                    ..PolicyEntry::named(name)
                })
                .collect(),
            fargate: false,
            kubernetes: KubeSettings::default(),
            aws: AwsSettings::default(),
            journal: None,
            policy_state: None,
            policy_state_max_age: std::time::Duration::from_secs(300),
            leader_election: true,
            shutdown_grace: std::time::Duration::from_secs(20),
            control: crate::control::ControlSettings::default(),
            admin: crate::metrics::admin::AdminSettings::default(),
            reload_interval: std::time::Duration::from_secs(10),
        }
    }
}

impl DaemonConfig {
    /// The CloudWatch queries of every policy, in configuration order.
    pub fn series_queries(&self) -> Vec<crate::engine::series::SeriesQuery> {
        self.policies.iter().flat_map(|p| p.metrics.iter().cloned()).collect()
    }

    /// Checks that a saved policy state can outlive a tick.
    ///
    /// # Errors
    /// `policy-state-max-age` not more than `engine.tick-interval`, naming both values.
    pub fn validate_policy_state(&self) -> Result<(), String> {
        let (max_age, tick) = (self.policy_state_max_age, self.engine.tick_interval);
        if max_age <= tick {
            return Err(format!(
                "policy-state-max-age: {} is not more than engine.tick-interval ({}): every policy would start afresh at every tick",
                crate::duration::display(max_age),
                crate::duration::display(tick)
            ));
        }
        Ok(())
    }

    /// Checks every policy's queries: each valid, names unique across policies.
    ///
    /// # Errors
    /// The first problem, as `policies[i].metrics[j].field: ...`.
    pub fn validate_series(&self) -> Result<(), String> {
        crate::engine::series::validate_all(self.policies.iter().map(|p| &p.metrics[..]).enumerate())
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn the_example_file_parses_and_unknown_fields_are_named() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples/ballast.yaml");
        let config: DaemonConfig = crate::input_file::load(&path).expect("the shipped example parses");
        assert_eq!(config.aws.cluster_name, "my-cluster");
        assert_eq!(config.policies.len(), 2);
        assert!(config.leader_election);

        let error =
            crate::input_file::parse::<DaemonConfig>(Path::new("b.yaml"), "aws: {cluster-nam: x}\n").unwrap_err();
        assert!(error.to_string().contains("cluster-nam"), "{error}");
    }

    #[test]
    fn a_policy_state_max_age_within_a_tick_is_refused_naming_both() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples/ballast.yaml");
        let config: DaemonConfig = crate::input_file::load(&path).expect("the shipped example parses");
        assert_eq!(config.policy_state.as_deref(), Some(Path::new("/var/lib/ballast/policy-state.json")));
        config.validate_policy_state().expect("the example's 5m outlives its tick");
        let text = "policy-state-max-age: 10s\nengine: {tick-interval: 10s}\n";
        let config = crate::input_file::parse::<DaemonConfig>(Path::new("b.yaml"), text).unwrap();
        let error = config.validate_policy_state().unwrap_err();
        assert!(error.contains("policy-state-max-age: 10s") && error.contains("engine.tick-interval (10s)"), "{error}");
    }

    /// Every setting `deploy/from-cluster-autoscaler.md` names for a Cluster Autoscaler flag
    /// is a key of the configuration, and the default it gives there is the default.
    #[test]
    fn the_cluster_autoscaler_flag_table_names_real_settings_and_their_defaults() {
        let text = include_str!("../../deploy/from-cluster-autoscaler.md");
        let defaults = serde_json::to_value(DaemonConfig::default()).unwrap();
        let mut checked = 0;
        for row in text.lines().filter(|l| l.starts_with("| `--")) {
            let ballast = row.split(" | ").nth(1).unwrap_or_default();
            for (i, part) in ballast.split('`').enumerate().filter(|(i, _)| i % 2 == 1) {
                let top = ["engine.", "kubernetes.", "aws."].iter().any(|p| part.starts_with(p));
                if !top && part != "leader-election" {
                    continue;
                }
                let pointer = format!("/{}", part.replace('.', "/"));
                let value = defaults.pointer(&pointer).unwrap_or_else(|| panic!("{part}: no such setting ({row})"));
                let after = ballast.split('`').nth(i + 1).unwrap_or_default();
                let given = after.strip_prefix(" (").and_then(|a| a.split([' ', ')', ';', ',']).next());
                let shown = match value {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                if let Some(given) = given.filter(|_| !value.is_object() && !value.is_array()) {
                    assert_eq!(given, shown, "{part}'s default ({row})");
                }
                checked += 1;
            }
        }
        assert!(checked >= 20, "only {checked} settings named");
    }

    #[test]
    fn the_handover_is_on_unless_turned_off_with_null() {
        let parse = |text| crate::input_file::parse::<DaemonConfig>(Path::new("b.yaml"), text).unwrap();
        assert_eq!(parse("{}\n").kubernetes.handover.as_deref(), Some("ballast-handover"));
        assert_eq!(parse("kubernetes: {handover: mine}\n").kubernetes.handover.as_deref(), Some("mine"));
        assert_eq!(parse("kubernetes: {handover: null}\n").kubernetes.handover, None);
    }
}
