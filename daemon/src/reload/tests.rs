//! Reloads from files: pins, broken files, the configuration's chain, queries and engine settings.

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

fn configured(policies: Vec<PolicyEntry>) -> DaemonConfig {
    DaemonConfig { policies, ..DaemonConfig::default() }
}

/// A configuration file naming binpack alone (in a directory kept while it is held),
/// binpack running from it, and a reloader watching it.
fn binpack_configured() -> (tempfile::TempDir, PathBuf, Vec<ChainEntry>, Reloader) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("ballast.yaml");
    std::fs::write(&config, "policies: [{plugin: binpack}]\n").unwrap();
    let host = host();
    let running = vec![load_entry(&host, &PolicyEntry::named("binpack")).unwrap()];
    let reloader = Reloader::new(Some(config.clone()), &configured(vec![PolicyEntry::named("binpack")]), host);
    (dir, config, running, reloader)
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
    let mut reloader = Reloader::new(None, &configured(vec![entry(&path)]), host);
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
    let (_dir, config, running, mut reloader) = binpack_configured();

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
fn guardrails_are_carried_live_settings_read_at_start_are_noted_and_bad_ones_name_the_field() {
    let (_dir, config, running, mut reloader) = binpack_configured();
    let policies = "policies: [{plugin: binpack}]\n";

    let freeze =
        "engine: {guardrails: {disruption-budget: {windows: [{schedule: '0 9 * * *', duration: 8h, nodes: 0}]}}}\n";
    std::fs::write(&config, format!("{policies}{freeze}")).unwrap();
    let reload = reloader.poll(&running).expect("the configuration changed");
    let windows = reload.guardrails.as_ref().map(|g| g.disruption_budget.windows.len());
    assert_eq!(windows, Some(1), "the new guardrails are carried");
    assert!(reload.is_noop(&running) && reload.restart_only.is_empty());

    std::fs::write(&config, format!("{policies}{freeze}engine-unused: 1\n")).unwrap();
    let bad = reloader.poll(&running).expect("the configuration changed");
    assert!(bad.guardrails.is_none() && matches!(&bad.outcomes[0].1, Outcome::KeptPrevious(_)));
    let zero = freeze.replace("8h", "0s");
    std::fs::write(&config, format!("{policies}{zero}")).unwrap();
    let bad = reloader.poll(&running).expect("the configuration changed");
    let error = match &bad.outcomes[0].1 {
        Outcome::KeptPrevious(e) => e.clone(),
        other => panic!("{other:?}"),
    };
    assert!(error.contains("engine.guardrails.disruption-budget.windows[0].duration"), "{error}");
    assert!(bad.guardrails.is_none(), "nothing carried from a bad file");

    std::fs::write(&config, format!("{policies}engine: {{tick-interval: 5s}}\n")).unwrap();
    let reload = reloader.poll(&running).expect("the configuration changed");
    assert_eq!(reload.restart_only, ["engine.tick-interval"]);
    assert!(reload.guardrails.is_some(), "the window is gone again: back to the defaults");
}

#[test]
fn a_running_policy_the_configuration_does_not_name_is_reported_removed() {
    let (_dir, config, mut running, mut reloader) = binpack_configured();
    // binpack from the configuration, static-size as the control API would have added it.
    running.push(load_entry(&host(), &PolicyEntry::named("static-size")).unwrap());

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
    let (_dir, config, running, mut reloader) = binpack_configured();

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
