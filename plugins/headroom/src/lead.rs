//! How far ahead room is asked for. A node asked for too late leaves pods waiting for the
//! rest of its boot; one asked for too early is paid for while it stands idle. A need's
//! `lead-seconds` is the least lead; the host times each group's deliveries (contract 0.1.10
//! `provisioning-times`), and where the groups that would hold the room delivered more
//! slowly lately, their lead (the second slowest of their recent deliveries) is the lead
//! instead (not with `fixed-lead`).

use ballast_sdk::prelude::*;

/// The lead for one evaluation: the snapshot whose provisioning times it reads.
pub struct Lead<'a> {
    snapshot: &'a dyn Snapshot,
    /// The longest lead of any group (0 with `fixed-lead`): a setting at least this long is
    /// the lead, whatever the groups.
    longest: u64,
}

impl<'a> Lead<'a> {
    pub fn new(snapshot: &'a dyn Snapshot, fixed: bool) -> Self {
        let leads = snapshot.provisioning_times().iter().filter_map(ProvisioningTime::lead_seconds);
        let longest = if fixed { 0 } else { leads.max().map_or(0, u64::from) };
        Lead { snapshot, longest }
    }

    /// The most [`Lead::seconds`] can say with `setting`, for any pods.
    pub fn at_most(&self, setting: u64) -> u64 {
        self.longest.max(setting)
    }

    /// Seconds ahead to ask for room the groups `admits` would hold: `setting`, or the
    /// longest of those groups' leads ([`ProvisioningTime::lead_seconds`]: the second
    /// slowest of their recent deliveries) if that is longer.
    ///
    /// # Guarantees
    /// Each recorded delivery is at least that node's boot, so where a group boots as it
    /// did lately all but its slowest nodes are Ready by the time the lead runs out.
    ///
    /// # Caveats
    /// A group faster than `setting` still gets `setting`: using its own, shorter lead
    /// saved a little and left pods waiting a little more, in as many of 300 generated
    /// scenarios as not (BENCHMARKS.md).
    pub fn seconds(&self, setting: u64, admits: impl Fn(&NodeGroup) -> bool) -> u64 {
        if self.longest <= setting {
            return setting;
        }
        (self.snapshot.node_groups().iter())
            .filter(|g| admits(g))
            .filter_map(|g| self.snapshot.provisioning_time_of(&g.id)?.lead_seconds())
            .map(u64::from)
            .fold(setting, u64::max)
    }
}
