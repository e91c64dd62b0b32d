//! What `ballast run` does around the engine whatever it runs against: the control API
//! (bound, announced on standard output, changes fed to the runner), the runner, and a
//! bounded graceful shutdown. And `ballast run --simulate`: the same daemon over the
//! simulator on a clock N times faster than real time.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use tokio::sync::{mpsc, watch};

use crate::control::auth::Credentials;
use crate::control::settings::Access;
use crate::control::{ControlState, HealthProbe, server};
use crate::daemon_config::DaemonConfig;
use crate::engine::series::{SeriesQuery, SeriesStore};
use crate::engine::{Capacity, Clock, Cluster};
use crate::metrics::admin::{Admin, Check, ReadyProbe};
use crate::metrics::{AdapterFigures, FiguresProbe, Metrics};
use crate::policy::Engine;
use crate::policy::Live;
use crate::policy::{PolicyChain, PolicyHost};
use crate::reload::Reloader;
use crate::runner::Runner;
use crate::sim::adapters::SimHandle;
use crate::sim::run::Simulation;
use crate::sim::world::World;

#[derive(Debug, Args)]
pub struct SimArgs {
    /// Run against the simulator instead of a cluster and AWS: a built-in scenario
    /// (steady-web, morning-ramp, spiky-batch, mixed-fargate) or a scenario file. Try the
    /// control API with `ballast ctl` and no cluster, no AWS account.
    #[arg(long, value_name = "SCENARIO")]
    pub simulate: Option<String>,
    /// With --simulate: simulated seconds per real second.
    #[arg(long, default_value_t = 60.0, requires = "simulate")]
    pub speed: f64,
    /// With --simulate: the scenario's random seed.
    #[arg(long, default_value_t = 1, requires = "simulate")]
    pub seed: u64,
    /// With --simulate: where to write a fresh token with write access for `ballast ctl`
    /// (when the configuration names no tokens).
    #[arg(long, env = "BALLAST_TOKEN_FILE", requires = "simulate")]
    pub token_file: Option<PathBuf>,
}

/// What the control API and the admin port need besides the engine's own handles.
pub struct Stack {
    pub identity: String,
    pub election: bool,
    /// Who holds the Lease, with election.
    pub holder: Option<crate::control::HolderProbe>,
    pub source: String,
    pub health: HealthProbe,
    pub host: PolicyHost,
    /// The adapters' counters for `/metrics`.
    pub figures: FiguresProbe,
    /// The adapters' readiness conditions for `/readyz` (the engine's are added).
    pub ready: ReadyProbe,
    /// Where each tick's figures are published (CloudWatch), if anywhere.
    pub publish: Option<crate::metrics::publish::Publish>,
    /// The configuration file, watched with the policies' files for reloads.
    pub config_path: Option<PathBuf>,
    /// The CloudWatch queries the series feed follows; a reload sets them.
    pub queries: watch::Sender<Vec<SeriesQuery>>,
}

/// Serves the control API (when enabled) and runs the engine until SIGINT or SIGTERM, then
/// shuts down within `shutdown-grace`: the tick in progress finishes, open Watch streams end.
///
/// # Errors
/// The control API's address cannot be bound, its TLS or token files cannot be read, or the
/// engine loop ends by itself.
pub async fn drive<C, P, K>(
    runner: Runner<C, P, K>,
    config: &DaemonConfig,
    stack: Stack,
    token: Option<String>,
) -> anyhow::Result<()>
where
    C: Cluster + Send + Sync + 'static,
    P: Capacity + Send + Sync + 'static,
    K: Clock + Send + 'static,
{
    let (commands, received) = mpsc::channel(16);
    let runner = runner.with_commands(received);
    let (quit, quitting) = watch::channel(false);
    let live = runner.engine.live();
    let recorder = runner.engine.recorder().clone();
    let metrics = start_companions(config, &stack, live.clone(), recorder, commands.clone(), &quitting);
    let admin = Admin {
        metrics: metrics.clone(),
        heartbeat: runner.heartbeat.clone(),
        max_inactivity: config.admin.max_inactivity,
        ready: engine_ready(live, stack.ready.clone(), config.policies.len()),
    };
    let admin = match config.admin.enabled {
        true => Some(start_admin(config, admin, quitting.clone()).await?),
        false => None,
    };
    let control = match config.control.enabled {
        true => Some(start_control(config, stack, &runner.engine, commands, token, quitting.clone()).await?),
        false => None,
    };
    let mut quitting = quitting;
    let mut running = tokio::spawn(runner.run(async move {
        let _ = quitting.wait_for(|q| *q).await;
    }));
    tokio::select! {
        _ = shutdown_signal() => {}
        _ = &mut running => anyhow::bail!("the engine loop ended unexpectedly"),
    }
    let deadline = tokio::time::Instant::now() + config.shutdown_grace;
    let _ = quit.send(true);
    if tokio::time::timeout_at(deadline, &mut running).await.is_err() {
        tracing::warn!(grace = ?config.shutdown_grace, "the tick in progress did not finish within the shutdown grace; exiting");
    }
    if let Some(control) = control
        && tokio::time::timeout_at(deadline, control).await.is_err()
    {
        tracing::warn!("the control API did not stop within the shutdown grace; exiting");
    }
    if let Some(admin) = admin
        && tokio::time::timeout_at(deadline, admin).await.is_err()
    {
        tracing::warn!("the admin port did not stop within the shutdown grace; exiting");
    }
    Ok(())
}

