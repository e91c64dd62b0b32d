//! Disruption windows: scheduled limits on how many nodes may be leaving at once, as
//! Karpenter's scheduled disruption budgets (`nodes`, `schedule`, `duration`): "none during
//! business hours", "at most 2 during the nightly batch".
//!
//! A window opens each time its cron schedule fires (UTC) and stays open for its duration.
//! While one is open, voluntary removals (what plugins propose, and scale-downs turned into
//! drains) are held to its limit, every node counted, empty ones too: a window is a promise
//! about nodes, not about pods. When several are open the smallest limit holds, and the
//! cluster-wide budget keeps holding beside them. A window that lists `reasons` holds only
//! removals for those (Karpenter's budget `reasons`): `[drift]` open from 06:00 for 20 hours
//! with `nodes: 0` lets drifted nodes go only at night, and consolidation any time.
//!
//! # Caveats
//! A window does not hold what is not voluntary: a spot node warned of its interruption, a
//! node replaced for being unready, a drain already under way when the window opens.

use std::time::Duration;

use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use crate::cron::Schedule;
use crate::duration;

/// One scheduled limit.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct DisruptionWindow {
    /// When the window opens: five-field cron, UTC.
    pub schedule: CronSchedule,
    /// How long it stays open after each firing.
    #[serde(with = "duration")]
    pub duration: Duration,
    /// How many nodes may be leaving while it is open: a count (`0` removes nothing) or a
    /// percentage of the cluster's EC2 nodes (`"20%"`, rounded up as Karpenter rounds).
    pub nodes: NodeLimit,
    /// The removals it holds; every voluntary one when empty. Nodes leaving for any reason
    /// count against its limit.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<DisruptionReason>,
}

/// Why a node is removed, as a disruption window may name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DisruptionReason {
    /// Proposed by a policy: consolidation, a scale-down, a replacement by a cheaper node.
    Policies,
    /// Drift replacement (`guardrails.drift.replace`).
    Drift,
    /// A group replaced node by node (`ballast ctl replace group`).
    GroupReplacement,
}

/// A cron schedule as written, parsed once when the configuration is read.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CronSchedule {
    text: String,
    parsed: Schedule,
}

impl TryFrom<String> for CronSchedule {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        let parsed = Schedule::parse(&text).map_err(|e| format!("`{text}`: {e}"))?;
        if parsed.next_after(Timestamp::UNIX_EPOCH, &TimeZone::UTC).is_none() {
            return Err(format!("`{text}` never fires"));
        }
        Ok(CronSchedule { text, parsed })
    }
}

impl From<CronSchedule> for String {
    fn from(schedule: CronSchedule) -> String {
        schedule.text
    }
}

impl CronSchedule {
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl DisruptionWindow {
    /// Whether it holds removals for `reason`.
    pub fn holds(&self, reason: DisruptionReason) -> bool {
        self.reasons.is_empty() || self.reasons.contains(&reason)
    }

    /// When the window last opened, if it is open at `now_millis` (its earliest firing
    /// within its duration).
    pub fn open_since(&self, now_millis: u64) -> Option<u64> {
        let now = Timestamp::from_millisecond(i64::try_from(now_millis).ok()?).ok()?;
        let span = SignedDuration::try_from(self.duration).ok()?;
        let opened = self.schedule.parsed.fired_within(now, span, &TimeZone::UTC)?;
        u64::try_from(opened.as_millisecond()).ok()
    }
}

/// A window's limit: a count of nodes or a percentage of them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum NodeLimit {
    Count(u32),
    Percent(f64),
}

impl NodeLimit {
    /// How many of `nodes` may be leaving.
    pub fn allowed(self, nodes: usize) -> usize {
        match self {
            NodeLimit::Count(n) => n as usize,
            NodeLimit::Percent(p) => (nodes as f64 * p / 100.0).ceil() as usize,
        }
    }
}

impl std::fmt::Display for NodeLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NodeLimit::Count(n) => write!(f, "{n}"),
            NodeLimit::Percent(p) => write!(f, "{p}%"),
        }
    }
}

