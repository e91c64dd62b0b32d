//! Generates the messages, servers and clients of `ballast/v1/control.proto` with protox (a
//! protobuf compiler in Rust, so no protoc needs installing) and tonic-prost-build, and
//! writes the descriptor set that server reflection serves.

use std::path::PathBuf;

use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto = "ballast/v1/control.proto";
    println!("cargo:rerun-if-changed={proto}");
    let fds = protox::compile([proto], ["."])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out.join("ballast_descriptor.bin"), fds.encode_to_vec())?;
    // Serialize for `ballast ctl -o json|yaml`; the two enums print by name, not number.
    let mut builder = tonic_prost_build::configure().type_attribute(".", "#[derive(serde::Serialize)]");
    for field in ["GetStatusResponse.mode", "TickRecord.mode", "GetModeResponse.mode", "SetModeRequest.mode"] {
        builder = builder.field_attribute(
            format!("ballast.v1.{field}"),
            "#[serde(serialize_with = \"crate::serialize_engine_mode\")]",
        );
    }
    for field in ["PluginStatus.mode", "LoadPluginRequest.mode", "SetPluginModeRequest.mode"] {
        builder = builder.field_attribute(
            format!("ballast.v1.{field}"),
            "#[serde(serialize_with = \"crate::serialize_plugin_mode\")]",
        );
    }
    builder.compile_fds(fds)?;
    expander(&out)
}

/// Cluster Autoscaler's expander protocol and the Kubernetes messages it carries (the subset
/// Ballast reads), with their own descriptor set for the expander's reflection.
fn expander(out: &std::path::Path) -> Result<(), Box<dyn std::error::Error>> {
    let protos = ["grpcplugin/expander.proto", "k8s/io/apimachinery/pkg/runtime/generated.proto"];
    for dir in ["grpcplugin", "k8s"] {
        println!("cargo:rerun-if-changed={dir}");
    }
    let fds = protox::compile(protos, ["."])?;
    std::fs::write(out.join("expander_descriptor.bin"), fds.encode_to_vec())?;
    tonic_prost_build::configure().compile_fds(fds)?;
    Ok(())
}