/// The tasks beside the runner, all stopped by `quitting`: metrics follow the records, each
/// tick's figures are published (when configured), the policies' files are watched.
fn start_companions(
    config: &DaemonConfig,
    stack: &Stack,
    live: Arc<Live>,
    recorder: crate::engine::record::Recorder,
    commands: mpsc::Sender<crate::runner::Command>,
    quitting: &watch::Receiver<bool>,
) -> Arc<Metrics> {
    let metrics = Metrics::new(live.clone(), stack.figures.clone());
    tokio::spawn(crate::metrics::follow::follow(metrics.clone(), recorder, quitting.clone()));
    if let Some(publish) = stack.publish.clone() {
        crate::metrics::publish::spawn(live.clone(), metrics.clone(), publish, quitting.clone());
    }
    if !config.reload_interval.is_zero() {
        let reloader = Reloader::new(stack.config_path.clone(), config, stack.host.clone());
        let (every, stop) = (config.reload_interval, quitting.clone());
        let queries = stack.queries.clone();
        tokio::spawn(crate::reload::run(reloader, live, commands, metrics.clone(), queries, every, stop));
    }
    metrics
}

/// The adapters' readiness conditions, then the engine's: a tick has observed the cluster
/// and the cloud, and the configured policies are loaded.
fn engine_ready(live: Arc<Live>, adapters: ReadyProbe, configured: usize) -> ReadyProbe {
    Arc::new(move || {
        let mut checks = adapters();
        let observed = match live.last_tick() {
            None => Check { name: "observed", ok: false, detail: "no tick has run yet".into() },
            Some(t) if t.outcome == "failed" => Check {
                name: "observed",
                ok: false,
                detail: format!("tick {} could not observe: {}", t.tick, t.error.as_deref().unwrap_or("")),
            },
            Some(t) => Check { name: "observed", ok: true, detail: format!("tick {} observed", t.tick) },
        };
        checks.push(observed);
        let plugins = live.plugins();
        let names: Vec<&str> = plugins.iter().map(|e| e.plugin.name()).collect();
        // Every configured policy loaded at start (or the daemon would not have started);
        // reloads keep a running version when a new one fails, so only an emptied chain is
        // not ready.
        checks.push(Check {
            name: "policies",
            ok: configured == 0 || !plugins.is_empty(),
            detail: format!("{} loaded: {}", plugins.len(), names.join(", ")),
        });
        checks
    })
}

async fn start_admin(
    config: &DaemonConfig,
    admin: Admin,
    mut quitting: watch::Receiver<bool>,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let listen = config.admin.listen;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("admin.listen: cannot listen on {listen}"))?;
    outln!("ballast: metrics and health on http://{}", listener.local_addr()?);
    let serve = crate::metrics::admin::serve(Arc::new(admin), listener, async move {
        let _ = quitting.wait_for(|q| *q).await;
    });
    Ok(tokio::spawn(async move {
        if let Err(error) = serve.await {
            tracing::error!(%error, "the admin port stopped");
        }
    }))
}

async fn start_control<C: Cluster, P: Capacity>(
    config: &DaemonConfig,
    stack: Stack,
    engine: &Engine<C, P>,
    commands: mpsc::Sender<crate::runner::Command>,
    token: Option<String>,
    mut quitting: watch::Receiver<bool>,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let settings = config.control.clone();
    let mut credentials = Credentials::load(&settings)?;
    if let Some(token) = token {
        credentials = credentials.with_token("local", &token, Access::Write);
    }
    let mut state = ControlState::new(
        settings.clone(),
        credentials,
        engine.recorder().clone(),
        engine.live(),
        commands,
        stack.host,
        stack.health,
    );
    state.identity = stack.identity;
    state.election = stack.election;
    state.holder = stack.holder;
    state.source = stack.source;
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("control.listen: cannot listen on {}", settings.listen))?;
    let address = listener.local_addr()?;
    let scheme = if settings.tls.is_some() { "https" } else { "http" };
    outln!("ballast: control API on {scheme}://{address}");
    let state = Arc::new(state);
    let serve = server::serve(state, listener, async move {
        let _ = quitting.wait_for(|q| *q).await;
    });
    // Files are checked before the first connection: a bad certificate fails the start.
    Ok(tokio::spawn(async move {
        if let Err(error) = serve.await {
            tracing::error!(%error, "the control API stopped");
        }
    }))
}

