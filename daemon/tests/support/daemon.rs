//! `ballast run` as a process against the stand-in and moto: the Auto Scaling group it
//! manages and the command that starts a replica.

use std::path::Path;
use std::process::{Child, Command, Stdio};

use aws_config::SdkConfig;
use aws_sdk_ec2::types::InstanceType;
use serde_json::Value;

/// Group `name` of `instance_type` (min 0, max 10) tagged for cluster `e2e` as Cluster
/// Autoscaler's discovery expects, with `desired` instances.
pub async fn node_group(aws: &SdkConfig, name: &str, instance_type: InstanceType, desired: i32) {
    let tags = [("k8s.io/cluster-autoscaler/enabled", "true"), ("k8s.io/cluster-autoscaler/e2e", "owned")];
    super::moto::template_group(aws, name, instance_type.as_str(), &tags, desired).await;
}

/// The daemon's configuration for cluster `e2e` against moto at `moto_url` (publishing its
/// figures to moto's CloudWatch): 1 s ticks, a
/// 3 s Lease, the journal at `journal`; `engine` and `policies` are YAML blocks, `aws` more
/// entries of the `aws` mapping (`, key: value`).
fn config(engine: &str, policies: &str, aws: &str, moto_url: &str, journal: &Path) -> String {
    format!(
        "engine:\n{engine}\
         policies:\n{policies}\
         kubernetes: {{leader: {{lease-duration: 3s, renew-deadline: 2s, retry-period: 500ms}}}}\n\
         aws: {{cluster-name: e2e, region: us-east-1, endpoint-url: \"{moto_url}\", max-calls-per-second: 100, publish-metrics: true{aws}}}\n\
         journal: {}\n\
         control: {{listen: \"127.0.0.1:0\", tokens: [{{name: operator, file: \"{}\", access: write}}]}}\n\
         admin: {{listen: \"127.0.0.1:0\"}}\n",
        journal.display(),
        operator_token(journal).display()
    )
}

/// The write token of the control API's `operator` (beside the journal; see
/// [`Site::operator_token`]).
fn operator_token(journal: &Path) -> std::path::PathBuf {
    journal.with_file_name("operator.token")
}

/// Starts `ballast run` with `config` as replica `identity`; stderr is captured.
fn start(config: &Path, identity: &str, kubeconfig: &Path) -> Child {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    Command::new(env!("CARGO_BIN_EXE_ballast"))
        .args(["run", "--config"])
        .arg(config)
        .args(["--identity", identity])
        .env("KUBECONFIG", kubeconfig)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("BALLAST_CACHE_DIR", root.join("target/test-component-cache"))
        .env("BALLAST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ballast runs")
}

/// The address a replica announces on stdout for `what` (`metrics and health`, `control
/// API`): `ballast: <what> on http://ADDR`. Takes the replica's stdout and keeps reading it
/// (a closed stdout ends `ballast`, as a closed pipe ends any command-line tool).
pub fn announced(child: &mut Child, what: &str) -> String {
    announced_each(child, &[what]).remove(0)
}

/// The addresses `ballast run` announces on stdout for each of `whats` (`control API`,
/// `metrics and health`), in that order, whatever order they come in.
pub fn announced_each(child: &mut Child, whats: &[&str]) -> Vec<String> {
    use std::io::{BufRead, BufReader};
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout piped")).lines();
    let mut found: Vec<Option<String>> = vec![None; whats.len()];
    while found.iter().any(Option::is_none) {
        let line = stdout.next().and_then(Result::ok).expect("the addresses announced");
        for (what, slot) in whats.iter().zip(&mut found) {
            if line.contains(&format!("{what} on http://")) {
                *slot = Some(line.rsplit("http://").next().unwrap_or_default().to_string());
            }
        }
    }
    std::thread::spawn(move || stdout.map_while(Result::ok).for_each(drop));
    found.into_iter().flatten().collect()
}

/// Where `ballast run` is tried: the stand-in as the cluster, moto with group `general`
/// (m5.large) as the cloud, and a directory for the kubeconfig, the configuration and the journal.
pub struct Site {
    pub standin: kube_standin::StandIn,
    pub moto: super::moto::Moto,
    pub aws: SdkConfig,
    pub dir: tempfile::TempDir,
}

impl Site {
    /// Starts both, with `desired` instances in `general`.
    pub async fn start(desired: i32) -> Site {
        let standin = kube_standin::StandIn::start().await.expect("the stand-in starts");
        let moto = super::moto::Moto::start().await;
        let aws = super::moto::sdk_config(&moto.url).await;
        node_group(&aws, "general", InstanceType::M5Large, desired).await;
        let dir = tempfile::tempdir().expect("a temporary directory");
        std::fs::write(dir.path().join("kubeconfig"), standin.kubeconfig()).expect("kubeconfig written");
        std::fs::write(dir.path().join("operator.token"), "operator-secret").expect("token written");
        Site { standin, moto, aws, dir }
    }

