//! Ballast: a Kubernetes autoscaler for AWS whose scaling and placement policies are
//! WebAssembly plugins.
//!
//! # Layout
//! - [`engine`]: the tick (observe, policies, guardrails, actuate, record) over adapter traits;
//! - [`policy`]: the plugin host (Wasmtime, limits, chain);
//! - [`sim`]: the simulator (in-memory cluster and cloud on a virtual clock);
//! - [`cli`]: the `ballast` command line;
//! - [`metrics`]: Prometheus metrics and the admin port (`/metrics`, `/healthz`, `/readyz`);
//! - [`bundled`]: policies and an example snapshot compiled into the binary;
//! - [`input_file`]: YAML/JSON inputs with errors that name the field.

pub mod aws;
pub mod bundled;
pub mod cli;
pub mod control;
pub mod daemon_config;
pub mod duration;
pub mod eks;
pub mod engine;
pub mod input_file;
pub mod kubernetes;
pub mod metrics;
pub mod policy;
pub mod reload;
pub mod runner;
pub mod sim;
pub mod tls;
pub mod unreadable;
