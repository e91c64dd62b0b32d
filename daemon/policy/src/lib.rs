//! The policy plugin host: loads WebAssembly components that implement `ballast:policy`,
//! runs them sandboxed and bounded, and returns what they propose.
//!
//! # Layout
//! - [`host`]: the shared Wasmtime engine (pooling allocator, epochs, fuel) and linker;
//! - [`inspect`]: reads a component's interface version before compiling it;
//! - [`cache`]: compiled components by digest and engine configuration;
//! - [`plugin`]: a loaded plugin and one bounded call into it;
//! - `signature`: the exports type-checked against the contract at load;
//! - [`context`]: what a call's imports reach, and the memory and log meters;
//! - [`output`]: a plugin's stdout and stderr, captured into its log;
//! - [`input`]: the snapshot a call reads, converted only when a plugin reads it;
//! - [`validate`]: output size and sanity checks;
//! - [`chain`]: plugins in order, each seeing earlier proposals;
//! - [`saved`]: the policies' states on disk, taken back after a restart;
//! - [`limits`], [`error`]: per-plugin limits and what can go wrong.

pub mod bindings;
pub use ballast_component_cache as cache;
pub mod chain;
pub mod context;
mod convert;
pub mod error;
pub mod host;
pub mod input;
pub mod inspect;
pub mod limits;
pub mod output;
pub mod plugin;
pub mod saved;
mod signature;
pub mod validate;

pub use chain::{CallStats, ChainEntry, ChainOutcome, PluginMode, PolicyChain, Proposed};
pub use error::{CallError, LoadError};
pub use host::{HostConfig, PolicyHost};
pub use input::{EvaluationInput, SharedSnapshot};
pub use inspect::{ComponentInfo, HOST_INTERFACE_VERSION};
pub use limits::PluginLimits;
pub use plugin::{CallReport, Evaluated, Plugin, PluginSpec};

/// The engine as the daemon runs it: its policies are wasm plugins.
pub type Engine<C, P> = ballast_engine::Engine<C, P, PolicyChain>;
/// What that engine publishes.
pub type Live = ballast_engine::live::Live<ChainEntry>;
/// A change to that engine.
pub type Change = ballast_engine::control::Change<ChainEntry>;
