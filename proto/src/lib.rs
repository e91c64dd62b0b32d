//! The Ballast control API, `ballast.v1` (`proto/ballast/v1/control.proto`): messages, tonic
//! servers and clients, and the descriptor set for server reflection.
//!
//! The daemon serves it (`ballast run`); `ballast ctl` and the tests are its clients.

#![allow(clippy::large_enum_variant, clippy::doc_lazy_continuation, clippy::doc_overindented_list_items)]

/// Package `ballast.v1`.
pub mod v1 {
    tonic::include_proto!("ballast.v1");
}

/// The encoded `FileDescriptorSet` of `ballast.v1`, for server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/ballast_descriptor.bin"));