    pub fn journal(&self) -> std::path::PathBuf {
        self.dir.path().join("decisions.jsonl")
    }

    /// A file holding the control API's write token (`operator`), for `ballast ctl --token-file`.
    pub fn operator_token(&self) -> std::path::PathBuf {
        operator_token(&self.journal())
    }

    /// Writes the configuration (`engine` and `policies` YAML blocks, then `extra` top-level
    /// lines) and starts replica `identity` with it.
    pub fn replica(&self, identity: &str, engine: &str, policies: &str, extra: &str) -> Child {
        self.replica_with_aws(identity, engine, policies, "", extra)
    }

    /// As [`Site::replica`], with `aws` added to the `aws` mapping (`, key: value`).
    pub fn replica_with_aws(&self, identity: &str, engine: &str, policies: &str, aws: &str, extra: &str) -> Child {
        let path = self.write_config(engine, policies, aws, extra);
        start(&path, identity, &self.dir.path().join("kubeconfig"))
    }

    /// Writes the configuration file a replica started by [`Site::replica`] reads (again,
    /// as a ConfigMap update would); returns its path.
    pub fn write_config(&self, engine: &str, policies: &str, aws: &str, extra: &str) -> std::path::PathBuf {
        let path = self.dir.path().join("ballast.yaml");
        std::fs::write(&path, config(engine, policies, aws, &self.moto.url, &self.journal()) + extra)
            .expect("config written");
        path
    }

    /// As [`Site::replica`], with a journal and a configuration file of its own
    /// (`<identity>.jsonl`, `<identity>.yaml`), as each pod of a Deployment has its own
    /// emptyDir.
    pub fn replica_on_own_volume(&self, identity: &str, engine: &str, policies: &str) -> Child {
        let path = self.dir.path().join(format!("{identity}.yaml"));
        let journal = self.own_journal(identity);
        std::fs::write(&path, config(engine, policies, "", &self.moto.url, &journal)).expect("config written");
        start(&path, identity, &self.dir.path().join("kubeconfig"))
    }

    /// The journal of a replica started with [`Site::replica_on_own_volume`].
    pub fn own_journal(&self, identity: &str) -> std::path::PathBuf {
        self.dir.path().join(format!("{identity}.jsonl"))
    }

    /// `ballast ctl` against the control API at `control`, with the operator's token.
    pub fn ctl(&self, control: &str, args: &[&str]) -> std::process::Output {
        let mut command = Command::new(env!("CARGO_BIN_EXE_ballast"));
        command.args(["ctl", "--server", &format!("http://{control}"), "--token-file"]);
        command.arg(self.operator_token()).args(args).output().expect("ballast ctl runs")
    }

    /// Waits for a tick of the leader that saw `nodes` nodes.
    pub async fn leading_with(&self, nodes: usize) -> bool {
        let leading = |r: &Value| r["record"] == "tick" && r["standby"] != true && r["saw"]["nodes"] == nodes;
        let seen = async || records(&self.journal()).iter().any(leading);
        super::eventually(std::time::Duration::from_secs(30), seen).await.is_some()
    }

    /// The desired capacity of `general` and its instances.
    pub async fn group(&self) -> (i32, Vec<String>) {
        self.group_named("general").await
    }

    /// The desired capacity of group `name` and its instances.
    pub async fn group_named(&self, name: &str) -> (i32, Vec<String>) {
        let asg = aws_sdk_autoscaling::Client::new(&self.aws);
        let out = asg.describe_auto_scaling_groups().auto_scaling_group_names(name).send().await.expect("described");
        let g = &out.auto_scaling_groups()[0];
        let ids = g.instances().iter().filter_map(|i| i.instance_id().map(str::to_string)).collect();
        (g.desired_capacity().unwrap_or(-1), ids)
    }
}

/// The records of the journal at `journal` (none if it cannot be read yet).
pub fn records(journal: &Path) -> Vec<Value> {
    std::fs::read_to_string(journal).unwrap_or_default().lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
}

/// Stops a replica with SIGTERM and returns what it logged.
pub fn stop(mut child: Child) -> String {
    Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill runs");
    let _ = child.stdout.take();
    let output = child.wait_with_output().expect("the replica exits");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Fails the test with `what`, and the replica's log.
pub fn fail(child: Child, what: &str) -> ! {
    panic!("{what}; daemon log:\n{}", stop(child));
}

/// An HTTP/1.0 GET on loopback: status, content type and body.
pub fn get(addr: &str, path: &str, accept: Option<&str>) -> (u16, String, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).expect("the admin port accepts");
    let accept = accept.map(|a| format!("Accept: {a}\r\n")).unwrap_or_default();
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n{accept}\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let content_type = head
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-type: ").map(str::to_string))
        .unwrap_or_default();
    (status, content_type, body.to_string())
}

/// The value of the sample `series` (name and labels exactly as exposed), if present.
pub fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
}