impl std::str::FromStr for NodeLimit {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let unreadable = || format!("`{text}` is neither a count of nodes nor a percentage such as `20%`");
        match text.trim().strip_suffix('%') {
            Some(percent) => {
                let p: f64 = percent.trim().parse().map_err(|_| unreadable())?;
                if !(0.0..=100.0).contains(&p) {
                    return Err(format!("`{text}`: a percentage must be in [0, 100]"));
                }
                Ok(NodeLimit::Percent(p))
            }
            None => text.trim().parse().map(NodeLimit::Count).map_err(|_| unreadable()),
        }
    }
}

impl Serialize for NodeLimit {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            NodeLimit::Count(n) => s.serialize_u32(*n),
            NodeLimit::Percent(_) => s.serialize_str(&self.to_string()),
        }
    }
}

impl<'de> Deserialize<'de> for NodeLimit {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Written {
            Whole(i64),
            Number(f64),
            Text(String),
        }
        let text = match Written::deserialize(d)
            .map_err(|_| serde::de::Error::custom("must be a count of nodes or a percentage such as \"20%\""))?
        {
            Written::Whole(n) => n.to_string(),
            Written::Number(n) => n.to_string(),
            Written::Text(text) => text,
        };
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// The open window with the smallest limit at one instant.
#[derive(Clone, Debug, PartialEq)]
pub struct OpenWindow<'a> {
    pub window: &'a DisruptionWindow,
    pub allowed: usize,
    /// The EC2 nodes a percentage is of.
    pub nodes: usize,
    /// When it opened (its earliest firing within its duration), in milliseconds.
    pub since_millis: u64,
}

impl OpenWindow<'_> {
    /// What a refusal says: which window, since when, and its limit.
    pub fn describe(&self, leaving: usize) -> String {
        let since = i64::try_from(self.since_millis)
            .ok()
            .and_then(|ms| Timestamp::from_millisecond(ms).ok())
            .map_or_else(|| format!("{} ms", self.since_millis), |t| t.to_string());
        let of = match self.window.nodes {
            NodeLimit::Count(_) => String::new(),
            NodeLimit::Percent(p) => format!(" ({p}% of {})", self.nodes),
        };
        format!(
            "disruption window `{}` ({}, UTC) open since {since} allows {} node(s) leaving{of}, {leaving} already are",
            self.window.schedule.as_str(),
            duration::display(self.window.duration),
            self.allowed,
        )
    }
}

