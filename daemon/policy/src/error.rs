//! What can go wrong loading or calling a plugin. Each variant is reported against the plugin
//! and never takes the daemon down.

use std::path::PathBuf;

use thiserror::Error;

/// Why a plugin could not be loaded.
#[derive(Debug, Error)]
pub enum LoadError {
    /// The file could not be read.
    #[error("plugin {plugin}: cannot read {path}: {source}")]
    Read {
        plugin: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The bytes are not a WebAssembly component.
    #[error("plugin {plugin}: not a WebAssembly component: {reason}")]
    NotAComponent { plugin: String, reason: String },
    /// A component, but not of the `ballast:policy` world.
    #[error(
        "plugin {plugin}: not a Ballast policy: it exports no ballast:policy/policy interface (exports: {exports})"
    )]
    NotAPolicy { plugin: String, exports: String },
    /// Built against a version of the interface this host does not serve.
    #[error(
        "plugin {plugin}: built against ballast:policy@{plugin_version}, but this host serves ballast:policy@{host_version}; {hint}"
    )]
    IncompatibleVersion { plugin: String, plugin_version: String, host_version: String, hint: &'static str },
    /// Cranelift refused or failed to compile it.
    #[error("plugin {plugin}: compilation failed: {reason}")]
    Compile { plugin: String, reason: String },
    /// Its imports cannot be satisfied (it asks for something the host does not offer).
    #[error("plugin {plugin}: cannot be linked: {reason}")]
    Link { plugin: String, reason: String },
    /// It exports the contract's interface, but a function with another signature.
    #[error("plugin {plugin}: export `{function}` does not have the signature of ballast:policy: {reason}")]
    Signature { plugin: String, function: String, reason: String },
    /// The limits configured for it are invalid.
    #[error("plugin {plugin}: invalid limits: {reason}")]
    Limits { plugin: String, reason: String },
    /// The plugin's own settings check refused its settings.
    #[error("plugin {plugin}: settings rejected: {message}")]
    SettingsRejected { plugin: String, message: String },
    /// Checking settings failed in another way (trap, deadline...).
    #[error("plugin {plugin}: settings check failed: {source}")]
    SettingsCheck {
        plugin: String,
        #[source]
        source: CallError,
    },
}

/// Why one call into a plugin produced no usable decisions.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum CallError {
    /// Ran past its deadline and was interrupted.
    #[error("deadline of {deadline_ms} ms exceeded")]
    DeadlineExceeded { deadline_ms: u64 },
    /// Used all its fuel (deterministic mode).
    #[error("fuel exhausted ({fuel} units)")]
    FuelExhausted { fuel: u64 },
    /// Tried to grow its memory past its cap.
    #[error("memory cap of {cap_mib} MiB exceeded (asked for {requested_mib} MiB)")]
    MemoryExhausted { cap_mib: u64, requested_mib: u64 },
    /// Trapped: a panic, stack overflow, out-of-bounds access...
    #[error("trapped: {message}")]
    Trap { message: String },
    /// Returned more than the output cap.
    #[error("output too large: {what}")]
    OutputTooLarge { what: String },
    /// Returned a decision that does not make sense for the snapshot.
    #[error("invalid output: {message}")]
    InvalidOutput { message: String },
    /// The policy returned an error of its own.
    #[error("policy error: {message}")]
    Policy { message: String },
    /// The host could not set up the call (instance pool exhausted, ...).
    #[error("host error: {message}")]
    Host { message: String },
}

impl CallError {
    /// A short stable name for metrics and records.
    pub fn kind(&self) -> &'static str {
        match self {
            CallError::DeadlineExceeded { .. } => "deadline",
            CallError::FuelExhausted { .. } => "fuel",
            CallError::MemoryExhausted { .. } => "memory",
            CallError::Trap { .. } => "trap",
            CallError::OutputTooLarge { .. } => "output-size",
            CallError::InvalidOutput { .. } => "invalid-output",
            CallError::Policy { .. } => "policy-error",
            CallError::Host { .. } => "host",
        }
    }
}
