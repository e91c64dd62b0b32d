//! `headroom`: spare room ahead of demand, so that pods start at once instead of waiting a
//! node's boot time. The feature users of Cluster Autoscaler (over-provisioning with pause
//! pods) and Karpenter keep asking for, without the pause pods.
//!
//! - **Reserves** (`reserves`): room for N pods of a given shape, always or on a schedule.
//! - **CapacityBuffers**: the cluster's CapacityBuffer objects (`autoscaling.x-k8s.io`, the
//!   resource Cluster Autoscaler and Karpenter share), as the host resolves them (contract
//!   0.1.11 `capacity-buffers`): each a reserve for its pods in the groups that admit them,
//!   so buffers written for either peer keep their room under Ballast.
//!   `ignore-capacity-buffers: true` leaves them to another autoscaler.
//! - **Recurring bursts** (`recurring`): a workload whose pending pods arrive in bursts at a
//!   steady period (a job fanning out every 15 minutes) is learnt from what the snapshots
//!   show, and room for its next burst is asked for `lead-seconds` before it is due, so the
//!   nodes are Ready when the pods arrive. The nodes cost about what they would have anyway:
//!   launched a boot time earlier, the burst finishes a boot time earlier. A burst the room
//!   took at once is never seen pending; it counts as arrived when its workload's replicas
//!   appear (even a little before it was due), or else at its due time, so the cadence holds
//!   and its room is not asked for twice; no room is asked for a burst once it is due (a
//!   late one is pending pods, scale-up's business). A period is confirmed by three bursts
//!   (two intervals that agree); `min-bursts: 2` guesses it from the first interval, for
//!   less waiting at the price of room bought once for nothing where bursts do not recur.
//! - **Scheduled runs** (`scheduled`): a CronJob's next run is known before its pods exist
//!   (contract 0.1.5 `scheduled-runs`), so room for all its pods is asked for a lead before
//!   it is due, from the first run on. A workload with a schedule is not also learnt
//!   as a recurring burst. Runs whose pods go to Fargate need no room.
//! - **Ramps** (`ramp`): a workload whose replica count has climbed step after step over the
//!   last `window-seconds` gets room for what the same rate adds in `lead-seconds`, while it
//!   is still climbing, so each wave of a scale-out does not wait a boot time of its own.
//!
//! Each need's `lead-seconds` is the least lead (`lead.rs`): where the groups that would
//! hold the room delivered more slowly lately, as the host timed it (contract 0.1.10
//! `provisioning-times`), the second slowest of their recent deliveries is the lead
//! instead, so a group that boots in three minutes gets its room three minutes ahead.
//! `fixed-lead: true` keeps `lead-seconds` always.
//!
//! A need for pods of a workload kept spread over zones (contract 0.1.13 `zone-spreads`) is
//! split over the zones as the scheduler will fill them, each part made in its own zone's
//! groups (see [`zones`]).
//!
//! Each need counts the slots its shape has in the free room of Ready schedulable nodes and
//! in nodes on their way, of the groups that admit it. Nodes earlier policies of the chain
//! asked for this tick are for pending pods, not spare: the need is added on top of them.
//! When short, it grows the group with the cheapest slot by whole nodes and puts what is left
//! over where it costs least in whole nodes (one pod is not worth a big node); when enough,
//! it proposes to hold a group it needs at its size, which `consolidation` honours.

mod lead;
mod ramp;
mod recurring;
mod scheduled;
mod slots;
mod zones;

use std::collections::BTreeMap;
use std::rc::Rc;

use ballast_sdk::prelude::*;
use serde::{Deserialize, Serialize};

pub use ballast_sdk::hours::Window;
use lead::Lead;
pub use ramp::Ramp;
pub use recurring::{Burst, Recurring};
pub use scheduled::Scheduled;
use slots::Need;

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default, rename_all = "kebab-case")]
pub struct Settings {
    pub reserves: Vec<Reserve>,
    /// Keep no room for the cluster's CapacityBuffers (another autoscaler keeps it).
    pub ignore_capacity_buffers: bool,
    /// Learn recurring bursts of pending pods and make room before the next one.
    pub recurring: Option<Recurring>,
    /// Make room ahead of workloads whose replica count is climbing.
    pub ramp: Option<Ramp>,
    /// Make room before each scheduled run (a CronJob's) is due.
    pub scheduled: Option<Scheduled>,
    /// Ask for room each need's `lead-seconds` ahead always, even where the groups that
    /// would hold it delivered more slowly lately (contract 0.1.10 `provisioning-times`).
    pub fixed_lead: bool,
}

/// Spare room for `count` pods of `cpu` / `memory`.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Reserve {
    pub count: u32,
    /// Per pod, e.g. `500m`.
    #[serde(with = "ballast_sdk::quantity::cpu")]
    pub cpu: u64,
    /// Per pod, e.g. `1Gi`.
    #[serde(with = "ballast_sdk::quantity::memory")]
    pub memory: u64,
    /// Only this group; default: every untainted Auto Scaling group.
    #[serde(default)]
    pub group: Option<String>,
    /// Only within these windows (UTC); default: always.
    #[serde(default)]
    pub schedule: Vec<Window>,
}

