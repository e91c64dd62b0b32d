//! The control API end to end: `ballast run --simulate` as a process, called by a tonic
//! client generated from `proto/ballast/v1`, by Python's grpcio (an independent
//! implementation), and by `ballast ctl`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/tls.rs"]
mod tls;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use ballast_proto::v1 as pb;
use tonic::Code;
use tonic::transport::Channel;

/// `ballast run --simulate` with tokens `ops` (write) and `viewer` (read), listening on a
/// free loopback port.
struct Daemon {
    child: Child,
    url: String,
    dir: tempfile::TempDir,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const WRITE_TOKEN: &str = "ops-secret-token";
const READ_TOKEN: &str = "viewer-secret-token";

impl Daemon {
    /// Starts on `scenario` at `speed`; `extra` is appended to the configuration.
    fn start(scenario: &str, speed: u32, extra: &str) -> Daemon {
        Self::start_in(tempfile::tempdir().unwrap(), scenario, speed, "", extra)
    }

    /// As [`Daemon::start`] in `dir`, with `control` lines added to the `control:` section.
    fn start_in(dir: tempfile::TempDir, scenario: &str, speed: u32, control: &str, extra: &str) -> Daemon {
        std::fs::write(dir.path().join("write.token"), WRITE_TOKEN).unwrap();
        std::fs::write(dir.path().join("read.token"), format!("{READ_TOKEN}\n")).unwrap();
        let config = format!(
            "admin: {{listen: \"127.0.0.1:0\"}}\ncontrol:\n  listen: 127.0.0.1:0\n  max-message-bytes: 1048576\n  tokens:\n\
             \x20 - {{name: ops, file: {0}/write.token, access: write}}\n\
             \x20 - {{name: viewer, file: {0}/read.token, access: read}}\n{control}{extra}",
            dir.path().display()
        );
        std::fs::write(dir.path().join("ballast.yaml"), config).unwrap();
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut child = Command::new(env!("CARGO_BIN_EXE_ballast"))
            .args(["run", "--simulate", scenario, "--speed", &speed.to_string(), "--config"])
            .arg(dir.path().join("ballast.yaml"))
            .env("BALLAST_CACHE_DIR", root.join("target/test-component-cache"))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("ballast runs");
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let line = stdout.lines().map(Result::unwrap).find(|l| l.contains("control API on")).expect("the address");
        let url = line.rsplit(' ').next().unwrap().to_string();
        Daemon { child, url, dir }
    }

    async fn channel(&self) -> Channel {
        Channel::from_shared(self.url.clone()).unwrap().connect().await.expect("connects")
    }

    fn token_file(&self, which: &str) -> PathBuf {
        self.dir.path().join(format!("{which}.token"))
    }