/// The most restrictive of `windows` holding removals for `reason` open at `now_millis`, for
/// a cluster of `nodes` EC2 nodes; none when all are shut.
pub fn most_restrictive(
    windows: &[DisruptionWindow],
    reason: DisruptionReason,
    now_millis: u64,
    nodes: usize,
) -> Option<OpenWindow<'_>> {
    windows
        .iter()
        .filter(|window| window.holds(reason))
        .filter_map(|window| {
            let since_millis = window.open_since(now_millis)?;
            Some(OpenWindow { window, allowed: window.nodes.allowed(nodes), nodes, since_millis })
        })
        .min_by_key(|open| open.allowed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(yaml: &str) -> Result<DisruptionWindow, String> {
        serde_yaml::from_str(yaml).map_err(|e| e.to_string())
    }

    fn millis(at: &str) -> u64 {
        at.parse::<Timestamp>().unwrap().as_millisecond() as u64
    }

    #[test]
    fn reads_counts_and_percentages_and_names_what_does_not_read() {
        let w = window("{schedule: '0 9 * * mon-fri', duration: 8h, nodes: 0}").unwrap();
        assert_eq!(
            (w.nodes, w.duration, w.schedule.as_str()),
            (NodeLimit::Count(0), Duration::from_secs(28_800), "0 9 * * mon-fri")
        );
        assert_eq!(window("{schedule: '@daily', duration: 1h, nodes: '20%'}").unwrap().nodes, NodeLimit::Percent(20.0));
        assert_eq!(window("{schedule: '@daily', duration: 1h, nodes: '3'}").unwrap().nodes, NodeLimit::Count(3));
        let bad_schedule = window("{schedule: '0 25 * * *', duration: 1h, nodes: 0}").unwrap_err();
        assert!(bad_schedule.contains("`0 25 * * *`: hour: 25 is outside 0-23"), "{bad_schedule}");
        let never = window("{schedule: '0 0 30 2 *', duration: 1h, nodes: 0}").unwrap_err();
        assert!(never.contains("`0 0 30 2 *` never fires"), "{never}");
        let bad_nodes = window("{schedule: '@daily', duration: 1h, nodes: 'half'}").unwrap_err();
        assert!(bad_nodes.contains("`half` is neither a count of nodes nor a percentage"), "{bad_nodes}");
        let over = window("{schedule: '@daily', duration: 1h, nodes: '120%'}").unwrap_err();
        assert!(over.contains("`120%`: a percentage must be in [0, 100]"), "{over}");
        let negative = window("{schedule: '@daily', duration: 1h, nodes: -1}").unwrap_err();
        assert!(negative.contains("`-1` is neither a count of nodes nor a percentage"), "{negative}");
        let fraction = window("{schedule: '@daily', duration: 1h, nodes: 2.5}").unwrap_err();
        assert!(fraction.contains("`2.5` is neither"), "{fraction}");
        assert_eq!(window("{schedule: '@daily', duration: 1h, nodes: 4}").unwrap().nodes, NodeLimit::Count(4));
    }

    #[test]
    fn writes_back_what_it_read() {
        let w = window("{schedule: '0 9 * * mon-fri', duration: 8h, nodes: '25%'}").unwrap();
        let again: DisruptionWindow = serde_yaml::from_str(&serde_yaml::to_string(&w).unwrap()).unwrap();
        assert_eq!(again, w);
    }

    #[test]
    fn the_smallest_open_limit_holds_and_a_percentage_rounds_up() {
        let windows = vec![
            window("{schedule: '0 9 * * mon-fri', duration: 8h, nodes: '25%'}").unwrap(),
            window("{schedule: '0 12 * * *', duration: 1h, nodes: 1}").unwrap(),
        ];
        let friday =
            |at: &str| most_restrictive(&windows, DisruptionReason::Policies, millis(&format!("2026-11-27T{at}Z")), 10);
        assert_eq!(friday("08:00:00"), None, "both shut");
        let morning = friday("10:00:00").unwrap();
        assert_eq!((morning.allowed, morning.since_millis), (3, millis("2026-11-27T09:00:00Z")), "25% of 10 is 2.5: 3");
        assert!(
            morning.describe(0).contains("allows 3 node(s) leaving (25% of 10), 0 already are"),
            "{}",
            morning.describe(0)
        );
        assert_eq!(friday("12:30:00").unwrap().allowed, 1, "lunch is stricter");
        assert_eq!(friday("17:00:00"), None);
        let saturday_noon =
            most_restrictive(&windows, DisruptionReason::Policies, millis("2026-11-28T12:10:00Z"), 10).unwrap();
        assert_eq!(saturday_noon.allowed, 1);
        assert!(
            saturday_noon.describe(1).contains(
                "`0 12 * * *` (1h, UTC) open since 2026-11-28T12:00:00Z allows 1 node(s) leaving, 1 already are"
            ),
            "{}",
            saturday_noon.describe(1)
        );
    }

    #[test]
    fn a_window_that_lists_reasons_holds_only_those_removals() {
        let windows = vec![window("{schedule: '0 6 * * *', duration: 20h, nodes: 0, reasons: [drift]}").unwrap()];
        let at = millis("2026-11-27T12:00:00Z");
        assert_eq!(most_restrictive(&windows, DisruptionReason::Drift, at, 10).map(|w| w.allowed), Some(0));
        assert_eq!(most_restrictive(&windows, DisruptionReason::Policies, at, 10), None, "consolidation goes on");
        assert_eq!(most_restrictive(&windows, DisruptionReason::GroupReplacement, at, 10), None);
        assert_eq!(most_restrictive(&windows, DisruptionReason::Drift, millis("2026-11-27T03:00:00Z"), 10), None);
        let every = window("{schedule: '@daily', duration: 1h, nodes: 0}").unwrap();
        assert!(every.holds(DisruptionReason::Drift) && every.holds(DisruptionReason::Policies), "none listed: all");
        let bad = window("{schedule: '@daily', duration: 1h, nodes: 0, reasons: [drifted]}").unwrap_err();
        assert!(bad.contains("unknown variant `drifted`") && bad.contains("`drift`"), "{bad}");
    }
}
