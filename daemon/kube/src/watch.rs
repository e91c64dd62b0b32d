//! The watches that feed the [`ClusterStore`]: one kube-runtime watcher per kind, each a
//! stream folded into the store one event at a time.
//!
//! kube-runtime's watcher does the hard part: it lists, watches from the list's version,
//! resumes from the last version it saw after a dropped connection, relists on 410 Gone,
//! and backs off on errors. Relists are bracketed (`Init` .. `InitDone`) so objects deleted
//! while nobody watched are dropped from the store when the relist ends.

use std::fmt::Debug;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{Node, PersistentVolume, PersistentVolumeClaim, Pod, PodTemplate};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event, watcher};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use tokio::sync::watch as signal;
use tokio::task::JoinHandle;

use super::capacity_buffer::CapacityBufferObject;
use super::store::{self, ClusterStore, kinds};
use ballast_sdk::WorkloadKind;

/// Shared between the watch tasks and the adapter.
pub struct Feed {
    pub store: RwLock<ClusterStore>,
    /// Counts pods newly waiting for capacity; the daemon opens a tick batch on change.
    pub arrivals: signal::Sender<u64>,
    /// Watch events applied, for benchmarks and status.
    pub events: AtomicU64,
    /// Watch errors (each followed by a retry with back-off).
    pub errors: AtomicU64,
}

impl Feed {
    /// The store; a panic in a writer cannot leave it half-updated in a way a later event
    /// does not repair, so a poisoned lock is taken over.
    pub fn write(&self) -> std::sync::RwLockWriteGuard<'_, ClusterStore> {
        self.store.write().unwrap_or_else(|p| p.into_inner())
    }

    pub fn read(&self) -> std::sync::RwLockReadGuard<'_, ClusterStore> {
        self.store.read().unwrap_or_else(|p| p.into_inner())
    }
}

/// Runs one watch until its task is aborted. `apply` folds an object into the store and
/// says whether it is a pod newly waiting for capacity.
async fn run<K>(
    api: Api<K>,
    config: watcher::Config,
    feed: Arc<Feed>,
    kind: &'static str,
    apply: fn(&mut ClusterStore, &K) -> bool,
) where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let mut stream = watcher(api, config).default_backoff().boxed();
    while let Some(event) = stream.next().await {
        let arrived = match event {
            Ok(Event::Init) => {
                feed.write().relist_started(kind);
                false
            }
            Ok(Event::InitApply(object) | Event::Apply(object)) => {
                let arrived = apply(&mut feed.write(), &object);
                if arrived {
                    let (namespace, name) = store::key(object.meta());
                    tracing::debug!(pod = %format_args!("{namespace}/{name}"), "pending pod arrived");
                }
                arrived
            }
            Ok(Event::Delete(object)) => {
                feed.write().remove(kind, &store::key(object.meta()));
                false
            }
            Ok(Event::InitDone) => {
                feed.write().relist_done(kind);
                tracing::debug!(kind, "watch cache synced");
                false
            }
            Err(error) if kinds::OPTIONAL.contains(&kind) && refused(&error).is_some() => {
                // Not served (a CRD not installed) or not allowed: the usual state of an
                // optional kind, not a watch fault. Said once; the watch keeps asking.
                let first = feed.write().forgo(kind);
                match refused(&error) {
                    Some(403) if first => tracing::warn!(
                        kind,
                        %error,
                        "cannot list; policies see none until it can (the ClusterRole may predate it); \
                         the other watches go on, and this one keeps retrying"
                    ),
                    _ if first => tracing::info!(kind, "not served here; policies see none until it is"),
                    _ => tracing::debug!(kind, %error, "still cannot list"),
                }
                continue;
            }
            Err(error) => {
                feed.errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(kind, %error, "watch failed; retrying with back-off");
                continue;
            }
        };
        feed.events.fetch_add(1, Ordering::Relaxed);
        if arrived {
            feed.arrivals.send_modify(|n| *n += 1);
        }
    }
}

/// The status with which the API server refused the list outright: 403 forbidden (RBAC) or
/// 404 not served (an API version, a CRD not installed).
fn refused(error: &watcher::Error) -> Option<u16> {
    match error {
        watcher::Error::InitialListFailed(kube::Error::Api(status)) if matches!(status.code, 403 | 404) => {
            Some(status.code)
        }
        _ => None,
    }
}

fn replicas(n: Option<i32>) -> u32 {
    n.unwrap_or(1).max(0) as u32
}

/// A Job's pods now, as the simulator counts them: its parallelism until the Job controller
/// starts it, its active pods while it runs (`status.active`, left out when 0), none once it
/// completed or failed. A finished Job's object (and its parallelism) stays until it is
/// cleaned up; its pods do not.
fn job_replicas(job: &Job) -> u32 {
    let status = job.status.as_ref();
    let finished = status.is_some_and(|s| {
        s.completion_time.is_some()
            || (s.conditions.iter().flatten())
                .any(|c| matches!(c.type_.as_str(), "Complete" | "Failed") && c.status == "True")
    });
    match status {
        _ if finished => 0,
        Some(s) if s.start_time.is_some() => s.active.unwrap_or(0).max(0) as u32,
        _ => replicas(job.spec.as_ref().and_then(|s| s.parallelism)),
    }
}