    /// Waits until a tick has ended: NodeGroups answers and the status has a last tick (the
    /// groups answer from the tick's observation, before its plugins have run).
    async fn observed(&self) {
        let channel = self.channel().await;
        let mut groups = pb::node_groups_client::NodeGroupsClient::new(channel.clone());
        let mut status = pb::status_client::StatusClient::new(channel);
        for _ in 0..400 {
            let listed = groups.list(pb::ListNodeGroupsRequest::default()).await.is_ok();
            let ticked = status.get(pb::GetStatusRequest {}).await.is_ok_and(|s| s.into_inner().last_tick.is_some());
            if listed && ticked {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no tick observed");
    }

    /// `ballast ctl ARGS` against this daemon: (success, stdout, stderr).
    fn ctl(&self, token: Option<&str>, args: &[&str]) -> (bool, String, String) {
        let mut command = Command::new(env!("CARGO_BIN_EXE_ballast"));
        command.arg("ctl").args(["--server", &self.url]).args(args);
        command.env_remove("BALLAST_TOKEN_FILE").env("TMPDIR", self.dir.path());
        if let Some(which) = token {
            command.arg("--token-file").arg(self.token_file(which));
        }
        let out = command.output().unwrap();
        (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
    }
}

fn bearer<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tonic_client_finds_the_services_by_reflection_and_reads_status_groups_decisions_and_explanations() {
    let daemon = Daemon::start("mixed-fargate", 600, "");
    daemon.observed().await;
    let channel = daemon.channel().await;

    use tonic_reflection::pb::v1::{ServerReflectionRequest, server_reflection_client::ServerReflectionClient};
    use tonic_reflection::pb::v1::{
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
    let mut reflection = ServerReflectionClient::new(channel.clone());
    let ask = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut answers = reflection.server_reflection_info(futures::stream::iter([ask])).await.unwrap().into_inner();
    let Some(MessageResponse::ListServicesResponse(list)) = answers.message().await.unwrap().unwrap().message_response
    else {
        panic!("not a service list")
    };
    let services: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for name in ["Status", "NodeGroups", "Decisions", "Plugins", "Mode", "Simulate", "Explain"] {
        assert!(services.contains(&format!("ballast.v1.{name}")), "{name} missing from {services:?}");
    }
    assert!(services.contains(&"grpc.health.v1.Health".to_string()), "{services:?}");

    let status =
        pb::status_client::StatusClient::new(channel.clone()).get(pb::GetStatusRequest {}).await.unwrap().into_inner();
    assert_eq!(status.mode(), pb::EngineMode::Enforce);
    assert!(status.source.starts_with("simulator: mixed-fargate"), "{}", status.source);
    let names: Vec<&str> = status.plugins.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ballast::bundled::DEFAULT_CHAIN);
    assert!(status.plugins[0].calls > 0 && status.plugins[0].digest.len() == 64, "{:?}", status.plugins[0]);
    assert!(status.adapters.unwrap().watch_caches_synced);

    let groups = pb::node_groups_client::NodeGroupsClient::new(channel.clone())
        .list(pb::ListNodeGroupsRequest { group: "general".into(), nodes: true })
        .await
        .unwrap()
        .into_inner();
    let general = &groups.groups[0];
    assert_eq!((general.id.as_str(), general.min_size, general.max_size), ("general", 1, 25));
    assert!(!general.nodes.is_empty() && general.cost_per_hour > 0.0, "{general:?}");
    // Once the group has grown and its nodes joined, a tool reads how long they took: never
    // less than the group's boot (60 s less a fifth), and in seconds, not milliseconds (the
    // daemon runs 600 times faster than real time, so a busy machine's late ticks add to it).
    let mut timed = Vec::new();
    for _ in 0..300 {
        let request = pb::ListNodeGroupsRequest { group: "general".into(), nodes: false };
        let listed = pb::node_groups_client::NodeGroupsClient::new(channel.clone()).list(request).await.unwrap();
        timed = listed.into_inner().groups[0].recent_provisioning_seconds.clone();
        if !timed.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!timed.is_empty() && timed.iter().all(|s| (48..=600).contains(s)), "{timed:?}");
    let missing = pb::node_groups_client::NodeGroupsClient::new(channel.clone())
        .list(pb::ListNodeGroupsRequest { group: "gpu".into(), nodes: false })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);

    let mut decisions = pb::decisions_client::DecisionsClient::new(channel.clone());
    let filter = pb::DecisionFilter { plugin: "binpack".into(), ..Default::default() };
    // A tick's decisions are recorded after its actions, so the first tick observed may not
    // have its record yet.
    let mut page = pb::ListDecisionsResponse::default();
    for _ in 0..200 {
        let request =
            pb::ListDecisionsRequest { filter: Some(filter.clone()), page_size: 1, page_token: String::new() };
        page = decisions.list(request).await.unwrap().into_inner();
        if !page.records.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let first = page.records.first().expect("binpack's first decision within 10 s");
    let Some(pb::record::Kind::Decision(d)) = &first.kind else { panic!("{first:?}") };
    assert_eq!(d.plugin, "binpack");
    let got = decisions.get(pb::GetDecisionRequest { id: first.id }).await.unwrap().into_inner();
    assert!(matches!(got.tick.unwrap().kind, Some(pb::record::Kind::TickRecord(_))), "the tick it saw");
    let bad = pb::DecisionFilter { outcome: "maybe".into(), ..Default::default() };
    let error = decisions
        .list(pb::ListDecisionsRequest { filter: Some(bad), page_size: 0, page_token: String::new() })
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::InvalidArgument);
    assert!(error.message().contains("filter.outcome: 'maybe'"), "{}", error.message());

    let node = &general.nodes[0].name;
    let explained = pb::explain_client::ExplainClient::new(channel.clone())
        .node(pb::ExplainRequest { name: node.clone() })
        .await
        .unwrap()
        .into_inner();
    assert!(explained.summary.contains(node.as_str()), "{explained:?}");
    let workload = pb::explain_client::ExplainClient::new(channel)
        .workload(pb::ExplainRequest { name: "default/nightly".into() })
        .await
        .unwrap_err();
    assert_eq!(workload.code(), Code::NotFound);
}

/// Everything a refused change must leave as it was.
async fn unchanged(channel: &Channel) -> (i32, Vec<String>, usize) {
    let mode =
        pb::mode_client::ModeClient::new(channel.clone()).get(pb::GetModeRequest {}).await.unwrap().into_inner().mode;
    let plugins = pb::plugins_client::PluginsClient::new(channel.clone())
        .list(pb::ListPluginsRequest {})
        .await
        .unwrap()
        .into_inner()
        .plugins
        .into_iter()
        .map(|p| p.name)
        .collect();
    let filter = pb::DecisionFilter { plugin: "ballast".into(), ..Default::default() };
    let controls = pb::decisions_client::DecisionsClient::new(channel.clone())
        .list(pb::ListDecisionsRequest { filter: Some(filter), page_size: 1000, page_token: String::new() })
        .await
        .unwrap()
        .into_inner()
        .records
        .iter()
        .filter(|r| matches!(r.kind, Some(pb::record::Kind::Control(_))))
        .count();
    (mode, plugins, controls)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_need_a_write_credential_and_a_refused_call_changes_nothing() {
    let daemon = Daemon::start("steady-web", 60, "");
    daemon.observed().await;
    let channel = daemon.channel().await;
    let before = unchanged(&channel).await;
    let mut mode = pb::mode_client::ModeClient::new(channel.clone());
    let paused = || pb::SetModeRequest { mode: pb::EngineMode::Paused as i32, reason: "incident".into() };

    let anonymous = mode.set(paused()).await.unwrap_err();
    assert_eq!(anonymous.code(), Code::Unauthenticated, "{anonymous:?}");
    let read_only = mode.set(bearer(paused(), READ_TOKEN)).await.unwrap_err();
    assert_eq!(read_only.code(), Code::PermissionDenied, "{read_only:?}");
    let wrong = mode.set(bearer(paused(), "guess")).await.unwrap_err();
    assert_eq!(wrong.code(), Code::Unauthenticated);
    let no_reason =
        mode.set(bearer(pb::SetModeRequest { reason: " ".into(), ..paused() }, WRITE_TOKEN)).await.unwrap_err();
    assert_eq!(no_reason.code(), Code::InvalidArgument);

    let mut plugins = pb::plugins_client::PluginsClient::new(channel.clone());
    let upload = |size: usize| pb::LoadPluginRequest {
        name: "big".into(),
        component: Some(pb::load_plugin_request::Component::Wasm(vec![0; size])),
        reason: "try".into(),
        ..Default::default()
    };
    let oversized = plugins.load(bearer(upload(1_500_000), WRITE_TOKEN)).await.unwrap_err();
    assert_eq!(oversized.code(), Code::ResourceExhausted, "{oversized:?}");
    let not_wasm = plugins.load(bearer(upload(1_000), WRITE_TOKEN)).await.unwrap_err();
    assert_eq!(not_wasm.code(), Code::InvalidArgument, "{not_wasm:?}");
    let pinned = pb::LoadPluginRequest {
        name: "pinned".into(),
        component: Some(pb::load_plugin_request::Component::Path("bundled:thresholds".into())),
        expected_sha256: "0".repeat(64),
        reason: "try".into(),
        ..Default::default()
    };
    let mismatch = plugins.load(bearer(pinned, WRITE_TOKEN)).await.unwrap_err();
    assert_eq!(mismatch.code(), Code::FailedPrecondition, "{mismatch:?}");
    assert_eq!(unchanged(&channel).await, before, "a refused call changed something");

    mode.set(bearer(paused(), WRITE_TOKEN)).await.unwrap();
    let (now, _, controls) = unchanged(&channel).await;
    assert_eq!((now, controls), (pb::EngineMode::Paused as i32, before.2 + 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_delivers_each_record_once_across_a_reconnect_and_paused_stops_actions_at_the_next_tick() {
    let daemon = Daemon::start("spiky-batch", 300, "");
    daemon.observed().await;
    let channel = daemon.channel().await;
    let mut decisions = pb::decisions_client::DecisionsClient::new(channel.clone());
    let all = || Some(pb::DecisionFilter { ticks: true, ..Default::default() });

    // First connection: read some records, then drop it mid-stream.
    let mut stream = decisions
        .watch(pb::WatchDecisionsRequest { filter: all(), after_id: 0, from_now: false })
        .await
        .unwrap()
        .into_inner();
    let mut seen = Vec::new();
    while seen.len() < 40 {
        seen.push(stream.message().await.unwrap().unwrap().id);
    }
    drop(stream);
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Resume from the last id received; records made meanwhile arrive, none twice.
    let mut stream = decisions
        .watch(pb::WatchDecisionsRequest { filter: all(), after_id: *seen.last().unwrap(), from_now: false })
        .await
        .unwrap()
        .into_inner();
    while seen.len() < 120 {
        seen.push(stream.message().await.unwrap().unwrap().id);
    }
    let expected: Vec<u64> = (seen[0]..seen[0] + seen.len() as u64).collect();
    assert_eq!(seen, expected, "every record once, in order");

    // Pause; a Watch from now sees the control record, then only paused ticks.
    let mut after = decisions
        .watch(pb::WatchDecisionsRequest { filter: all(), after_id: 0, from_now: true })
        .await
        .unwrap()
        .into_inner();
    let request = pb::SetModeRequest { mode: pb::EngineMode::Paused as i32, reason: "freeze for the test".into() };
    pb::mode_client::ModeClient::new(channel).set(bearer(request, WRITE_TOKEN)).await.unwrap();
    let mut control_seen = false;
    let mut paused_ticks = 0;
    while paused_ticks < 5 {
        let record = after.message().await.unwrap().unwrap();
        match record.kind.unwrap() {
            pb::record::Kind::Control(c) => {
                assert_eq!((c.caller.as_str(), c.change.as_str()), ("ops", "mode enforce -> paused"));
                control_seen = true;
            }
            pb::record::Kind::TickRecord(t) if control_seen => {
                assert_eq!(t.mode(), pb::EngineMode::Paused);
                assert!(t.plugins.is_empty(), "paused ticks evaluate nothing");
                paused_ticks += 1;
            }
            pb::record::Kind::Decision(d) => assert!(!control_seen, "a decision after the pause: {d:?}"),
            _ => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_loaded_in_shadow_mode_is_evaluated_and_recorded_but_acts_on_nothing() {
    let daemon = Daemon::start("steady-web", 300, "policies: [{plugin: binpack}]\n");
    daemon.observed().await;
    let channel = daemon.channel().await;
    // static-size would hold `general` at 20 nodes; in shadow it must not.
    let request = pb::LoadPluginRequest {
        name: "hold-twenty".into(),
        component: Some(pb::load_plugin_request::Component::Path("bundled:static-size".into())),
        settings_json: r#"{"sizes": {"general": 20}}"#.into(),
        mode: pb::PluginMode::Shadow as i32,
        reason: "see what it would do".into(),
        ..Default::default()
    };
    // Watch from before the load: its first decision can come on the very next tick, and
    // the same decision on the ticks after is folded, so a watch opened after it may wait
    // for a record that is not made until the run ends.
    let mut stream = pb::decisions_client::DecisionsClient::new(channel.clone())
        .watch(pb::WatchDecisionsRequest {
            filter: Some(pb::DecisionFilter { plugin: "hold-twenty".into(), ..Default::default() }),
            after_id: 0,
            from_now: true,
        })
        .await
        .unwrap()
        .into_inner();
    let loaded = pb::plugins_client::PluginsClient::new(channel.clone())
        .load(bearer(request, WRITE_TOKEN))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(loaded.mode(), pb::PluginMode::Shadow);
    let first = tokio::time::timeout(std::time::Duration::from_secs(60), stream.message());
    let record = first.await.expect("a shadow decision within a minute").unwrap().unwrap();
    let Some(pb::record::Kind::Decision(d)) = record.kind else { panic!() };
    assert_eq!(d.result, "shadow", "{d:?}");
    assert!(d.proposed.unwrap().text.contains("general"), "recorded as proposed");
    // The same shadow decision on the ticks after is folded into one closing record when
    // its run ends; let a few ticks pass, the group must not have moved.
    let mut status = pb::status_client::StatusClient::new(channel.clone());
    loop {
        let now = status.get(pb::GetStatusRequest {}).await.unwrap().into_inner();
        if now.last_tick.is_some_and(|t| t.tick >= record.tick + 3) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let groups = pb::node_groups_client::NodeGroupsClient::new(channel)
        .list(pb::ListNodeGroupsRequest { group: "general".into(), nodes: false })
        .await
        .unwrap()
        .into_inner();
    assert!(groups.groups[0].desired_size < 20, "the shadow plugin acted: {:?}", groups.groups[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ballast_ctl_runs_every_subcommand_in_every_format_and_prints_the_servers_status_on_failure() {
    let daemon = Daemon::start("mixed-fargate", 600, "");
    daemon.observed().await;
    let node = {
        let groups = pb::node_groups_client::NodeGroupsClient::new(daemon.channel().await)
            .list(pb::ListNodeGroupsRequest { group: "general".into(), nodes: true })
            .await
            .unwrap()
            .into_inner();
        groups.groups[0].nodes[0].name.clone()
    };
    let reads: Vec<Vec<&str>> = vec![
        vec!["status"],
        vec!["groups", "--nodes"],
        vec!["decisions", "--plugin", "binpack", "--since", "1h"],
        vec!["decision", "2"],
        vec!["plugins"],
        vec!["mode"],
        vec!["explain", "node", &node],
        vec!["explain", "pod", "default/nobody"],
        vec!["simulate", "steady-web", "--policy", "binpack"],
        vec!["plugins", "validate", "binpack", "--settings", "{}"],
    ];
    for args in &reads {
        for format in ["table", "json", "yaml"] {
            let mut all = args.clone();
            all.extend(["-o", format]);
            let (ok, out, err) = daemon.ctl(None, &all);
            assert!(ok, "ctl {all:?} failed: {err}");
            match format {
                "json" => {
                    serde_json::from_str::<serde_json::Value>(&out).unwrap_or_else(|e| panic!("{all:?}: {e}\n{out}"));
                }
                "yaml" => {
                    serde_yaml::from_str::<serde_yaml::Value>(&out).unwrap_or_else(|e| panic!("{all:?}: {e}\n{out}"));
                }
                _ => assert!(!out.trim().is_empty(), "{all:?} printed nothing"),
            }
        }
    }
    let binpack = Path::new(env!("BALLAST_PLUGIN_DIR")).join("binpack.wasm");
    let upload = format!("mine={}", binpack.display());
    let (ok, out, err) = daemon.ctl(None, &["simulate", "steady-web", "--policy", &upload, "-o", "json"]);
    assert!(ok && out.contains("summary_json"), "an uploaded component simulates: {err}");

    let (ok, out, _) = daemon.ctl(None, &["groups", "-o", "json"]);
    assert!(ok && out.contains("\"general\""), "{out}");
    // Once the group has delivered nodes, the table says how long they took to boot.
    let mut table = String::new();
    for _ in 0..100 {
        table = daemon.ctl(None, &["groups", "general"]).1;
        if table.contains(" s (last ") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(table.contains("boots in") && table.contains(" s (last "), "{table}");

    let (ok, _, err) = daemon.ctl(None, &["mode", "set", "dry-run", "--reason", "x"]);
    assert!(!ok && err.contains("UNAUTHENTICATED"), "{err}");
    let (ok, _, err) = daemon.ctl(Some("read"), &["mode", "set", "dry-run", "--reason", "x"]);
    assert!(!ok && err.contains("PERMISSION_DENIED"), "{err}");
    let (ok, _, err) = daemon.ctl(Some("write"), &["replace", "node", "any", "--cancel", "--reason", "x"]);
    assert!(!ok && err.contains("--cancel and --at-once are for a group"), "never a node replaced instead: {err}");
    for args in [["replace", "node", "any"], ["replace", "group", "general"]] {
        let (ok, _, err) = daemon.ctl(Some("read"), &[&args[..], &["--reason", "x"]].concat());
        assert!(!ok && err.contains("PERMISSION_DENIED"), "{args:?} needs write access: {err}");
    }
    let writes: Vec<Vec<&str>> = vec![
        vec!["mode", "set", "dry-run", "--reason", "try ctl"],
        vec!["plugins", "load", "extra", "--path", "bundled:thresholds", "--mode", "shadow", "--reason", "r"],
        vec!["plugins", "mode", "extra", "enforce", "--reason", "r"],
        vec!["plugins", "reload", "extra", "--reason", "r"],
        vec!["plugins", "unload", "extra", "--reason", "r"],
    ];
    for args in &writes {
        let (ok, _, err) = daemon.ctl(Some("write"), args);
        assert!(ok, "ctl {args:?} failed: {err}");
    }
    let (ok, out, _) = daemon.ctl(None, &["mode", "-o", "json"]);
    assert!(ok && out.contains("ENGINE_MODE_DRY_RUN"), "{out}");
    let (ok, out, _) = daemon.ctl(None, &["decisions", "--plugin", "ballast", "-o", "json"]);
    assert!(ok && out.contains("unload plugin extra") && out.contains("\"caller\": \"ops\""), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ballast_ctl_decisions_follow_prints_new_records_as_they_are_made() {
    let daemon = Daemon::start("spiky-batch", 300, "");
    daemon.observed().await;
    // A token of its own: not whatever a local `run --simulate` left in the default file.
    let mut follow = Command::new(env!("CARGO_BIN_EXE_ballast"))
        .args(["ctl", "--server", &daemon.url, "--token-file"])
        .arg(daemon.token_file("read"))
        .args(["decisions", "--follow", "--ticks", "--limit", "1"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = BufReader::new(follow.stdout.take().unwrap()).lines().map(Result::unwrap);
    // The table of the newest record, then one line per new record, ids increasing.
    let ids: Vec<u64> = lines
        .filter_map(|l| l.strip_prefix('#').and_then(|rest| rest.split(' ').next()?.parse().ok()))
        .take(5)
        .collect();
    let _ = follow.kill();
    let _ = follow.wait();
    assert_eq!(ids.len(), 5);
    assert!(ids.windows(2).all(|w| w[1] == w[0] + 1), "{ids:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_grpcio_lists_the_services_by_reflection_and_calls_them() {
    let daemon = Daemon::start("mixed-fargate", 600, "");
    daemon.observed().await;
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let python = root.join("target/tools/venv/bin/python");
    assert!(python.exists(), "{} is missing: run tests/setup.sh", python.display());
    let out = Command::new(python)
        .arg(root.join("tests/grpc/client.py"))
        .arg(daemon.url.trim_start_matches("http://"))
        .arg(WRITE_TOKEN)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let lines = [
        "services: ",
        "status: mode=ENGINE_MODE_ENFORCE",
        "groups: general",
        "decisions: ",
        "explain: node ",
        "replace: replacement asked by ops (from python): cordoned ",
        "replace group: dry-run, nothing started: replace group general: ",
        "not found: name: node no-such-node: no such node in the cluster",
    ];
    for line in lines {
        assert!(stdout.contains(line), "missing '{line}' in:\n{stdout}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_tls_a_client_certificate_from_the_configured_ca_may_change_the_mode_and_is_named_in_the_record() {
    let dir = tempfile::tempdir().unwrap();
    tls::certificates(dir.path());
    let d = dir.path().display().to_string();
    let tls = format!("  tls: {{cert: {d}/server.pem, key: {d}/server.key, client-ca: {d}/ca.pem}}\n");
    let daemon = Daemon::start_in(dir, "steady-web", 60, &tls, "");
    assert!(daemon.url.starts_with("https://"), "{}", daemon.url);
    rustls::crypto::aws_lc_rs::default_provider().install_default().ok();
    let read = |name: &str| std::fs::read(daemon.dir.path().join(name)).unwrap();
    let connect = |identity: bool| {
        let mut tls = tonic::transport::ClientTlsConfig::new()
            .ca_certificate(tonic::transport::Certificate::from_pem(read("ca.pem")))
            .domain_name("localhost");
        if identity {
            tls = tls.identity(tonic::transport::Identity::from_pem(read("client.pem"), read("client.key")));
        }
        Channel::from_shared(daemon.url.clone()).unwrap().tls_config(tls).unwrap().connect_lazy()
    };
    let request = || pb::SetModeRequest { mode: pb::EngineMode::DryRun as i32, reason: "over mTLS".into() };
    let mut without = pb::mode_client::ModeClient::new(connect(false));
    let mut status = pb::status_client::StatusClient::new(connect(false));
    for _ in 0..100 {
        if status.get(pb::GetStatusRequest {}).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let refused = without.set(request()).await.unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");
    let tokened = without.set(bearer(request(), READ_TOKEN)).await.unwrap_err();
    assert_eq!(tokened.code(), Code::PermissionDenied, "{tokened:?}");

    let mut with = pb::mode_client::ModeClient::new(connect(true));
    let answer = with.set(request()).await.unwrap().into_inner();
    assert_eq!(answer.mode(), pb::EngineMode::DryRun);
    let filter = pb::DecisionFilter { plugin: "ballast".into(), ..Default::default() };
    let records = pb::decisions_client::DecisionsClient::new(connect(false))
        .list(pb::ListDecisionsRequest { filter: Some(filter), page_size: 10, page_token: String::new() })
        .await
        .unwrap()
        .into_inner()
        .records;
    let caller = records
        .iter()
        .find_map(|r| match &r.kind {
            Some(pb::record::Kind::Control(c)) => Some(c.caller.clone()),
            _ => None,
        })
        .expect("the change is recorded");
    assert!(caller.starts_with("cn=platform-team (sha256:"), "{caller}");
}
