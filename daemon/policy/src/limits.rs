//! Per-plugin limits: how long a call may run, how much memory and fuel it may use, and how
//! much it may return and log.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Limits applied to every call into one plugin. Every field has a default, so a config
/// names only what it changes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default, rename_all = "kebab-case")]
pub struct PluginLimits {
    /// Wall-clock deadline for one call (instantiation plus evaluation), in milliseconds.
    /// Enforced by epoch interruption: a plugin past it is stopped within one epoch tick.
    pub deadline_ms: u64,
    /// Linear memory the plugin may hold, summed over its memories, in MiB.
    pub memory_mib: u64,
    /// Fuel (roughly, wasm instructions) per call in deterministic mode.
    pub fuel: u64,
    /// Largest output accepted: decisions and reasons plus returned state, in KiB.
    pub max_output_kib: u64,
    /// Most decisions one evaluation may propose.
    pub max_decisions: usize,
    /// Log lines kept per call; further lines are dropped and counted.
    pub max_log_lines: usize,
}

impl Default for PluginLimits {
    fn default() -> Self {
        PluginLimits {
            deadline_ms: 500,
            memory_mib: 256,
            fuel: 5_000_000_000,
            max_output_kib: 2048,
            max_decisions: 10_000,
            max_log_lines: 100,
        }
    }
}

impl PluginLimits {
    pub fn deadline(&self) -> Duration {
        Duration::from_millis(self.deadline_ms)
    }

    pub fn memory_bytes(&self) -> usize {
        usize::try_from(self.memory_mib.saturating_mul(1 << 20)).unwrap_or(usize::MAX)
    }

    pub fn max_output_bytes(&self) -> usize {
        usize::try_from(self.max_output_kib.saturating_mul(1024)).unwrap_or(usize::MAX)
    }

    /// Checks the limits make sense, naming the field and value.
    ///
    /// # Errors
    /// A message such as `deadline-ms must be between 1 and 60000, got 0`.
    pub fn validate(&self, host_memory_mib: u64) -> Result<(), String> {
        if !(1..=60_000).contains(&self.deadline_ms) {
            return Err(format!("deadline-ms must be between 1 and 60000, got {}", self.deadline_ms));
        }
        if self.memory_mib == 0 || self.memory_mib > host_memory_mib {
            return Err(format!(
                "memory-mib must be between 1 and the host's max-memory-mib ({host_memory_mib}), got {}",
                self.memory_mib
            ));
        }
        if self.fuel == 0 {
            return Err("fuel must be positive, got 0".to_string());
        }
        if self.max_output_kib == 0 {
            return Err("max-output-kib must be positive, got 0".to_string());
        }
        Ok(())
    }
}
