//! Leader election on a coordination.k8s.io Lease, so that of several replicas exactly one
//! acts while the others keep warm caches and take over when it goes.
//!
//! The rules are client-go's:
//! - a lease is free when it has no holder, or when its record has not changed for a whole
//!   lease duration *as measured on this replica's clock since it first saw that record*
//!   (never by comparing the holder's timestamps with ours, which would trust clock skew);
//! - every write carries the resourceVersion read, so two replicas racing for a free lease
//!   cannot both win;
//! - a leader that has not renewed for `renew-deadline` stops acting, and the deadline is
//!   shorter than the lease duration, so it has stopped before anyone else may start.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::PostParams;
use kube::{Api, Client};
use tokio::sync::watch;

use super::settings::LeaderSettings;

#[derive(Clone, Debug)]
struct State {
    /// Acting is allowed until then; `None` when not leading.
    until: Option<Instant>,
    /// Who held the Lease at the last read; `None` before it, or when nobody did.
    holder: Option<String>,
}

/// What one campaign round found.
struct Attempt {
    leading: bool,
    holder: Option<String>,
}

/// A view of this replica's leadership, cheap to clone and to ask.
#[derive(Clone, Debug)]
pub struct Leadership(watch::Receiver<State>);

impl Leadership {
    /// Leading, and the last renewal is recent enough to act on.
    pub fn is_leader(&self) -> bool {
        self.0.borrow().until.is_some_and(|until| Instant::now() < until)
    }

    /// The identity that held the Lease when this replica last read it (itself when it
    /// leads). `None` before the first read, when the Lease is free, and after shutdown.
    ///
    /// # Caveats
    /// As old as the last campaign round (`retry-period`): a leader that has just gone is
    /// still named until a standby reads the Lease again.
    pub fn holder(&self) -> Option<String> {
        self.0.borrow().holder.clone()
    }

    /// Waits until this replica leads.
    pub async fn acquired(&mut self) {
        while !self.is_leader() {
            if self.0.changed().await.is_err() {
                return;
            }
        }
    }
}

/// Campaigns for and holds the lease.
pub struct Elector {
    api: Api<Lease>,
    settings: LeaderSettings,
    identity: String,
    /// The record last seen, and when this replica first saw it.
    observed: Option<(String, Instant)>,
}

/// The lease record's fields that change on every renewal.
fn record(lease: &Lease) -> String {
    let spec = lease.spec.as_ref();
    format!(
        "{:?}/{:?}/{:?}",
        spec.and_then(|s| s.holder_identity.as_ref()),
        spec.and_then(|s| s.renew_time.as_ref()).map(|t| t.0),
        spec.and_then(|s| s.lease_transitions)
    )
}

impl Elector {
    /// `client` should not retry on its own (`default_retry: false`): a renewal retried
    /// with back-off would outlast the renew deadline, and the campaign retries anyway.
    ///
    /// # Errors
    /// Timings that would let a leader act after another took over, named with their values.
    pub fn new(client: Client, settings: LeaderSettings, identity: impl Into<String>) -> Result<Self, String> {
        settings.validate()?;
        let api = Api::namespaced(client, &settings.namespace);
        Ok(Elector { api, settings, identity: identity.into(), observed: None })
    }

    /// Runs the campaign until `shutdown` resolves, then gives the lease up so that another
    /// replica takes over at once rather than after the lease duration.
    pub fn spawn(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> (Leadership, tokio::task::JoinHandle<()>) {
        let (tx, rx) = watch::channel(State { until: None, holder: None });
        let task = tokio::spawn(self.run(tx, shutdown));
        (Leadership(rx), task)
    }

    async fn run(mut self, tx: watch::Sender<State>, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            let started = Instant::now();
            // One attempt may not outlast the retry period: a slow API server must not keep
            // a leader from noticing that its deadline passed.
            let attempt = tokio::time::timeout(self.settings.retry_period, self.try_acquire_or_renew()).await;
            let attempt = attempt.unwrap_or_else(|_| Err(kube::Error::Service("lease request timed out".into())));
            match attempt {
                Ok(Attempt { leading: true, holder }) => {
                    let was = tx.borrow().until.is_some();
                    tx.send_replace(State { until: Some(started + self.settings.renew_deadline), holder });
                    if !was {
                        tracing::info!(identity = %self.identity, lease = %self.settings.lease_name, "leading");
                    }
                }
                Ok(Attempt { leading: false, holder }) => {
                    if tx.borrow().until.is_some() {
                        tracing::warn!(identity = %self.identity, "lost the lease to another replica");
                    }
                    let holder = holder.or_else(|| tx.borrow().holder.clone());
                    tx.send_replace(State { until: None, holder });
                }
                // Leadership, if held, runs out at its deadline unless a retry renews it.
                Err(error) => tracing::warn!(identity = %self.identity, %error, "cannot renew or acquire the lease"),
            }
            tokio::select! {
                _ = &mut shutdown => break,
                _ = tokio::time::sleep(self.settings.retry_period) => {}
            }
        }
        let leading = tx.borrow().until.is_some();
        tx.send_replace(State { until: None, holder: None });
        if leading {
            self.release().await;
        }
    }

