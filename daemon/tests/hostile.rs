//! Every hostile behaviour inside the real binaries: `ballast simulate`, `ballast run` against
//! the stand-in and moto, and `ballast plugin run`. The process lives, the next plugin of the
//! chain runs, each failure is recorded with its kind and the guest's own message, and the
//! group still scales for the pending pods.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests and benchmarks fail loudly

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use support::*;

/// Each misbehaviour, the error kind it must be recorded with ("" when the call succeeds)
/// and words of its message.
const HOSTILE: &[(&str, &str, &str)] = &[
    ("endless-loop", "", ""),
    ("panic", "trap", "hostile plugin panics on purpose"),
    ("print", "", ""),
    ("socket", "policy-error", "the sandbox refused a UDP socket"),
    ("file-read", "policy-error", "the sandbox refused reading /etc/hostname"),
    ("memory-bomb", "memory", "memory cap of"),
    ("huge-output", "output-size", "20000 decisions, the limit is 10000"),
    ("unknown-group", "invalid-output", "unknown node group \"no-such-group\""),
    ("extreme-scale", "", ""),
    ("state-growth", "output-size", "limit is 2048 KiB"),
    ("deep-recursion", "trap", "call stack exhausted"),
];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// One copy of the hostile component per misbehaviour, named after it (a plugin is named
/// after its file), and the chain's entries for a config or command line.
fn copies(dir: &Path) -> Vec<(String, PathBuf)> {
    let source = PathBuf::from(env!("BALLAST_PLUGIN_DIR")).join("hostile_policy.wasm");
    HOSTILE
        .iter()
        .map(|(mode, ..)| {
            let path = dir.join(format!("{mode}.wasm"));
            std::fs::copy(&source, &path).expect("hostile plugin built by build.rs");
            (mode.to_string(), path)
        })
        .collect()
}

fn records(journal: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(journal).expect("a journal");
    text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
}

/// Each plugin's errors over all ticks, "" for a tick it ran fine.
fn plugin_errors(records: &[Value]) -> BTreeMap<String, Vec<String>> {
    let mut errors: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for tick in records.iter().filter(|r| r["record"] == "tick") {
        for run in tick["plugins"].as_array().into_iter().flatten() {
            let error = run["error"].as_str().unwrap_or("").to_string();
            errors.entry(run["plugin"].as_str().unwrap_or("").to_string()).or_default().push(error);
        }
    }
    errors
}

/// Every hostile plugin failed (or not) as expected at least once, and binpack ran every tick.
fn assert_contained(records: &[Value], deadline_kind: &str) {
    let errors = plugin_errors(records);
    for (mode, kind, says) in HOSTILE {
        let seen = errors.get(*mode).unwrap_or_else(|| panic!("{mode} never ran: {errors:?}"));
        let (kind, says) = if *mode == "endless-loop" { (deadline_kind, "") } else { (*kind, *says) };
        let expected = format!("{kind}: ");
        let ok = if kind.is_empty() {
            seen.iter().any(String::is_empty)
        } else {
            seen.iter().any(|e| e.starts_with(&expected) && e.contains(says))
        };
        assert!(ok, "{mode}: expected kind {kind:?} saying {says:?}, got {seen:?}");
    }
    let binpack = &errors["binpack"];
    assert!(!binpack.is_empty() && binpack.iter().all(String::is_empty), "binpack ran every tick: {binpack:?}");
}

const SCENARIO: &str = "name: hostile
duration: 3m
tick: 10s
node-groups:
  - {id: general, instance-types: [m5.large], min-size: 1, max-size: 10, desired-size: 1, provisioning-delay: 30s}