impl Reserve {
    fn need(&self) -> Need<'_> {
        Need {
            what: format!("{} pods of {}", self.count, self.shape()),
            shape: self.shape(),
            count: self.count,
            admits: Rc::new(move |g: &NodeGroup| match &self.group {
                Some(id) => &g.id == id,
                None => g.taints.is_empty(),
            }),
            owner: None,
            hold: true,
        }
    }

    fn shape(&self) -> Resources {
        Resources { cpu_millis: self.cpu, memory_bytes: self.memory, pods: 1, gpus: 0, ..Resources::ZERO }
    }
}

/// Room for a CapacityBuffer's pods in the groups that admit them, held while there is enough.
fn buffer_need(buffer: &CapacityBuffer) -> Need<'_> {
    Need {
        what: format!(
            "CapacityBuffer {}/{} ({} pods of {})",
            buffer.namespace, buffer.name, buffer.pods, buffer.requests
        ),
        shape: Resources { pods: 1, ..buffer.requests },
        count: buffer.pods,
        admits: Rc::new(move |g: &NodeGroup| g.admits(buffer)),
        owner: None,
        hold: true,
    }
}

/// What the policy remembers: the bursts seen per workload shape, and each workload's recent
/// replica counts.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct State {
    /// Flattened: a state saved before ramps existed reads as it was.
    #[serde(flatten)]
    pub bursts: recurring::Learnt,
    pub ramps: ramp::Climbs,
}

pub struct Headroom;

impl Policy for Headroom {
    type Settings = Settings;
    type State = State;

    fn validate(settings: &Settings) -> Result<(), String> {
        for (i, r) in settings.reserves.iter().enumerate() {
            if r.cpu == 0 && r.memory == 0 {
                return Err(format!("reserves[{i}]: a pod of 0 CPU and 0 memory needs no room"));
            }
            for (j, w) in r.schedule.iter().enumerate() {
                w.validate().map_err(|e| format!("reserves[{i}].schedule[{j}].{e}"))?;
            }
        }
        if let Some(r) = &settings.recurring {
            r.validate().map_err(|e| format!("recurring.{e}"))?;
        }
        if let Some(r) = &settings.ramp {
            r.validate().map_err(|e| format!("ramp.{e}"))?;
        }
        if let Some(s) = &settings.scheduled {
            s.validate().map_err(|e| format!("scheduled.{e}"))?;
        }
        Ok(())
    }

    fn evaluate(snapshot: &dyn Snapshot, settings: &Settings, state: &mut State) -> Result<Vec<Decision>, String> {
        let now = snapshot.taken_at_millis();
        let lead = Lead::new(snapshot, settings.fixed_lead);
        let (runs, scheduled): (Vec<&ScheduledRun>, Vec<&WorkloadRef>) = match &settings.scheduled {
            Some(s) => (s.due(snapshot, now, &lead), snapshot.scheduled_runs().iter().map(|r| &r.owner).collect()),
            None => (Vec::new(), Vec::new()),
        };
        let expected = match &settings.recurring {
            Some(recurring) => {
                state.bursts.observe(snapshot, now, recurring);
                state.bursts.expected(now, recurring, &scheduled, &lead)
            }
            None => Vec::new(),
        };
        let climbing = match &settings.ramp {
            Some(ramp) => {
                state.ramps.observe(snapshot, now, ramp);
                state.ramps.expected(snapshot, now, ramp, &lead)
            }
            None => Vec::new(),
        };
        let mut needs: Vec<Need> = settings
            .reserves
            .iter()
            .filter(|r| r.schedule.is_empty() || r.schedule.iter().any(|w| w.contains(now)))
            .map(Reserve::need)
            .collect();
        if !settings.ignore_capacity_buffers {
            needs.extend(snapshot.capacity_buffers().iter().filter(|b| b.pods > 0).map(buffer_need));
        }
        needs.extend(runs.into_iter().map(scheduled::need));
        needs.extend(expected.iter().map(recurring::Expected::need));
        needs.extend(climbing.iter().map(ramp::Expected::need));
        let needs: Vec<Need> = needs.into_iter().flat_map(|need| zones::split(snapshot, need)).collect();
        let mut targets: BTreeMap<String, (u32, String)> = BTreeMap::new();
        for need in &needs {
            for ask in slots::plan(snapshot, need, &targets) {
                targets.insert(ask.group, (ask.size, ask.why));
            }
        }
        Ok(targets
            .into_iter()
            .filter(|(group, (size, _))| keep(snapshot, group, *size, now))
            .map(|(group, (size, why))| Decision::new(Action::ScaleTo { group, size }, why))
            .collect())
    }
}

/// Whether to propose `group` at `size`: always a growth; a hold only where the host would
/// let the group shrink now. Within its cooldowns the host refuses removals there anyway, so
/// a hold would change nothing and only fill the journal.
fn keep(snapshot: &dyn Snapshot, group: &str, size: u32, now: u64) -> bool {
    let desired = snapshot.node_groups().iter().find(|g| g.id == group).map_or(0, |g| g.desired_size);
    size > desired || snapshot.cooldown_of(group).is_none_or(|c| c.may_shrink(now))
}

ballast_sdk::export_policy!(Headroom);
