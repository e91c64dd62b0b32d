//! A policy that proposes exactly the decisions its settings list, on every tick (or only on
//! the first `ticks` ticks). Guardrail tests use it to ask for unsafe things verbatim.

use ballast_sdk::prelude::*;
use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default, rename_all = "kebab-case")]
pub struct Settings {
    pub decisions: Vec<Decision>,
    /// Propose only on this many evaluations; none means always.
    pub ticks: Option<u32>,
}

pub struct Scripted;

impl Policy for Scripted {
    type Settings = Settings;
    type State = u32;

    fn evaluate(_: &dyn Snapshot, settings: &Settings, evaluations: &mut u32) -> Result<Vec<Decision>, String> {
        *evaluations += 1;
        if settings.ticks.is_some_and(|t| *evaluations > t) {
            return Ok(Vec::new());
        }
        Ok(settings.decisions.clone())
    }
}

ballast_sdk::export_policy!(Scripted);
