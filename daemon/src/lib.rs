//! Ballast: a Kubernetes autoscaler for AWS whose scaling and placement policies are
//! WebAssembly plugins.
//!
//! # Layout
//! - [`policy`]: the plugin host (Wasmtime, limits, chain);
//! - [`cli`]: the `ballast` command line;
//! - [`bundled`]: policies and an example snapshot compiled into the binary;
//! - [`input_file`]: YAML/JSON inputs with errors that name the field.

pub mod bundled;
pub mod cli;
pub mod input_file;
pub mod policy;