pub(super) async fn shutdown_signal() {
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

/// `ballast run --simulate`: the daemon's runner, engine, recorder and control API over the
/// sim adapters; the world steps a simulated second every `1/speed` real seconds.
pub async fn simulated(
    config: DaemonConfig,
    config_path: Option<PathBuf>,
    args: &SimArgs,
    scenario: &str,
    chain: PolicyChain,
    host: PolicyHost,
) -> anyhow::Result<()> {
    if !(args.speed.is_finite() && args.speed > 0.0 && args.speed <= 10_000.0) {
        anyhow::bail!("--speed {}: must be more than 0 and at most 10000", args.speed);
    }
    let scenario = crate::sim::scenario::resolve(scenario)?;
    if scenario.node_groups.iter().any(|g| !g.replacements.is_empty()) {
        tracing::warn!(
            "the scenario's node-groups[].replacements are rehearsed by `ballast simulate`; here, ask with \
             `ballast ctl replace group`"
        );
    }
    let sim = Simulation { scenario, seed: args.seed, policies: Vec::new(), mode: config.engine.mode, journal: None };
    let engine_config = sim.engine_config();
    let world = SimHandle::new(World::new(&sim.scenario, sim.seed));
    let mut engine = Engine::new(world.clone(), world.clone(), chain, engine_config, super::run::recorder(&config)?)
        .with_fargate(sim.scenario.fargate.is_some());
    let (_feeding, fed) = watch::channel(false);
    let series = series_feed(&config, world.clone(), world.clone(), fed);
    engine = engine.with_series(series.store);
    let token = local_token(&config, args)?;
    let stack = Stack {
        identity: "simulator".into(),
        election: false,
        holder: None,
        source: format!("simulator: {} (x{})", sim.scenario.name, args.speed),
        health: Arc::new(|| crate::control::AdapterHealth { metrics_api: "served".into(), ..Default::default() }),
        host,
        figures: Arc::new(AdapterFigures::default),
        ready: Arc::new(Vec::new),
        publish: None,
        config_path,
        queries: series.queries,
    };
    let (arrived, arrivals) = watch::channel(0u64);
    let stepping = tokio::spawn(step_world(world.clone(), args.speed, arrived));
    let runner = Runner::new(engine, world).with_arrivals(arrivals);
    let result = drive(runner, &config, stack, token).await;
    stepping.abort();
    result
}

/// Moves the simulated world a second at a time, `speed` simulated seconds per real one, and
/// says when new pods are pending. Past the scenario's end the world keeps going.
async fn step_world(world: SimHandle, speed: f64, arrived: watch::Sender<u64>) {
    let mut every = tokio::time::interval(Duration::from_secs_f64(1.0 / speed));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let new = {
            let mut w = world.lock();
            w.step(1_000);
            w.take_new_pending()
        };
        if new > 0 {
            arrived.send_modify(|n| *n += u64::from(new));
        }
    }
}

/// The CloudWatch series the policies name, and the queries that say which.
pub(super) struct SeriesFeed {
    pub store: SeriesStore,
    /// Set by a reload: the feed follows.
    pub queries: watch::Sender<Vec<SeriesQuery>>,
}

/// Reads the CloudWatch series the policies name, each on its own schedule, from `capacity`
/// until `stop`. Started even when no policy names one, so that a reload can add some.
pub(super) fn series_feed<P, K>(config: &DaemonConfig, capacity: P, clock: K, stop: watch::Receiver<bool>) -> SeriesFeed
where
    P: Capacity + Clone + 'static,
    K: Clock + Clone + 'static,
{
    let (queries, followed) = watch::channel(config.series_queries());
    let store = SeriesStore::default();
    tokio::spawn(crate::engine::series::feed(capacity, clock, followed, store.clone(), stop));
    SeriesFeed { store, queries }
}

/// With no tokens configured, `--simulate` writes a fresh write token for `ballast ctl`.
fn local_token(config: &DaemonConfig, args: &SimArgs) -> anyhow::Result<Option<String>> {
    if !config.control.tokens.is_empty() {
        return Ok(None);
    }
    let path = args.token_file.clone().unwrap_or_else(default_token_file);
    let mut secret = [0u8; 32];
    {
        use std::io::Read;
        std::fs::File::open("/dev/urandom")
            .and_then(|mut f| f.read_exact(&mut secret))
            .context("cannot read /dev/urandom for the local token")?;
    }
    let token = hex::encode(secret);
    write_private(&path, &token).with_context(|| format!("--token-file: cannot write {}", path.display()))?;
    outln!("ballast: a token with write access is in {} (ballast ctl reads it from there)", path.display());
    Ok(Some(token))
}

/// Where `run --simulate` writes its token and `ctl` looks for it by default.
pub fn default_token_file() -> PathBuf {
    std::env::temp_dir().join(format!("ballast-{}.token", whoami()))
}

fn whoami() -> String {
    std::env::var("USER").unwrap_or_else(|_| "user".into())
}

fn write_private(path: &std::path::Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let _ = std::fs::remove_file(path);
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    file.write_all(contents.as_bytes())
}