workloads:
  - {name: web, namespace: shop, requests: {cpu: \"1\", memory: 2Gi}, replicas: {constant: 6}}
";

#[test]
fn hostile_plugins_inside_ballast_simulate_are_contained_and_binpack_still_scales() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("s.yaml"), SCENARIO).unwrap();
    let journal = dir.path().join("j.jsonl");
    let mut command = Command::new(env!("CARGO_BIN_EXE_ballast"));
    command.arg("simulate").arg("--scenario").arg(dir.path().join("s.yaml"));
    for (mode, path) in copies(dir.path()) {
        command.arg("--policy").arg(path).arg("--settings").arg(format!("{mode}={{\"mode\":\"{mode}\"}}"));
    }
    let out = command
        .args(["--policy", "binpack", "--journal"])
        .arg(&journal)
        .current_dir(root())
        .env("BALLAST_CACHE_DIR", root().join("target/test-component-cache"))
        .output()
        .expect("ballast runs");
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "exit {:?}:\n{log}", out.status);
    let records = records(&journal);
    // Deterministic: only fuel ends a call, whatever the machine's load.
    assert_contained(&records, "fuel");
    assert!(log.contains("hostile plugin prints to stderr") && log.contains("plugin=\"print\""), "{log}");
    // extreme-scale's clamped u32::MAX outbids binpack (the largest target wins): either way
    // the group grows, within its max-size.
    let grew = records.iter().any(|r| {
        r["result"]["result"] == "done"
            && (r["proposed"]["scale-to"]["group"] == "general" || r["proposed"]["scale-by"]["group"] == "general")
    });
    assert!(grew, "the group was scaled for the pending pods");
    // Reading the journal through a pipe that closes early ends quietly.
    let piped = Command::new("bash")
        .args(["-c", "set -o pipefail; \"$0\" decisions --journal \"$1\" --all | head -n 2 >/dev/null"])
        .arg(env!("CARGO_BIN_EXE_ballast"))
        .arg(&journal)
        .output()
        .unwrap();
    let piped_err = String::from_utf8_lossy(&piped.stderr);
    assert!(piped.status.success() && !piped_err.contains("panicked"), "{:?}: {piped_err}", piped.status);
    let extreme: Vec<&Value> = records.iter().filter(|r| r["plugin"] == "extreme-scale").collect();
    let text = serde_json::to_string(&extreme).unwrap();
    assert!(text.contains("asked 4294967295") && text.contains("clamped-to-max-size"), "{text}");
}

#[test]
fn ballast_plugin_run_reports_a_panic_with_the_guests_message_and_exits_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    let (_, path) = copies(dir.path()).into_iter().find(|(m, _)| m == "panic").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ballast"))
        .args(["plugin", "run"])
        .arg(&path)
        .args(["--settings", "{\"mode\":\"panic\"}"])
        .current_dir(root())
        .env("BALLAST_CACHE_DIR", root().join("target/test-component-cache"))
        .output()
        .expect("ballast runs");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!out.status.success(), "{text}");
    assert!(out.status.code().is_some(), "exits, not killed by a signal: {:?}", out.status);
    assert!(text.contains("hostile plugin panics on purpose"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_plugins_inside_ballast_run_are_contained_and_the_group_still_grows() {
    let site = daemon::Site::start(0).await;
    let journal = site.journal();
    let mut policies = String::new();
    for (mode, path) in copies(site.dir.path()) {
        policies.push_str(&format!("  - {{plugin: \"{}\", settings: {{mode: {mode}}}}}\n", path.display()));
    }
    policies.push_str("  - {plugin: binpack}\n");
    let mut daemon = site.replica("hostile-replica", "  tick-interval: 1s\n", &policies, "");
    for i in 0..3 {
        site.standin.create(pending_pod(&format!("web-{i}"), None)).unwrap();
    }
    let grew = eventually(Duration::from_secs(60), async || {
        // A few ticks more, so that state-growth reaches its cap.
        site.group().await.0 > 0 && records(&journal).iter().filter(|r| r["record"] == "tick").count() >= 10
    })
    .await;
    let alive = daemon.try_wait().unwrap().is_none();
    Command::new("kill").args(["-TERM", &daemon.id().to_string()]).status().unwrap();
    let output = daemon.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(alive && grew.is_some(), "the daemon died or the group never grew:\n{log}");
    assert!(output.status.success(), "exit {:?}:\n{log}", output.status);
    // In the daemon wall-clock deadlines stop a loop (no fuel).
    assert_contained(&records(&journal), "deadline");
    assert!(log.contains("hostile plugin prints to stderr"), "{log}");
}

/// SIGTERM while a plugin computes far past the shutdown grace: the tick is not waited for
/// beyond the grace, and the process exits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_long_plugin_call_exits_within_the_shutdown_grace() {
    let site = daemon::Site::start(0).await;
    let (_, slow) = copies(site.dir.path()).into_iter().find(|(m, _)| m == "endless-loop").unwrap();
    let policies = format!(
        "  - {{plugin: \"{}\", settings: {{mode: endless-loop}}, limits: {{deadline-ms: 60000}}}}\n",
        slow.display()
    );
    let extra = "shutdown-grace: 2s\nleader-election: false\n";
    let mut daemon = site.replica("slow-replica", "  tick-interval: 1s\n", &policies, extra);
    // The first tick starts once the caches sync; give it time to be inside the plugin.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(daemon.try_wait().unwrap().is_none(), "still running");
    Command::new("kill").args(["-TERM", &daemon.id().to_string()]).status().unwrap();
    // The plugin call would run for 60 s: exiting well before that means it was not waited for.
    let exited = eventually(Duration::from_secs(20), async || daemon.try_wait().unwrap().is_some()).await;
    let _ = daemon.kill();
    let log = String::from_utf8_lossy(&daemon.wait_with_output().unwrap().stderr).into_owned();
    assert!(exited.is_some(), "still running 20 s after SIGTERM, with a 2 s grace:\n{log}");
    assert!(log.contains("did not finish within the shutdown grace"), "{log}");
}
