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

/// An `EngineMode` field by its name (`ENGINE_MODE_PAUSED`), for `ballast ctl -o json|yaml`.
pub fn serialize_engine_mode<S: serde::Serializer>(value: &i32, s: S) -> Result<S::Ok, S::Error> {
    match v1::EngineMode::try_from(*value) {
        Ok(mode) => s.serialize_str(mode.as_str_name()),
        Err(_) => s.serialize_i32(*value),
    }
}

/// A `PluginMode` field by its name (`PLUGIN_MODE_SHADOW`).
pub fn serialize_plugin_mode<S: serde::Serializer>(value: &i32, s: S) -> Result<S::Ok, S::Error> {
    match v1::PluginMode::try_from(*value) {
        Ok(mode) => s.serialize_str(mode.as_str_name()),
        Err(_) => s.serialize_i32(*value),
    }
}

/// Package `grpcplugin`: Cluster Autoscaler's gRPC expander (`grpcplugin/expander.proto`),
/// served by `ballast expander`.
pub mod grpcplugin {
    tonic::include_proto!("grpcplugin");
}

/// The encoded `FileDescriptorSet` of `grpcplugin` and the Kubernetes messages it carries.
pub const EXPANDER_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/expander_descriptor.bin"));

/// The Kubernetes messages (the fields Ballast reads) in their protobuf encoding, under
/// their own package names (`k8s.io.api.core.v1` is `k8s::io::api::core::v1`).
pub mod k8s {
    pub mod io {
        pub mod api {
            pub mod core {
                pub mod v1 {
                    tonic::include_proto!("k8s.io.api.core.v1");
                }
            }
        }
        pub mod apimachinery {
            pub mod pkg {
                pub mod api {
                    pub mod resource {
                        tonic::include_proto!("k8s.io.apimachinery.pkg.api.resource");
                    }
                }
                pub mod apis {
                    pub mod meta {
                        pub mod v1 {
                            tonic::include_proto!("k8s.io.apimachinery.pkg.apis.meta.v1");
                        }
                    }
                }
                pub mod runtime {
                    tonic::include_proto!("k8s.io.apimachinery.pkg.runtime");
                }
            }
        }
    }
}
