//! What the scenario's operator does during a run: each group's `replacements` (a rollout of
//! a new AMI rehearsed), asked of the engine when their time comes, as `ballast ctl replace
//! group` asks a running daemon.

use super::adapters::SimHandle;
use super::scenario::Scenario;
use crate::engine::control::Asked;
use crate::policy::{Change, Engine};

/// The replacements still to ask for, soonest last.
pub struct Operator {
    due: Vec<Replacement>,
}

struct Replacement {
    at_millis: u64,
    group: String,
    at_once: u32,
}

impl Operator {
    pub fn new(scenario: &Scenario) -> Self {
        let mut due: Vec<Replacement> = scenario
            .node_groups
            .iter()
            .flat_map(|g| {
                g.replacements.iter().map(|r| Replacement {
                    at_millis: r.at.as_millis() as u64,
                    group: g.id.clone(),
                    at_once: r.at_once,
                })
            })
            .collect();
        due.sort_by_key(|r| std::cmp::Reverse(r.at_millis));
        Operator { due }
    }

    /// Asks `engine` for each replacement due by `elapsed` (simulated millis since the start).
    /// One the engine refuses (the group is still being replaced) is logged and dropped.
    pub fn act(&mut self, engine: &mut Engine<SimHandle, SimHandle>, elapsed: u64, now: u64) {
        while self.due.last().is_some_and(|r| r.at_millis <= elapsed) {
            let Some(r) = self.due.pop() else { return };
            let asked = Asked {
                caller: "scenario".into(),
                reason: format!(
                    "replacements at {}",
                    crate::engine::duration::display(std::time::Duration::from_millis(r.at_millis))
                ),
            };
            let change = Change::ReplaceGroup { group: r.group.clone(), at_once: r.at_once, dry_run: false };
            if let Err(error) = engine.change(change, &asked, now) {
                tracing::warn!(group = %r.group, %error, "the scenario's replacement was refused");
            }
        }
    }
}
