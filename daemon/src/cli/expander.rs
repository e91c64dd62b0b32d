//! `ballast expander`: Ballast's policies answering Cluster Autoscaler's gRPC expander
//! (`--expander=grpc`), with every answer recorded; until SIGINT or SIGTERM.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use tokio::sync::mpsc;

use crate::control::auth::Credentials;
use crate::control::{AdapterHealth, ControlState};
use crate::expander::offers::Pricing;
use crate::expander::{ExpanderConfig, ExpanderState};
use crate::policy::{HostConfig, PolicyHost};

#[derive(Debug, Args)]
pub struct ExpanderArgs {
    /// The expander's configuration: listen, tls (required), policies, journal, prices.
    #[arg(long, value_name = "FILE.yaml")]
    config: PathBuf,
}

pub fn run(args: ExpanderArgs) -> anyhow::Result<ExitCode> {
    let config: ExpanderConfig = crate::input_file::load(&args.config)?;
    config.validate().map_err(|e| anyhow::anyhow!("{}: {e}", args.config.display()))?;
    let host = PolicyHost::new(HostConfig::default())?;
    let chain = super::run::chain(&host, &config.policies)?;
    let recorder = super::run::open_recorder(config.journal.as_deref(), config.ring_size)?;
    let pricing = Pricing {
        on_demand: crate::aws::prices::Prices::new(config.on_demand_prices.clone()),
        spot_ratio: config.spot_price_ratio,
    };
    let expander = Arc::new(ExpanderState::new(chain, recorder.clone(), pricing, config.call_timeout));
    let settings = config.server();
    let credentials = Credentials::load(&settings)?;
    // The Decisions service reads the recorder only; nothing on this listener sends commands.
    let (commands, _) = mpsc::channel(1);
    let health = Arc::new(AdapterHealth::default);
    let mut control = ControlState::new(settings, credentials, recorder, Default::default(), commands, host, health);
    control.source = "cluster-autoscaler expander".into();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(serve(expander, Arc::new(control)))?;
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    Ok(ExitCode::SUCCESS)
}

async fn serve(expander: Arc<ExpanderState>, control: Arc<ControlState>) -> anyhow::Result<()> {
    let listen = control.settings.listen;
    let listener =
        tokio::net::TcpListener::bind(listen).await.with_context(|| format!("listen: cannot listen on {listen}"))?;
    outln!("ballast: expander on https://{}", listener.local_addr()?);
    crate::expander::server::serve(expander, control, listener, super::serve::shutdown_signal()).await?;
    Ok(())
}
