//! CronJobs in the cache: each one's schedule and the pods a run starts, and the next run
//! of each, which policies read to have room ready before the run's pods exist.

use std::sync::atomic::{AtomicU64, Ordering};

use ballast_engine::ports::PodTemplate;
use ballast_sdk::{Placement, Resources, ScheduledRun, WorkloadKind, WorkloadRef};
use k8s_openapi::api::batch::v1::CronJob;

use super::{ClusterStore, convert, key, kinds};
use ballast_engine::cron::Schedule;

pub(super) struct CronEntry {
    schedule: Schedule,
    zone: jiff::tz::TimeZone,
    suspended: bool,
    /// Pods a run starts at once: its Job's parallelism.
    pods: u32,
    requests: Resources,
    template: PodTemplate,
    on_fargate: bool,
    /// The next run last worked out (millis; 0: not yet), reused until it has passed.
    next: AtomicU64,
}

impl CronEntry {
    fn next_after(&self, now_millis: u64) -> Option<u64> {
        let known = self.next.load(Ordering::Relaxed);
        if known > now_millis {
            return Some(known);
        }
        let now = jiff::Timestamp::from_millisecond(i64::try_from(now_millis).ok()?).ok()?;
        let next = u64::try_from(self.schedule.next_after(now, &self.zone)?.as_millisecond()).ok()?;
        self.next.store(next, Ordering::Relaxed);
        Some(next)
    }
}

impl ClusterStore {
    /// A CronJob: its schedule and the pods each run starts. One whose schedule, time zone
    /// or requests do not read is reported as unreadable and has no runs.
    pub fn apply_cron_job(&mut self, cron: &CronJob) {
        let key = key(&cron.metadata);
        self.seen(kinds::CRON_JOBS, &key);
        self.cron_jobs.remove(&key);
        let object = format!("CronJob {}/{}", key.0, key.1);
        let Some(spec) = cron.spec.as_ref() else { return };
        let schedule = match Schedule::parse(&spec.schedule) {
            Ok(schedule) => schedule,
            Err(error) => return self.unreadable.report(&object, "spec.schedule", &spec.schedule, &error),
        };
        let zone = match spec.time_zone.as_deref() {
            None | Some("UTC" | "Etc/UTC") => jiff::tz::TimeZone::UTC,
            Some(name) => match jiff::tz::TimeZone::get(name) {
                Ok(zone) => zone,
                Err(error) => return self.unreadable.report(&object, "spec.timeZone", name, &error.to_string()),
            },
        };
        let job = spec.job_template.spec.as_ref();
        let template = job.map(|j| j.template.clone()).unwrap_or_default();
        let pod_spec = template.spec.clone().unwrap_or_default();
        let requests = match convert::requests(&pod_spec) {
            Ok(requests) => requests,
            Err(bad) => return bad.under("spec.jobTemplate.spec.template").report_to(&self.unreadable, &object),
        };
        let meta = template.metadata.clone().unwrap_or_default();
        let entry = CronEntry {
            schedule,
            zone,
            suspended: spec.suspend == Some(true),
            pods: job.and_then(|j| j.parallelism).unwrap_or(1).max(0) as u32,
            requests,
            template: convert::template(&meta, &pod_spec),
            on_fargate: self.placement(&template, None) == Placement::Fargate,
            next: AtomicU64::new(0),
        };
        self.cron_jobs.insert(key, entry);
    }

    /// The next run of each CronJob not suspended, after `now_millis`.
    pub(super) fn scheduled_runs(&self, now_millis: u64) -> Vec<ScheduledRun> {
        self.cron_jobs
            .iter()
            .filter(|(_, c)| !c.suspended)
            .filter_map(|((namespace, name), c)| {
                Some(ScheduledRun {
                    owner: WorkloadRef { kind: WorkloadKind::Job, namespace: namespace.clone(), name: name.clone() },
                    due_at_millis: c.next_after(now_millis)?,
                    pods: c.pods,
                    requests: c.requests,
                    node_selector: c.template.node_selector.clone(),
                    affinity_keys: c.template.affinity_keys.clone(),
                    tolerations: c.template.tolerations.clone(),
                    on_fargate: c.on_fargate,
                })
            })
            .collect()
    }
}
