//! `ballast run`: the daemon. Kubernetes adapter + AWS adapter + policy chain + engine, a
//! Lease so that one replica acts, the journal and the control API; until SIGINT or SIGTERM.
//! With `--simulate SCENARIO`, the same daemon against the simulator (see [`super::serve`]).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;

use super::serve::{self, Stack};
use crate::aws::AwsCapacity;
use crate::control::AdapterHealth;
use crate::daemon_config::DaemonConfig;
use crate::engine::Mode;
use crate::engine::journal::{self, Journal};
use crate::engine::ports::SystemClock;
use crate::engine::record::Recorder;
use crate::kubernetes::{ConfigMapHandover, Elector, KubeCluster, MetricsStatus};
use crate::metrics::admin::Check;
use crate::metrics::{AdapterFigures, Unreadable};
use crate::policy::Engine;
use crate::policy::saved::StateFile;
use crate::policy::{HostConfig, PolicyChain, PolicyHost};
use crate::reload::load_entry;
use crate::runner::Runner;

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The configuration file (YAML or JSON); every field has a default.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Evaluate, guard and record everything, change nothing.
    #[arg(long)]
    dry_run: bool,
    /// This replica's name in the Lease (defaults to the pod name, then the host name).
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
    #[command(flatten)]
    pub(super) sim: serve::SimArgs,
}

pub fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let mut config: DaemonConfig = match &args.config {
        Some(path) => crate::input_file::load(path)?,
        None => DaemonConfig::default(),
    };
    if args.dry_run {
        config.engine.mode = Mode::DryRun;
    }
    // Each section's check names fields from inside the section; the error names the file
    // and the whole path, as the parser's errors do.
    let file =
        args.config.as_ref().map_or_else(|| "the default configuration".to_string(), |p| p.display().to_string());
    // On the simulator, the kubernetes and aws sections are not used.
    let simulated = args.sim.simulate.is_some();
    let checks = [
        config.engine.validate().map_err(|e| format!("engine.{e}")),
        config.control.validate().map_err(|e| format!("control.{e}")),
        config.admin.validate().map_err(|e| format!("admin.{e}")),
        config.validate_series(),
        config.validate_policy_state(),
        if simulated { Ok(()) } else { config.kubernetes.leader.validate().map_err(|e| format!("kubernetes.{e}")) },
        if simulated { Ok(()) } else { config.aws.validate() },
    ];
    if let Some(error) = checks.into_iter().find_map(Result::err) {
        anyhow::bail!("{file}: {error}");
    }
    let identity = args
        .identity
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| format!("ballast-{}", std::process::id()));

    let host = PolicyHost::new(HostConfig::default())?;
    let chain = with_saved_states(chain(&host, &config.policies)?, &config);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let result = match args.sim.simulate.clone() {
        Some(scenario) => runtime.block_on(serve::simulated(config, args.config, &args.sim, &scenario, chain, host)),
        None => runtime.block_on(daemon(config, args.config, identity, chain, host)),
    };
    // A plugin call still running on a blocking thread past the grace period is not waited
    // for: the process exits (its drains stay marked for the next leader).
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    result?;
    Ok(ExitCode::SUCCESS)
}

/// The configured policies, loaded, each remembering where it came from (a path, or
/// `bundled:NAME`) so that the control API and a reload can load it again.
pub(super) fn chain(host: &PolicyHost, policies: &[crate::daemon_config::PolicyEntry]) -> anyhow::Result<PolicyChain> {
    let mut entries = Vec::new();
    for (i, entry) in policies.iter().enumerate() {
        entries.push(load_entry(host, entry).map_err(|e| anyhow::anyhow!("policies[{i}].{e}"))?);
    }
    Ok(PolicyChain::of(entries))
}

/// The chain with the states its policies saved before a restart taken back, saving them
/// from now on (`policy-state`), and none handed back older than `policy-state-max-age`.
/// A file that does not read is reported and left to be overwritten: the policies start
/// afresh, as without one.
pub(super) fn with_saved_states(chain: PolicyChain, config: &DaemonConfig) -> PolicyChain {
    let mut chain = chain.with_state_max_age(config.policy_state_max_age);
    let Some(path) = &config.policy_state else { return chain };
    let file = StateFile::new(path);
    match file.load() {
        Ok(Some(saved)) => {
            let restored = chain.restore(saved);
            tracing::info!(path = %path.display(), policies = ?restored, "policy states taken back");
        }
        Ok(None) => tracing::info!(path = %path.display(), "no policy states saved yet"),
        Err(error) => tracing::warn!(%error, "every policy starts afresh"),
    }
    chain.with_state_file(file)
}

/// The recorder, with the journal's records read back so that a restart keeps its history.
pub(super) fn recorder(config: &DaemonConfig) -> anyhow::Result<Recorder> {
    open_recorder(config.journal.as_deref(), config.engine.ring_size)
}

/// A recorder keeping `ring_size` records, appending to the journal at `path` if any, with
/// the journal's records read back.
pub(super) fn open_recorder(path: Option<&std::path::Path>, ring_size: usize) -> anyhow::Result<Recorder> {
    let Some(path) = path else { return Ok(Recorder::new(ring_size, None)) };
    let old = match path.exists() {
        true => journal::read(path).with_context(|| format!("reading the journal {}", path.display()))?.records,
        false => Vec::new(),
    };
    let journal = Journal::open(path, false).with_context(|| format!("opening the journal {}", path.display()))?;
    let recorder = Recorder::new(ring_size, Some(journal));
    recorder.restore(old);
    Ok(recorder)
}