/// Starts a watch for every kind the store needs, cluster-wide.
pub fn spawn_all(client: &Client, feed: &Arc<Feed>) -> Vec<JoinHandle<()>> {
    let config = watcher::Config::default();
    // Finished pods hold no capacity and can be many (Jobs): the server leaves them out.
    let live_pods = watcher::Config::default().fields("status.phase!=Succeeded,status.phase!=Failed");
    let c = client.clone();
    let f = feed.clone();
    vec![
        tokio::spawn(run(Api::<Pod>::all(c.clone()), live_pods, f.clone(), kinds::PODS, |s, p: &Pod| s.apply_pod(p))),
        tokio::spawn(run(Api::<Node>::all(c.clone()), config.clone(), f.clone(), kinds::NODES, |s, n: &Node| {
            s.apply_node(n);
            false
        })),
        tokio::spawn(run(
            Api::<ReplicaSet>::all(c.clone()),
            config.clone(),
            f.clone(),
            kinds::REPLICA_SETS,
            |s, r: &ReplicaSet| {
                let spec = r.spec.as_ref();
                s.apply_replica_set(
                    &r.metadata,
                    replicas(spec.and_then(|s| s.replicas)),
                    spec.and_then(|s| s.template.as_ref()),
                );
                false
            },
        )),
        tokio::spawn(run(
            Api::<Deployment>::all(c.clone()),
            config.clone(),
            f.clone(),
            kinds::DEPLOYMENTS,
            |s, d: &Deployment| {
                let spec = d.spec.as_ref();
                let n = replicas(spec.and_then(|s| s.replicas));
                s.apply_workload(
                    WorkloadKind::Deployment,
                    &d.metadata,
                    n,
                    spec.map(|s| &s.template),
                    &[],
                    Some(kinds::DEPLOYMENTS),
                );
                false
            },
        )),
        tokio::spawn(run(
            Api::<StatefulSet>::all(c.clone()),
            config.clone(),
            f.clone(),
            kinds::STATEFUL_SETS,
            |s, d: &StatefulSet| {
                let spec = d.spec.as_ref();
                let n = replicas(spec.and_then(|s| s.replicas));
                s.apply_workload(
                    WorkloadKind::StatefulSet,
                    &d.metadata,
                    n,
                    spec.map(|s| &s.template),
                    spec.and_then(|s| s.volume_claim_templates.as_deref()).unwrap_or_default(),
                    Some(kinds::STATEFUL_SETS),
                );
                false
            },
        )),
        tokio::spawn(run(
            Api::<DaemonSet>::all(c.clone()),
            config.clone(),
            f.clone(),
            kinds::DAEMON_SETS,
            |s, d: &DaemonSet| {
                let n = d.status.as_ref().map_or(0, |st| st.desired_number_scheduled.max(0) as u32);
                s.apply_workload(
                    WorkloadKind::DaemonSet,
                    &d.metadata,
                    n,
                    d.spec.as_ref().map(|s| &s.template),
                    &[],
                    Some(kinds::DAEMON_SETS),
                );
                false
            },
        )),
        tokio::spawn(run(Api::<Job>::all(c.clone()), config.clone(), f.clone(), kinds::JOBS, |s, j: &Job| {
            let template = j.spec.as_ref().map(|s| &s.template);
            s.apply_workload(WorkloadKind::Job, &j.metadata, job_replicas(j), template, &[], Some(kinds::JOBS));
            false
        })),
        tokio::spawn(run(Api::<CronJob>::all(c.clone()), config.clone(), f.clone(), kinds::CRON_JOBS, |s, j| {
            s.apply_cron_job(j);
            false
        })),
        tokio::spawn(run(
            Api::<HorizontalPodAutoscaler>::all(c.clone()),
            config.clone(),
            f.clone(),
            kinds::AUTOSCALERS,
            |s, a: &HorizontalPodAutoscaler| {
                s.apply_autoscaler(a);
                false
            },
        )),
        tokio::spawn(run(
            Api::<CapacityBufferObject>::all(c.clone()),
            config.clone(),
            f.clone(),
            kinds::CAPACITY_BUFFERS,
            |s, b: &CapacityBufferObject| {
                s.apply_capacity_buffer(b);
                false
            },
        )),
        tokio::spawn(run(
            Api::<PodTemplate>::all(c.clone()),
            config.clone(),
            f.clone(),
            kinds::POD_TEMPLATES,
            |s, t| {
                s.apply_pod_template(t);
                false
            },
        )),
        tokio::spawn(run(
            Api::<PodDisruptionBudget>::all(c.clone()),
            config.clone(),
            f.clone(),
            kinds::BUDGETS,
            |s, b: &PodDisruptionBudget| {
                s.apply_budget(b);
                false
            },
        )),
        tokio::spawn(run(
            Api::<PersistentVolumeClaim>::all(c.clone()),
            config.clone(),
            f.clone(),
            kinds::CLAIMS,
            |s, c: &PersistentVolumeClaim| {
                s.apply_claim(c);
                false
            },
        )),
        tokio::spawn(run(Api::<PersistentVolume>::all(c), config, f, kinds::VOLUMES, |s, v: &PersistentVolume| {
            s.apply_volume(v);
            false
        })),
    ]
}
