//! What `expiry` is told: how old a node may grow, how many rotate at once, how long a
//! successor may take, and in which hours rotations begin.

use ballast_sdk::hours::Window;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default, rename_all = "kebab-case")]
pub struct Settings {
    /// A node older than this is rotated (Karpenter's `expireAfter`, 720 h by default).
    pub expire_after_seconds: u64,
    /// Rotations under way at once, across the cluster.
    pub max_at_once: u32,
    /// A successor not Ready by then is waited for no longer: the old node is removed
    /// outright.
    pub successor_wait_seconds: u64,
    /// Rotations begin only within these hours (UTC; `from`, `to`, optional `days`), a
    /// maintenance window; empty: at any time. One begun goes on past the window's end.
    pub hours: Vec<Window>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings { expire_after_seconds: 720 * 3600, max_at_once: 1, successor_wait_seconds: 900, hours: Vec::new() }
    }
}

impl Settings {
    pub fn validate(&self) -> Result<(), String> {
        if self.expire_after_seconds == 0 {
            return Err("expire-after-seconds must be more than 0, got 0".into());
        }
        if self.max_at_once == 0 {
            return Err("max-at-once must be at least 1, got 0".into());
        }
        for (i, window) in self.hours.iter().enumerate() {
            window.validate().map_err(|e| format!("hours[{i}].{e}"))?;
        }
        Ok(())
    }

    /// Whether a rotation may begin at `now_millis`.
    pub fn in_hours(&self, now_millis: u64) -> bool {
        self.hours.is_empty() || self.hours.iter().any(|w| w.contains(now_millis))
    }
}
