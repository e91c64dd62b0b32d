//! Write Ballast scaling and placement policies in Rust.
//!
//! A policy is a type that implements [`Policy`]. [`export_policy!`] turns it into a
//! WebAssembly component that Ballast loads; [`testing`] runs the same code natively, so the
//! logic is unit-tested with plain `cargo test` and no wasm involved.
//!
//! ```
//! use ballast_sdk::prelude::*;
//!
//! #[derive(Default)]
//! struct KeepOne;
//!
//! impl Policy for KeepOne {
//!     type Settings = ();
//!     type State = ();
//!
//!     fn evaluate(snapshot: &dyn Snapshot, _: &(), _: &mut ()) -> Result<Vec<Decision>, String> {
//!         Ok(snapshot
//!             .node_groups()
//!             .iter()
//!             .filter(|g| g.desired_size == 0)
//!             .map(|g| Decision::new(Action::ScaleTo { group: g.id.clone(), size: 1 }, "keep one node warm"))
//!             .collect())
//!     }
//! }
//!
//! ballast_sdk::export_policy!(KeepOne);
//! ```
//!
//! # Layout
//! - [`model`]: the snapshot and decision types (also the snapshot file format);
//! - [`snapshot`]: the [`Snapshot`] trait and its in-memory form;
//! - [`fargate`]: Fargate size rounding and prices;
//! - [`replicas`]: workloads' recent replica counts, kept in a policy's state;
//! - [`testing`]: the native harness and snapshot builders;
//! - [`log`]: logging through the host.

pub mod fargate;
pub mod hours;
pub mod log;
pub mod model;
pub mod quantity;
pub mod replicas;
pub mod snapshot;
pub mod testing;

#[cfg(target_arch = "wasm32")]
#[doc(hidden)]
pub mod guest;

use serde::Serialize;
use serde::de::DeserializeOwned;

pub use model::*;
pub use snapshot::{PodsSource, STUCK_AFTER_SECONDS, Snapshot, SnapshotData, growable, new_node_takes};

/// The version of the `ballast:policy` WIT package this SDK builds plugins against.
pub const INTERFACE_VERSION: &str = "0.1.16";

/// Everything a policy usually needs.
pub mod prelude {
    pub use crate::model::*;
    pub use crate::snapshot::{Snapshot, SnapshotData};
    pub use crate::{Policy, log};
}

/// A scaling or placement policy.
///
/// Ballast creates a fresh instance of the plugin for every evaluation, so a policy keeps
/// nothing in statics between calls: what it must remember (windows, averages, since-when a
/// node has been idle) goes in [`Policy::State`], which the host stores and hands back.
pub trait Policy {
    /// The plugin's settings, parsed from the JSON the operator configured. Use
    /// `#[serde(deny_unknown_fields)]` so that a misspelt setting is refused at load.
    type Settings: DeserializeOwned + Default;
    /// What the policy remembers between evaluations. Stored by the host as JSON.
    type State: Serialize + DeserializeOwned + Default;

    /// Checks settings beyond their shape, when the plugin is loaded. The message is shown to
    /// the operator, so name the setting and the value.
    fn validate(_settings: &Self::Settings) -> Result<(), String> {
        Ok(())
    }

    /// Proposes decisions for this snapshot. Ballast's guardrails decide what is done.
    fn evaluate(
        snapshot: &dyn Snapshot,
        settings: &Self::Settings,
        state: &mut Self::State,
    ) -> Result<Vec<Decision>, String>;
}

/// What one evaluation returns: decisions and the state to hand back next time.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    pub decisions: Vec<Decision>,
    pub state: Vec<u8>,
}

/// Parses settings JSON; empty or `null` means the defaults.
///
/// # Errors
/// The parser's message, after the path of the field it was reading
/// (`invalid settings: ramp.lead-seconds: invalid value: integer `-1`, expected u64 ...`);
/// a value serde_json alone would report by line and column only.
pub fn parse_settings<P: Policy>(json: &str) -> Result<P::Settings, String> {
    let json = json.trim();
    if json.is_empty() || json == "null" {
        return Ok(P::Settings::default());
    }
    let mut parser = serde_json::Deserializer::from_str(json);
    let settings = serde_path_to_error::deserialize(&mut parser).map_err(|e| match e.path().to_string().as_str() {
        "." => format!("invalid settings: {}", e.inner()),
        field => format!("invalid settings: {field}: {}", e.inner()),
    })?;
    parser.end().map_err(|e| format!("invalid settings: {e}"))?;
    Ok(settings)
}

/// Parses and validates settings, as the host asks at load.
///
/// # Errors
/// The message the operator sees.
pub fn validate_settings<P: Policy>(json: &str) -> Result<(), String> {
    P::validate(&parse_settings::<P>(json)?)
}

/// Runs one evaluation the way the host does: settings parsed, previous state restored,
/// new state serialised. Shared by the wasm glue and [`testing`].
///
/// # Errors
/// Bad settings, or the policy's own error.
pub fn run<P: Policy>(snapshot: &dyn Snapshot, settings_json: &str, state: Option<&[u8]>) -> Result<Outcome, String> {
    let settings = parse_settings::<P>(settings_json)?;
    let mut state: P::State = match state {
        Some(bytes) => serde_json::from_slice(bytes).unwrap_or_else(|e| {
            log::warn(&format!("previous state unreadable ({e}); starting afresh"));
            P::State::default()
        }),
        None => P::State::default(),
    };
    let decisions = P::evaluate(snapshot, &settings, &mut state)?;
    let state = serde_json::to_vec(&state).map_err(|e| format!("state not serialisable: {e}"))?;
    Ok(Outcome { decisions, state })
}

/// Exports a [`Policy`] as the plugin's implementation of the `ballast:policy` world.
///
/// Use it once, at the crate root of a `cdylib` built for `wasm32-wasip2`. On other targets it
/// expands to nothing, so the same crate also builds natively for tests.
// rustfmt does not reach a stable layout for this body (it flips the closing brace each run).
#[rustfmt::skip]
#[macro_export]
macro_rules! export_policy {
    ($policy:ty) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            struct BallastPolicyExport;

            impl $crate::guest::bindings::exports::ballast::policy::policy::Guest for BallastPolicyExport {
                fn validate_settings(
                    settings: ::std::string::String,
                ) -> ::std::result::Result<(), ::std::string::String> {
                    $crate::validate_settings::<$policy>(&settings)
                }

                fn evaluate(
                    snapshot: $crate::guest::SnapshotHandle<'_>,
                ) -> ::std::result::Result<$crate::guest::Evaluation, ::std::string::String> {
                    $crate::guest::evaluate::<$policy>(snapshot)
                }
            }

            $crate::guest::bindings::export!(BallastPolicyExport with_types_in $crate::guest::bindings);
        };
    };
}
