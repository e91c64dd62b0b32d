//! Ballast: a Kubernetes autoscaler for AWS whose scaling and placement policies are
//! WebAssembly plugins.
//!
//! # Layout
//! The flow is split into crates so that the compiler keeps the boundaries and a change to
//! one adapter rebuilds only that adapter and this crate:
//! - [`engine`] (`ballast-engine`): the tick (observe, policies, guardrails, actuate, record)
//!   over port traits; depends on no Kubernetes, AWS or Wasmtime crate;
//! - [`policy`] (`ballast-policy`): the plugin host (Wasmtime, limits, chain), implementing
//!   the engine's policies port;
//! - [`kubernetes`] (`ballast-kube`), [`aws`] (`ballast-aws`): the adapters;
//!
//! and in this crate:
//! - [`sim`]: the simulator (in-memory cluster and cloud on a virtual clock);
//! - [`cli`]: the `ballast` command line;
//! - [`metrics`]: Prometheus metrics and the admin port (`/metrics`, `/healthz`, `/readyz`);
//! - [`bundled`]: policies and an example snapshot compiled into the binary;
//! - [`input_file`]: YAML/JSON inputs with errors that name the field.

/// The process's allocator: a tick builds and drops the whole cluster view and snapshot
/// (at 5,000 nodes, tens of thousands of small allocations), and glibc's malloc spent about a
/// quarter of the engine bench's samples on them (BENCHMARKS.md, session 25). The library
/// sets it, so the binary, its tests and the benches measure the same allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub use ballast_aws as aws;
pub use ballast_engine as engine;
pub use ballast_engine::{duration, eks, unreadable};
pub use ballast_kube as kubernetes;
pub use ballast_policy as policy;

pub mod bundled;
pub mod cli;
pub mod control;
pub mod daemon_config;
pub mod expander;
pub mod input_file;
pub mod metrics;
pub mod reload;
pub mod runner;
pub mod sim;
pub mod tls;
