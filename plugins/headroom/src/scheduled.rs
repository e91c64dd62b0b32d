//! Scheduled runs: a CronJob's next run is known before any of its pods exist, so its room
//! is asked for `lead-seconds` before it is due, from its first run on (no bursts to learn).

use std::rc::Rc;

use ballast_sdk::prelude::*;
use serde::{Deserialize, Serialize};

use super::lead::Lead;
use super::recurring::clock;
use super::slots::Need;

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default, rename_all = "kebab-case")]
pub struct Scheduled {
    /// How long before a run is due its room is asked for, at least: longer where the
    /// groups that admit its pods delivered more slowly lately.
    pub lead_seconds: u64,
}

impl Default for Scheduled {
    fn default() -> Self {
        Scheduled { lead_seconds: 120 }
    }
}

impl Scheduled {
    pub fn validate(&self) -> Result<(), String> {
        if self.lead_seconds == 0 {
            return Err("lead-seconds: 0 asks for room when the run is already due".into());
        }
        Ok(())
    }

    /// The runs due within the lead time whose pods go to a node group, not yet due.
    pub fn due<'a>(&self, snapshot: &'a dyn Snapshot, now: u64, lead: &Lead) -> Vec<&'a ScheduledRun> {
        let ahead = |seconds: u64| now.saturating_add(seconds.saturating_mul(1000));
        // Runs further off than any lead are not weighed group by group.
        let near =
            |r: &ScheduledRun| now < r.due_at_millis && ahead(lead.at_most(self.lead_seconds)) >= r.due_at_millis;
        let within = |r: &ScheduledRun| ahead(lead.seconds(self.lead_seconds, |g| g.admits(r))) >= r.due_at_millis;
        (snapshot.scheduled_runs().iter()).filter(|r| !r.on_fargate && r.pods > 0 && near(r) && within(r)).collect()
    }
}

/// Room for all the pods of `run` in the groups that admit them, held until it is due.
pub fn need(run: &ScheduledRun) -> Need<'_> {
    Need {
        what: format!(
            "the run of {} due at {} ({} pods of {})",
            run.owner,
            clock(run.due_at_millis),
            run.pods,
            run.requests
        ),
        shape: Resources { pods: 1, ..run.requests },
        count: run.pods,
        admits: Rc::new(move |g: &NodeGroup| g.admits(run)),
        owner: Some(&run.owner),
        hold: true,
    }
}
