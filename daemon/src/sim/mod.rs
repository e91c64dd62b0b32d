//! The simulator: an in-memory cluster and cloud on a virtual clock, behind the same engine
//! traits as the kube and AWS adapters. `ballast simulate` runs it; policy authors compare
//! policies with it; our tests and benchmarks measure decision quality with it.
//!
//! # Layout
//! - [`scenario`]: the scenario file format and its checks; [`trace`]: replica curves;
//!   [`catalogue`]: instance types by name;
//! - [`world`]: node groups, nodes, pods; `controllers`: workloads, jobs, Fargate; `spot`:
//!   interruption warnings and reclaims;
//!   `scheduler`: binding pods;
//! - [`adapters`]: the engine's traits over the world; [`meter`]: cost, waiting, utilisation;
//!   [`bound`]: the lower bound on cost every report carries;
//! - [`run`]: the driver and the report; `operator`: the scenario's group replacements,
//!   asked of the engine when their time comes.

pub mod adapters;
pub mod bound;
pub mod catalogue;
mod controllers;
mod loss;
pub mod meter;
mod operator;
pub mod run;
pub mod scenario;
mod scheduler;
mod spot;
pub mod synthetic;
pub mod trace;
pub mod world;

pub use adapters::SimHandle;
pub use run::{SimError, SimReport, Simulation, Summary};
pub use scenario::Scenario;
pub use world::World;

/// The namespace under which the simulator serves its own series as metrics.
pub const METRIC_NAMESPACE: &str = "Ballast/Simulator";
