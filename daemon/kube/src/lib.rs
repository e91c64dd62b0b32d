//! The Kubernetes adapter: the engine's [`Cluster`](ballast_engine::Cluster) over a real API
//! server.
//!
//! - [`watch`]: kube-runtime watchers for pods, nodes, workload owners, budgets, claims,
//!   CronJobs and HorizontalPodAutoscalers, folded into [`store`] one event at a time;
//! - [`autoscaler`]: an autoscaler's bounds, as the snapshot serves them (a CronJob's
//!   schedule is read by [`ballast_engine::cron`]);
//! - [`metrics`]: usage from metrics.k8s.io, when served;
//! - [`convert`]: Kubernetes objects to the engine's views ([`per_node`]: a workload's pods
//!   per node, from its anti-affinity; [`spread`]: how far they may lean to one zone or node);
//! - [`actions`]: cordon, eviction, placement patches and Events;
//! - [`leader`]: Lease-based leader election, so only one replica acts;
//! - [`handover`]: what the leader leaves for the next one, in a ConfigMap beside the Lease;
//! - [`rbac`]: the API access all of this needs (what the chart grants).
//!
//! An observation reads the cache and never the API, so a tick costs the same at any
//! cluster size whatever the API server's latency; pending pods reach the cache as soon as
//! their watch event arrives.

pub mod actions;
pub mod affinity;
pub mod autoscaler;
pub mod capacity_buffer;
pub mod convert;
pub mod handover;
pub mod leader;
pub mod metrics;
pub mod per_node;
mod pod_index;
pub mod rbac;
pub mod settings;
pub mod spread;
pub mod store;
pub mod volumes;
pub mod watch;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use kube::Client;
use kube::runtime::events::{Recorder, Reporter};
use tokio::task::JoinHandle;

pub use handover::ConfigMapHandover;
pub use leader::{Elector, Leadership};
pub use metrics::MetricsStatus;
pub use settings::{KubeSettings, LeaderSettings};
use store::ClusterStore;
use watch::Feed;

/// The Kubernetes adapter. Clones share one cache; the watches stop when the last clone is
/// dropped.
#[derive(Clone)]
pub struct KubeCluster {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    /// Without the client's own retries of 429: an eviction a PodDisruptionBudget refuses
    /// must come back at once (the engine retries on its next tick), not after minutes of
    /// exponential back-off inside one call.
    direct: Client,
    settings: Arc<KubeSettings>,
    feed: Arc<Feed>,
    metrics: Arc<Mutex<MetricsStatus>>,
    recorder: Recorder,
    evictions: Evictions,
    /// Whether the log has said that CapacityBuffer status may not be written (once).
    buffer_status_refused: std::sync::atomic::AtomicBool,
    tasks: Vec<JoinHandle<()>>,
}

/// Eviction requests so far, by how the API answered.
#[derive(Debug, Default)]
pub(crate) struct Evictions {
    pub evicted: AtomicU64,
    pub gone: AtomicU64,
    /// Refused by a PodDisruptionBudget.
    pub blocked: AtomicU64,
    pub failed: AtomicU64,
}

/// A snapshot of [`Evictions`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvictionCounts {
    pub evicted: u64,
    pub gone: u64,
    pub blocked: u64,
    pub failed: u64,
}

impl Drop for Inner {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// What the adapter can say about itself, for status and readiness.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KubeStatus {
    /// Kinds whose first list has not completed; observations fail until it is empty.
    pub unsynced: Vec<&'static str>,
    pub metrics: MetricsStatus,
    pub events_applied: u64,
    pub watch_errors: u64,
    pub pods: usize,
    /// Values from the API that could not be read (their objects are treated as unknown).
    pub unreadable_values: u64,
    /// The most recent, naming object, field and value.
    pub last_unreadable: Option<String>,
    pub evictions: EvictionCounts,
}

impl KubeCluster {
    /// Starts the watches and the usage poll. Returns at once; [`KubeCluster::synced`]
    /// waits for the caches.
    pub fn start(config: kube::Config, settings: KubeSettings) -> Result<Self, kube::Error> {
        install_crypto();
        let client = Client::try_from(config.clone())?;
        let mut direct = config;
        direct.default_retry = false;
        let direct = Client::try_from(direct)?;
        let settings = Arc::new(settings);
        let feed = Arc::new(Feed {
            store: ClusterStore::new(settings.clone()).into(),
            arrivals: tokio::sync::watch::channel(0).0,
            events: 0.into(),
            errors: 0.into(),
        });
        let metrics = Arc::new(Mutex::new(MetricsStatus::Unknown));
        let mut tasks = watch::spawn_all(&client, &feed);
        tasks.push(tokio::spawn(metrics::poll(
            client.clone(),
            feed.clone(),
            metrics.clone(),
            settings.metrics_interval,
        )));
        let reporter = Reporter { controller: settings.reporter.clone(), instance: std::env::var("POD_NAME").ok() };
        let recorder = Recorder::new(client.clone(), reporter);
        Ok(KubeCluster {
            inner: Arc::new(Inner {
                client,
                direct,
                settings,
                feed,
                metrics,
                recorder,
                evictions: Evictions::default(),
                buffer_status_refused: false.into(),
                tasks,
            }),
        })
    }

    /// The client without automatic retries, for calls whose refusal is an answer.
    pub(crate) fn direct(&self) -> &Client {
        &self.inner.direct
    }

    pub fn client(&self) -> &Client {
        &self.inner.client
    }

    pub fn settings(&self) -> &KubeSettings {
        &self.inner.settings
    }

    /// Counts pods newly waiting for capacity; changes when one arrives.
    pub fn arrivals(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.feed.arrivals.subscribe()
    }

    pub fn status(&self) -> KubeStatus {
        let feed = &self.inner.feed;
        let store = feed.read();
        KubeStatus {
            unsynced: store.unsynced(),
            metrics: self.inner.metrics.lock().map(|m| m.clone()).unwrap_or(MetricsStatus::Unknown),
            events_applied: feed.events.load(Ordering::Relaxed),
            watch_errors: feed.errors.load(Ordering::Relaxed),
            pods: store.pod_count(),
            unreadable_values: store.unreadable.count(),
            last_unreadable: store.unreadable.last(),
            evictions: self.eviction_counts(),
        }
    }

    fn eviction_counts(&self) -> EvictionCounts {
        let e = &self.inner.evictions;
        EvictionCounts {
            evicted: e.evicted.load(Ordering::Relaxed),
            gone: e.gone.load(Ordering::Relaxed),
            blocked: e.blocked.load(Ordering::Relaxed),
            failed: e.failed.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn evictions(&self) -> &Evictions {
        &self.inner.evictions
    }

    /// Waits until every watch has completed its first list.
    pub async fn synced(&self) {
        while !self.inner.feed.read().unsynced().is_empty() {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
}

/// Installs aws-lc-rs as the process's rustls crypto provider, unless one is set. rustls
/// refuses to pick one when more than one is compiled in (kube and the AWS SDK can each bring
/// their own), and every client then fails at its first connection.
fn install_crypto() {
    // An error only means a provider was installed already, which is what we want.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}
