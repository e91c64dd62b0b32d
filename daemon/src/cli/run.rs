//! `ballast run`: the daemon. Kubernetes adapter + AWS adapter + policy chain + engine, a
//! Lease so that one replica acts, and the journal; until SIGINT or SIGTERM.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;

use crate::aws::AwsCapacity;
use crate::daemon_config::DaemonConfig;
use crate::engine::journal::{self, Journal};
use crate::engine::ports::SystemClock;
use crate::engine::record::Recorder;
use crate::engine::{Engine, Mode};
use crate::kubernetes::{Elector, KubeCluster};
use crate::policy::{HostConfig, PluginSpec, PolicyChain, PolicyHost};
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
    let checks = [
        config.engine.validate().map_err(|e| format!("engine.{e}")),
        config.kubernetes.leader.validate().map_err(|e| format!("kubernetes.{e}")),
        config.aws.validate(),
    ];
    if let Some(error) = checks.into_iter().find_map(Result::err) {
        anyhow::bail!("{file}: {error}");
    }
    let identity = args
        .identity
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| format!("ballast-{}", std::process::id()));

    let host = PolicyHost::new(HostConfig::default())?;
    let mut plugins = Vec::new();
    for (i, entry) in config.policies.iter().enumerate() {
        let (name, bytes) =
            super::plugin::read_component(&entry.plugin).with_context(|| format!("policies[{i}].plugin"))?;
        let spec = PluginSpec { name, bytes, settings: entry.settings.clone(), limits: entry.limits.clone() };
        plugins.push(host.load(spec).with_context(|| format!("policies[{i}] ({})", entry.plugin))?);
    }

    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let result = runtime.block_on(daemon(config, identity, PolicyChain::new(plugins)));
    // A plugin call still running on a blocking thread past the grace period is not waited
    // for: the process exits (its drains stay marked for the next leader).
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    result?;
    Ok(ExitCode::SUCCESS)
}

async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate => {}
    }
    tracing::info!("shutting down");
}

async fn daemon(config: DaemonConfig, identity: String, chain: PolicyChain) -> anyhow::Result<()> {
    let kube_config = kube::Config::infer().await.context("no Kubernetes configuration (in-cluster or kubeconfig)")?;
    let cluster = KubeCluster::start(kube_config.clone(), config.kubernetes.clone())?;
    let capacity = AwsCapacity::connect(config.aws.clone()).await.map_err(anyhow::Error::msg)?;
    tracing::info!(%identity, "waiting for the watch caches");
    cluster.synced().await;

    let recorder = match &config.journal {
        None => Recorder::new(config.engine.ring_size, None),
        Some(path) => {
            // Read back before appending, so a restart keeps its history in the ring.
            let old = match path.exists() {
                true => journal::read(path).with_context(|| format!("reading the journal {}", path.display()))?.records,
                false => Vec::new(),
            };
            let journal =
                Journal::open(path, false).with_context(|| format!("opening the journal {}", path.display()))?;
            let mut recorder = Recorder::new(config.engine.ring_size, Some(journal));
            recorder.restore(old);
            recorder
        }
    };
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let mut engine = Engine::new(cluster.clone(), capacity, chain, config.engine.clone(), recorder)
        .with_fargate(config.fargate)
        .with_identity(identity.clone());
    let elector = if config.leader_election {
        let mut direct = kube_config;
        direct.default_retry = false;
        let elector = Elector::new(kube::Client::try_from(direct)?, config.kubernetes.leader.clone(), identity)
            .map_err(anyhow::Error::msg)?;
        let (leadership, task) = elector.spawn(async move {
            let _ = stopped.wait_for(|s| *s).await;
        });
        engine = engine.with_gate(Arc::new(move || leadership.is_leader()));
        Some(task)
    } else {
        None
    };
    let runner = Runner { engine, clock: SystemClock, arrivals: Some(cluster.arrivals()) };
    let (quit, mut quitting) = tokio::sync::watch::channel(false);
    let mut running = tokio::spawn(runner.run(async move {
        let _ = quitting.wait_for(|q| *q).await;
    }));
    tokio::select! {
        _ = shutdown_signal() => {}
        _ = &mut running => anyhow::bail!("the engine loop ended unexpectedly"),
    }
    // Bounded graceful shutdown: the tick in progress finishes, the Lease is released so a
    // standby takes over at once, and past the grace period the process exits anyway.
    let deadline = tokio::time::Instant::now() + config.shutdown_grace;
    let _ = quit.send(true);
    if tokio::time::timeout_at(deadline, &mut running).await.is_err() {
        tracing::warn!(grace = ?config.shutdown_grace, "the tick in progress did not finish within the shutdown grace; exiting");
    }
    let _ = stop.send(true);
    if let Some(task) = elector
        && tokio::time::timeout_at(deadline, task).await.is_err()
    {
        tracing::warn!(grace = ?config.shutdown_grace, "could not release the Lease within the shutdown grace; exiting");
    }
    Ok(())
}