/// What the adapters say of their health: the cluster's watches and metrics API, and the
/// values either adapter could not read (an Auto Scaling group left unmanaged, such as a
/// weighted one, counts there), with the latest of each.
fn adapter_health(cluster: &KubeCluster, capacity: &AwsCapacity) -> AdapterHealth {
    let status = cluster.status();
    let (aws_unreadable, aws_last) = capacity.unreadable();
    let last_unreadable = match (status.last_unreadable, aws_last) {
        (Some(kube), Some(aws)) => Some(format!("{kube}; {aws}")),
        (kube, aws) => kube.or(aws),
    };
    AdapterHealth {
        unsynced: status.unsynced.iter().map(|k| k.to_string()).collect(),
        metrics_api: match status.metrics {
            MetricsStatus::Available => "served",
            MetricsStatus::Absent(_) => "absent",
            MetricsStatus::Unknown => "unknown",
        }
        .into(),
        unreadable_values: status.unreadable_values + aws_unreadable,
        last_unreadable,
    }
}

fn adapter_figures(
    cluster: &KubeCluster,
    capacity: &AwsCapacity,
    handover: Option<&ConfigMapHandover>,
) -> AdapterFigures {
    let status = cluster.status();
    AdapterFigures {
        handover_writes: handover.map(ConfigMapHandover::writes),
        watch_restarts: Some(status.watch_errors),
        caches_synced: Some(status.unsynced.is_empty()),
        evictions: Some(status.evictions),
        aws_calls: capacity.calls_by_operation(),
        unreadable: vec![
            Unreadable { adapter: "kubernetes", values: status.unreadable_values },
            Unreadable { adapter: "aws", values: capacity.unreadable().0 },
        ],
    }
}

/// Publishing each tick's figures with PutMetricData.
fn cloudwatch(capacity: AwsCapacity) -> crate::metrics::publish::Publish {
    Arc::new(move |figures, at| {
        let capacity = capacity.clone();
        Box::pin(async move { capacity.publish(figures, at).await.map_err(|e| e.to_string()) })
    })
}

fn caches_synced(cluster: &KubeCluster) -> Check {
    let unsynced = cluster.status().unsynced;
    match unsynced.is_empty() {
        true => Check { name: "kubernetes", ok: true, detail: "every watch cache has listed".into() },
        false => Check { name: "kubernetes", ok: false, detail: format!("not yet listed: {}", unsynced.join(", ")) },
    }
}

async fn daemon(
    config: DaemonConfig,
    config_path: Option<PathBuf>,
    identity: String,
    chain: PolicyChain,
    host: PolicyHost,
) -> anyhow::Result<()> {
    let kube_config = kube::Config::infer().await.context("no Kubernetes configuration (in-cluster or kubeconfig)")?;
    let cluster = KubeCluster::start(kube_config.clone(), config.kubernetes.clone())?;
    let capacity = AwsCapacity::connect(config.aws.clone()).await.map_err(anyhow::Error::msg)?;
    tracing::info!(%identity, "waiting for the watch caches");
    cluster.synced().await;

    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let series = serve::series_feed(&config, capacity.clone(), SystemClock, stop.subscribe());
    let mut engine = Engine::new(cluster.clone(), capacity.clone(), chain, config.engine.clone(), recorder(&config)?)
        .with_fargate(config.fargate)
        .with_identity(identity.clone())
        .with_series(series.store);
    let handover = config
        .kubernetes
        .handover
        .as_ref()
        .map(|name| ConfigMapHandover::spawn(cluster.client().clone(), &config.kubernetes.leader.namespace, name));
    if let Some(store) = &handover {
        engine = engine.with_handover(Arc::new(store.clone()));
    }
    let mut holder: Option<crate::control::HolderProbe> = None;
    let elector = if config.leader_election {
        let mut direct = kube_config;
        direct.default_retry = false;
        let elector = Elector::new(kube::Client::try_from(direct)?, config.kubernetes.leader.clone(), identity.clone())
            .map_err(anyhow::Error::msg)?;
        let (leadership, task) = elector.spawn(async move {
            let _ = stopped.wait_for(|s| *s).await;
        });
        let lease = leadership.clone();
        holder = Some(Arc::new(move || lease.holder()));
        engine = engine.with_gate(Arc::new(move || leadership.is_leader()));
        Some(task)
    } else {
        None
    };
    let (probe, probe_aws) = (cluster.clone(), capacity.clone());
    let (kube, aws, handed) = (cluster.clone(), capacity.clone(), handover.clone());
    let ready_probe = cluster.clone();
    let stack = Stack {
        identity,
        election: config.leader_election,
        holder,
        source: "kubernetes+aws".into(),
        health: Arc::new(move || adapter_health(&probe, &probe_aws)),
        host,
        figures: Arc::new(move || adapter_figures(&kube, &aws, handed.as_ref())),
        ready: Arc::new(move || vec![caches_synced(&ready_probe)]),
        publish: config.aws.publish_metrics.then(|| cloudwatch(capacity)),
        config_path,
        queries: series.queries,
    };
    let runner = Runner::new(engine, SystemClock).with_arrivals(cluster.arrivals());
    serve::drive(runner, &config, stack, None).await?;
    let deadline = tokio::time::Instant::now() + config.shutdown_grace;
    // The last tick's handover is written before the Lease is released, so the next leader
    // reads it; half the grace left at most, the other half for the release.
    if let Some(store) = handover {
        let within = deadline.saturating_duration_since(tokio::time::Instant::now()) / 2;
        if let Err(error) = store.flush(within).await {
            tracing::warn!(%error, "the next leader takes an older handover");
        }
    }
    let _ = stop.send(true);
    if let Some(task) = elector
        && tokio::time::timeout_at(deadline, task).await.is_err()
    {
        tracing::warn!(grace = ?config.shutdown_grace, "could not release the Lease within the shutdown grace; exiting");
    }
    Ok(())
}
