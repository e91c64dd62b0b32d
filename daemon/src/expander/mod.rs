//! Ballast's policies inside a Cluster Autoscaler install: `ballast expander` serves CA's gRPC
//! expander (`grpcplugin.Expander/BestOptions`, `proto/grpcplugin/expander.proto`), so CA
//! started with `--expander=grpc` asks Ballast's policy chain which of its scale-up options
//! to take. CA still does everything else: it finds the options, respects its limits and
//! scales the groups. Ballast only ranks, and records each answer.
//!
//! # Flow
//! CA's request -> [`offers`] (a snapshot: a node group per option from its template node,
//! the options' pending pods) -> the chain -> [`choice`] (the options whose group a scale-up
//! proposal names, in proposal order) -> the answer, and an
//! [`ExpanderRecord`](crate::engine::record::ExpanderRecord).
//!
//! # Layout
//! - [`settings`]: the configuration file;
//! - [`objects`]: Kubernetes objects from CA's protobuf to k8s-openapi;
//! - [`offers`], [`choice`]: the two halves of an answer;
//! - [`service`]: the call, its deadline and its record;
//! - [`server`]: TLS and the services beside it (decisions, health, reflection).

pub mod choice;
pub mod objects;
pub mod offers;
pub mod server;
pub mod service;
pub mod settings;

pub use service::ExpanderState;
pub use settings::ExpanderConfig;
