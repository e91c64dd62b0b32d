//! The gRPC control API (`proto/ballast/v1/control.proto`): what the daemon sees, decided and
//! why; its mode and its plugins; simulations and explanations.
//!
//! Reads come from what the engine publishes ([`crate::engine::live::Live`]) and the shared
//! [`Recorder`], so a call never waits for a tick. Changes go to the runner as
//! [`crate::runner::Command`]s, applied between ticks and recorded naming the caller.
//!
//! # Layout
//! - [`settings`]: the `control:` configuration section;
//! - [`auth`]: tokens and client certificates, read and write access;
//! - [`server`]: TLS, size caps, deadlines, health and reflection around the services;
//! - `service/`: one file per service;
//! - [`convert`], [`filter`]: records as messages, and which records a call wants.

pub mod auth;
pub mod convert;
pub mod filter;
pub mod server;
pub(crate) mod service;
pub mod settings;

use std::sync::Arc;

use tokio::sync::{Semaphore, mpsc};

pub use settings::ControlSettings;

use crate::engine::record::Recorder;
use crate::policy::Live;
use crate::policy::PolicyHost;
use crate::runner::Command;

/// What the adapters can say about themselves, for Status.
#[derive(Clone, Debug, Default)]
pub struct AdapterHealth {
    /// Kinds whose watch has not completed its first list.
    pub unsynced: Vec<String>,
    /// `served`, `absent` or `unknown`.
    pub metrics_api: String,
    pub unreadable_values: u64,
    pub last_unreadable: Option<String>,
}

/// Asks the adapters for their health.
pub type HealthProbe = Arc<dyn Fn() -> AdapterHealth + Send + Sync>;

/// Asks the leader election who holds the Lease.
pub type HolderProbe = Arc<dyn Fn() -> Option<String> + Send + Sync>;

/// Everything the services read and where they send changes.
pub struct ControlState {
    pub settings: ControlSettings,
    pub credentials: auth::Credentials,
    pub recorder: Recorder,
    pub live: Arc<Live>,
    pub commands: mpsc::Sender<Command>,
    /// Loads uploaded and reloaded plugins, and simulations' policies.
    pub host: PolicyHost,
    pub health: HealthProbe,
    /// This replica's Lease identity, and whether replicas elect a leader.
    pub identity: String,
    pub election: bool,
    /// Who holds the Lease, with election.
    pub holder: Option<HolderProbe>,
    /// What the daemon runs against, for Status.
    pub source: String,
    pub(crate) simulations: Arc<Semaphore>,
    /// Set when the server stops: open Watch streams end.
    pub(crate) stopping: tokio::sync::watch::Sender<bool>,
}

impl ControlState {
    pub fn new(
        settings: ControlSettings,
        credentials: auth::Credentials,
        recorder: Recorder,
        live: Arc<Live>,
        commands: mpsc::Sender<Command>,
        host: PolicyHost,
        health: HealthProbe,
    ) -> Self {
        let simulations = Arc::new(Semaphore::new(settings.max_concurrent_simulations));
        ControlState {
            settings,
            credentials,
            recorder,
            live,
            commands,
            host,
            health,
            identity: crate::engine::HOST.into(),
            election: false,
            holder: None,
            source: "kubernetes+aws".into(),
            simulations,
            stopping: tokio::sync::watch::channel(false).0,
        }
    }
}
