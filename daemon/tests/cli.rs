//! The `ballast plugin` commands as a policy author runs them.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests and benchmarks fail loudly

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn ballast(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ballast"))
        .args(args)
        .current_dir(root())
        .env("BALLAST_CACHE_DIR", root().join("target/test-component-cache"))
        .env("COLUMNS", "400")
        .output()
        .expect("ballast runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn run_binpack_picks_the_cheaper_group_with_numbers() {
    let out = ballast(&["plugin", "run", "binpack", "--snapshot", "tests/fixtures/snapshots/two-groups.yaml"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("scale c5 to 4"), "{text}");
    for needle in [
        "12 pending pods of deployment/default/web (500m cpu / 1Gi memory each)",
        "4 new c5.large",
        "$0.0850/h",
        "$0.3400/h",
        "m5: 12 pods on 4 nodes, $0.3840/h",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
    assert!(text.contains("fuel used"), "{text}");
}

#[test]
fn run_prints_json_for_programs() {
    let out = ballast(&["plugin", "run", "binpack", "-o", "json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let value: serde_json::Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
    assert_eq!(value["decisions"][0]["action"]["scale-to"]["group"], "c5");
    assert!(value["fuel-used"].as_u64().unwrap() > 0);
}

#[test]
fn a_bad_snapshot_names_the_file_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.yaml");
    std::fs::write(&path, "node-groups:\n  - id: m5\n    max-size: twenty\n").unwrap();
    let out = ballast(&["plugin", "run", "binpack", "--snapshot", path.to_str().unwrap()]);
    assert!(!out.status.success());
    let text = stderr(&out);
    assert!(text.contains("bad.yaml: field `node-groups[0].max-size`") && text.contains("twenty"), "{text}");
    std::fs::write(&path, "fargate-pricing: {per-gb-hour: -1}\n").unwrap();
    let text = stderr(&ballast(&["plugin", "run", "binpack", "--snapshot", path.to_str().unwrap()]));
    let says = "bad.yaml: field `fargate-pricing.per-gb-hour`: must be a non-negative price, not -1";
    assert!(text.contains(says), "{text}");
}

#[test]
fn bad_settings_are_refused_with_the_plugins_message() {
    let out = ballast(&["plugin", "run", "binpack", "--settings", r#"{"utilisation-threshold": 0}"#]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("utilisation-threshold must be in (0, 1], got 0"), "{}", stderr(&out));
}

#[test]
fn test_reports_each_case_and_fails_on_a_mismatch() {
    let out = ballast(&["plugin", "test", "binpack", "plugins/binpack/cases"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains("5 passed, 0 failed"), "{}", stdout(&out));

    let dir = tempfile::tempdir().unwrap();
    let snapshot = root().join("tests/fixtures/snapshots/two-groups.yaml");
    std::fs::write(
        dir.path().join("wrong.yaml"),
        format!(
            "snapshot: {}\nexpect:\n  decisions:\n    - action: {{scale-to: {{group: m5, size: 4}}}}\n",
            snapshot.display()
        ),
    )
    .unwrap();
    let out = ballast(&["plugin", "test", "binpack", dir.path().to_str().unwrap()]);
    assert!(!out.status.success());
    let text = stdout(&out);
    assert!(text.contains("FAILED") && text.contains("scale m5 to 4") && text.contains("scale c5 to 4"), "{text}");
    assert!(text.contains("0 passed, 1 failed"), "{text}");
}

#[test]
fn inspect_shows_the_interface_and_refuses_a_newer_one() {
    let plugins = Path::new(env!("BALLAST_PLUGIN_DIR"));
    let out = ballast(&["plugin", "inspect", plugins.join("binpack.wasm").to_str().unwrap(), "-o", "json"]);
    let value: serde_json::Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
    assert_eq!(value["policy_version"], ballast_sdk::INTERFACE_VERSION);
    assert_eq!(value["digest"].as_str().unwrap().len(), 64);

    let out = ballast(&["plugin", "inspect", plugins.join("future_version_policy.wasm").to_str().unwrap()]);
    let text = stdout(&out);
    let serves = format!("serves ballast:policy@{}", ballast_sdk::INTERFACE_VERSION);
    assert!(text.contains("ballast:policy@0.2.0") && text.contains(&serves), "{text}");
}

#[test]
fn bench_measures_calls() {
    let out = ballast(&["plugin", "bench", "binpack", "--seconds", "0.2", "-o", "json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let value: serde_json::Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
    assert!(value["calls"].as_u64().unwrap() >= 10);
    assert!(value["median-us"].as_u64().unwrap() > 0);
}

#[test]
fn an_unknown_plugin_lists_the_bundled_ones() {
    let out = ballast(&["plugin", "run", "nonesuch"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("not a bundled policy (bundled: binpack, consolidation, expiry, fargate-placement, headroom, thresholds, static-size)"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn run_names_the_file_and_field_of_a_bad_setting() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("ballast.yaml");
    std::fs::write(&config, "engine: {tick-interval: 0s}\naws: {cluster-name: prod}\n").unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_ballast"))
        .args(["run", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("ballast.yaml: engine.tick-interval: must be more than 0"), "{stderr}");
}

#[test]
fn run_names_a_bad_fargate_price_or_size() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("ballast.yaml");
    let refused = |pricing: &str| {
        std::fs::write(&config, format!("aws: {{cluster-name: prod, fargate-pricing: {pricing}}}\n")).unwrap();
        let output = ballast(&["run", "--config", config.to_str().unwrap()]);
        assert!(!output.status.success(), "{pricing}");
        stderr(&output)
    };
    let price = refused("{per-storage-gb-hour: -0.1}");
    let says = "ballast.yaml: aws.fargate-pricing.per-storage-gb-hour: must be a non-negative price, not -0.1";
    assert!(price.contains(says), "{price}");
    let size =
        refused("{sizes: [{cpu-millis: 1000, memory-mib-min: 4096, memory-mib-max: 2048, memory-mib-step: 1024}]}");
    assert!(size.contains("aws.fargate-pricing.sizes[0]: must have"), "{size}");
    assert!(size.contains(r#""memory-mib-min":4096,"memory-mib-max":2048"#), "{size}");
}

#[test]
fn run_logs_one_json_object_per_line_with_the_tick_and_plugin_spans() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("ballast.yaml");
    std::fs::write(&config, "admin: {listen: \"127.0.0.1:0\"}\ncontrol: {listen: \"127.0.0.1:0\"}\n").unwrap();
    let mut daemon = Command::new(env!("CARGO_BIN_EXE_ballast"))
        .args(["--log-format", "json", "run", "--simulate", "steady-web", "--speed", "600", "--config"])
        .arg(&config)
        .arg("--token-file")
        .arg(dir.path().join("token"))
        .env("BALLAST_LOG", "ballast=debug")
        .env("BALLAST_CACHE_DIR", root().join("target/test-component-cache"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let lines = BufReader::new(daemon.stderr.take().unwrap()).lines().map_while(Result::ok);
    let mut in_plugin = None;
    for line in lines.take(2_000) {
        let value: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        let spans: Vec<&str> =
            value["spans"].as_array().into_iter().flatten().filter_map(|s| s["name"].as_str()).collect();
        if spans == ["tick", "plugin"] {
            in_plugin = Some(value);
            break;
        }
    }
    let _ = daemon.kill();
    let _ = daemon.wait();
    let line = in_plugin.expect("a log line inside a plugin call, inside a tick");
    assert!(line["spans"][0]["tick"].is_u64() && line["spans"][1]["plugin"].is_string(), "{line}");
    assert!(line["timestamp"].is_string() && line["level"].is_string(), "{line}");
}

#[test]
fn run_refuses_a_component_that_does_not_match_its_pin_naming_field_and_both_digests() {
    let dir = tempfile::tempdir().unwrap();
    let component = PathBuf::from(env!("BALLAST_PLUGIN_DIR")).join("static_size.wasm");
    let pin = "0".repeat(64);
    let config = dir.path().join("ballast.yaml");
    std::fs::write(
        &config,
        format!(
            "policies: [{{plugin: \"{}\", sha256: \"{pin}\"}}]\nadmin: {{listen: \"127.0.0.1:0\"}}\n\
             control: {{listen: \"127.0.0.1:0\"}}\n",
            component.display()
        ),
    )
    .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_ballast"))
        .args(["run", "--simulate", "steady-web", "--config"])
        .arg(&config)
        .env("BALLAST_CACHE_DIR", root().join("target/test-component-cache"))
        .output()
        .unwrap();
    assert!(!output.status.success(), "a mismatching component must not run");
    let stderr = stderr(&output);
    let actual = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(std::fs::read(&component).unwrap()))
    };
    assert!(stderr.contains("policies[0].sha256:") && stderr.contains(&pin) && stderr.contains(&actual), "{stderr}");
}

/// `ballast decisions --summary` tells a journal's reader what dominates it: each proposal
/// with its records, their share of all decision records, the times it was made (a folded
/// run counting every tick it covered) and how many different reasons they give (one
/// action taken on several occasions, or one standing refusal).
#[test]
fn decisions_summary_counts_each_proposal_with_its_folded_runs_most_frequent_first() {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("decisions.jsonl");
    let decision = |tick: u64, proposed: &str, result: &str, repeated: Option<u64>| {
        let reason = if repeated.is_some() { "pending pods".to_string() } else { format!("{tick} pending pods") };
        let mut record = serde_json::json!({
            "record": "decision", "tick": tick, "at-millis": tick * 10_000, "plugin": "binpack",
            "proposed": serde_json::from_str::<serde_json::Value>(proposed).unwrap(), "reason": reason,
            "guard": {"outcome": "accepted"}, "result": {"result": result},
        });
        if let Some(count) = repeated {
            record["repeated"] =
                serde_json::json!({"count": count, "first-tick": 4, "last-tick": 3 + count, "first-id": 2});
            record["guard"] =
                serde_json::json!({"outcome": "refused", "why": [{"rule": "at-max-size", "message": "at max"}]});
        }
        record.to_string()
    };
    let to_10 = r#"{"scale-to": {"group": "general", "size": 10}}"#;
    let to_25 = r#"{"scale-to": {"group": "general", "size": 26}}"#;
    let lines = [
        decision(1, to_10, "done", None),
        decision(4, to_25, "not-applied", None),
        decision(9, to_25, "not-applied", Some(6)),
        decision(20, to_10, "done", None),
        decision(30, to_10, "done", None),
        r#"{"record":"tick","tick":31,"at-millis":310000,"mode":"enforce","trigger":"periodic","saw":{"nodes":1,"ready-nodes":1,"pending-pods":0,"workloads":1,"nodes-being-removed":0,"groups":[]},"plugins":[]}"#.to_string(),
    ];
    std::fs::write(&journal, lines.join("\n") + "\n").unwrap();

    let path = journal.to_str().unwrap();
    let out = ballast(&["decisions", "--journal", path, "--summary", "-o", "json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let rows: Vec<serde_json::Value> =
        stdout(&out).lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect();
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(rows[0]["proposed"], "scale general to 10");
    assert_eq!((rows[0]["records"].as_u64(), rows[0]["times"].as_u64()), (Some(3), Some(3)));
    assert_eq!(rows[0]["share"].as_f64(), Some(0.6), "3 of 5 decision records; the tick record is not one");
    assert_eq!(rows[0]["results"]["done"], 3);
    assert_eq!(rows[0]["reasons"], 3, "made for three different sets of pending pods");
    assert_eq!(rows[1]["proposed"], "scale general to 26");
    assert_eq!((rows[1]["records"].as_u64(), rows[1]["times"].as_u64()), (Some(2), Some(6)), "{}", rows[1]);
    assert_eq!(rows[1]["results"]["not-applied"], 6);
    assert_eq!(rows[1]["reasons"], 2, "{}", rows[1]);

    let table = stdout(&ballast(&["decisions", "--journal", path, "--summary"]));
    let first = table.lines().position(|l| l.contains("scale general to 10")).expect(&table);
    let second = table.lines().position(|l| l.contains("scale general to 26")).expect(&table);
    assert!(first < second && table.contains("60.0%") && table.contains("not-applied 6"), "{table}");
}