    fn now() -> MicroTime {
        MicroTime(Timestamp::now())
    }

    async fn try_acquire_or_renew(&mut self) -> Result<Attempt, kube::Error> {
        let me = || Some(self.identity.clone());
        let duration_secs = self.settings.lease_duration.as_secs().max(1) as i32;
        let existing = match self.api.get_opt(&self.settings.lease_name).await? {
            Some(lease) => lease,
            None => {
                let lease = Lease {
                    metadata: ObjectMeta { name: Some(self.settings.lease_name.clone()), ..Default::default() },
                    spec: Some(LeaseSpec {
                        holder_identity: Some(self.identity.clone()),
                        lease_duration_seconds: Some(duration_secs),
                        acquire_time: Some(Self::now()),
                        renew_time: Some(Self::now()),
                        lease_transitions: Some(0),
                        ..Default::default()
                    }),
                };
                // A 409 is another replica's create: who it is shows at the next read.
                return match self.api.create(&PostParams::default(), &lease).await {
                    Ok(_) => Ok(Attempt { leading: true, holder: me() }),
                    Err(kube::Error::Api(s)) if s.code == 409 => Ok(Attempt { leading: false, holder: None }),
                    Err(e) => Err(e),
                };
            }
        };
        let spec = existing.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.clone().unwrap_or_default();
        let seen = record(&existing);
        let now = Instant::now();
        let first_seen = match &self.observed {
            Some((r, at)) if *r == seen => *at,
            _ => {
                self.observed = Some((seen, now));
                now
            }
        };
        let held_for = Duration::from_secs(spec.lease_duration_seconds.unwrap_or(duration_secs).max(0) as u64);
        let mine = holder == self.identity;
        let free = holder.is_empty() || now.duration_since(first_seen) >= held_for;
        let read = (!holder.is_empty()).then(|| holder.clone());
        if !mine && !free {
            return Ok(Attempt { leading: false, holder: read });
        }
        let mut lease = existing;
        let spec = lease.spec.get_or_insert_with(Default::default);
        if !mine {
            spec.acquire_time = Some(Self::now());
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
            tracing::info!(identity = %self.identity, previous = %holder, "taking over the lease");
        }
        spec.holder_identity = Some(self.identity.clone());
        spec.lease_duration_seconds = Some(duration_secs);
        spec.renew_time = Some(Self::now());
        // The resourceVersion read travels with the write: a concurrent writer makes it 409.
        match self.api.replace(&self.settings.lease_name, &PostParams::default(), &lease).await {
            Ok(written) => {
                self.observed = Some((record(&written), Instant::now()));
                Ok(Attempt { leading: true, holder: me() })
            }
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(Attempt { leading: false, holder: read }),
            Err(e) => Err(e),
        }
    }

    /// Clears the holder so another replica need not wait out the lease.
    async fn release(&mut self) {
        let Ok(Some(mut lease)) = self.api.get_opt(&self.settings.lease_name).await else { return };
        let spec = lease.spec.get_or_insert_with(Default::default);
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return;
        }
        spec.holder_identity = None;
        match self.api.replace(&self.settings.lease_name, &PostParams::default(), &lease).await {
            Ok(_) => tracing::info!(identity = %self.identity, "lease released"),
            Err(error) => {
                tracing::warn!(%error, "cannot release the lease; another replica takes over when it expires")
            }
        }
    }
}
